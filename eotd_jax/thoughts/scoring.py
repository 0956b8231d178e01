"""Rationale -> form -> answer -> verdict, shared by data_gen (teacher output) and eval (student output).

Each rationale is read first (`reading.py`: the program or system found in
what the model wrote); CoT answers are then extracted, PoT forms run and EoT
forms solved in the sandbox pool, in parallel. A verdict is "kept",
"wrong_answer", "disagrees" (the answer is right but the reply's own prose
states another), or the failure reason of the thought.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

from eotd_jax.thoughts.answers import answers_match, parse_number
from eotd_jax.thoughts.cot import extract_cot_answer
from eotd_jax.thoughts.outcome import Outcome
from eotd_jax.thoughts.reading import read_rationale
from eotd_jax.thoughts.sandbox import SandboxPool

__all__ = ["Checked", "check", "verdict", "verify"]


@dataclasses.dataclass(frozen=True)
class Checked:
    """The answer of one rationale, the form that produced it (None when no form was found) and the
    answer its prose states around fenced code (None when it states none)."""

    outcome: Outcome
    form: str | None
    stated: Fraction | None = None


def check(records: list[dict], pool: SandboxPool) -> list[Checked]:
    """Reads and executes all records (`thought`, `rationale`), in order; PoT and EoT in parallel."""
    readings = [read_rationale(r["thought"], r["rationale"]) for r in records]
    outcomes: list[Outcome | None] = [
        None if reading.form is not None else Outcome.fail(reading.failure, reading.message) for reading in readings
    ]
    for thought in ("pot", "eot"):
        indices = [i for i, r in enumerate(records) if r["thought"] == thought and outcomes[i] is None]
        results = pool.map(thought, [readings[i].form for i in indices], progress=len(indices) > 500)
        for index, outcome in zip(indices, results, strict=True):
            outcomes[index] = outcome
    for index, record in enumerate(records):
        if record["thought"] == "cot" and outcomes[index] is None:
            outcomes[index] = extract_cot_answer(readings[index].form)
    return [Checked(outcome, r.form, r.stated) for outcome, r in zip(outcomes, readings, strict=True)]


def verify(records: list[dict], pool: SandboxPool) -> list[Outcome]:
    """The answers alone (the student eval's view of `check`)."""
    return [checked.outcome for checked in check(records, pool)]


def verdict(record: dict, outcome: Outcome, stated: Fraction | None = None) -> str:
    """"kept", "wrong_answer", "disagrees" (right, but contradicted by the `stated` answer), or the failure."""
    if outcome.failure:
        return outcome.failure.value
    if not answers_match(outcome.value, parse_number(str(record["answer"]))):
        return "wrong_answer"
    return "disagrees" if stated is not None and not answers_match(outcome.value, stated) else "kept"
