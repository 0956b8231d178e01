"""Rationale -> answer -> verdict, shared by data_gen (teacher output) and eval (student output).

CoT answers are extracted; PoT programs run and EoT systems are solved in the
sandbox pool, in parallel. A verdict is "kept", "wrong_answer", or the failure
reason of the thought.
"""

from __future__ import annotations

from eotd_jax.thoughts.answers import answers_match, parse_number
from eotd_jax.thoughts.cot import extract_cot_answer
from eotd_jax.thoughts.outcome import Outcome
from eotd_jax.thoughts.sandbox import SandboxPool

THOUGHTS = ("cot", "pot", "eot")


def verify(records: list[dict], pool: SandboxPool) -> list[Outcome]:
    """Answers for all records, in order; PoT and EoT go through the pool in parallel."""
    outcomes: list[Outcome | None] = [None] * len(records)
    for thought in ("pot", "eot"):
        indices = [i for i, r in enumerate(records) if r["thought"] == thought]
        results = pool.map(thought, [records[i]["rationale"] for i in indices], progress=len(indices) > 500)
        for index, outcome in zip(indices, results, strict=True):
            outcomes[index] = outcome
    for index, record in enumerate(records):
        if record["thought"] == "cot":
            outcomes[index] = extract_cot_answer(record["rationale"])
    return outcomes


def verdict(record: dict, outcome: Outcome) -> str:
    """"kept", "wrong_answer", or the failure reason."""
    if outcome.failure:
        return outcome.failure.value
    return "kept" if answers_match(outcome.value, parse_number(str(record["answer"]))) else "wrong_answer"
