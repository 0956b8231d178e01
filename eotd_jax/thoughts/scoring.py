"""Rationale -> form -> answer -> verdict, shared by data_gen (teacher output) and eval (student output).

Each rationale is read first (`reading.py`: the program or system found in
what the model wrote); CoT answers are then extracted, PoT forms run and EoT
forms solved in the sandbox pool, in parallel (`check`). `verdict` is the one
comparison of an answer with the gold one: "kept", "wrong_answer", "disagrees"
(the answer is right but the reply's own prose states another), or the failure
reason of the thought.
"""

from __future__ import annotations

import dataclasses
import enum
from fractions import Fraction

from eotd_jax.thoughts.answers import answers_match
from eotd_jax.thoughts.cot import extract_cot_answer
from eotd_jax.thoughts.outcome import Failure, Outcome
from eotd_jax.thoughts.reading import read_rationale
from eotd_jax.thoughts.sandbox import SandboxPool

__all__ = ["Checked", "Verdict", "check", "verdict"]


class Verdict(enum.StrEnum):
    """What a rationale with an answer is worth; without one, its `Failure` is the verdict. The values appear in
    manifests, verdict files and yield tables."""

    KEPT = "kept"  # the answer is the gold one
    WRONG_ANSWER = "wrong_answer"
    DISAGREES = "disagrees"  # the gold answer, but the reply's prose states another
    DUPLICATE = "duplicate"  # kept already for this question and thought (data_gen)
    OVER_CAP = "over_cap"  # the question has its cap of kept rationales for this thought (data_gen)


@dataclasses.dataclass(frozen=True)
class Checked:
    """The answer of one rationale, the form that produced it (None when no form was found) and the
    answer its prose states around fenced code (None when it states none)."""

    outcome: Outcome
    form: str | None
    stated: Fraction | None = None


def check(records: list[dict], pool: SandboxPool, progress: bool = True) -> list[Checked]:
    """Reads and executes all records (`thought`, `rationale`), in order; PoT and EoT in parallel (a progress bar
    on a terminal for long lists, unless `progress` is False)."""
    readings = [read_rationale(r["thought"], r["rationale"]) for r in records]
    outcomes: list[Outcome | None] = [
        None if reading.form is not None else Outcome.fail(reading.failure, reading.message) for reading in readings
    ]
    for thought in ("pot", "eot"):
        indices = [i for i, r in enumerate(records) if r["thought"] == thought and outcomes[i] is None]
        results = pool.map(thought, [readings[i].form for i in indices], progress=progress and len(indices) > 500)
        for index, outcome in zip(indices, results, strict=True):
            outcomes[index] = outcome
    for index, record in enumerate(records):
        if record["thought"] == "cot" and outcomes[index] is None:
            outcomes[index] = extract_cot_answer(readings[index].form)
    return [Checked(outcome, r.form, r.stated) for outcome, r in zip(outcomes, readings, strict=True)]


def verdict(outcome: Outcome, gold: Fraction | None, stated: Fraction | None = None) -> Verdict | Failure:
    """The failure, WRONG_ANSWER, DISAGREES (right, but contradicted by the `stated` answer), or KEPT."""
    if outcome.failure:
        return outcome.failure
    if not answers_match(outcome.value, gold):
        return Verdict.WRONG_ANSWER
    return Verdict.DISAGREES if stated is not None and not answers_match(outcome.value, stated) else Verdict.KEPT
