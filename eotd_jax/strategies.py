"""Turning each thought's answer into one answer per question: single thought, ETD fallback, majority vote.

`answers` maps a thought to the outcomes of its samples (first = the greedy or
first sampled rationale). These rules are the paper's (ETD: EoT, then PoT when
the system fails, then CoT when the program fails) plus voting.
"""

from __future__ import annotations

from fractions import Fraction

from eotd_jax.thoughts.answers import answers_match
from eotd_jax.thoughts.outcome import Outcome

ETD_ORDER = ("eot", "pot", "cot")  # also the tie-break order of the vote
STRATEGIES = ("cot", "pot", "eot", "etd", "vote")


def choose(strategy: str, answers: dict[str, list[Outcome]]) -> Fraction | None:
    """The answer `strategy` picks, or None when it has none."""
    if strategy in ("cot", "pot", "eot"):
        outcomes = answers.get(strategy) or []
        return outcomes[0].value if outcomes and outcomes[0].ok else None
    if strategy == "etd":
        for thought in ETD_ORDER:
            outcomes = answers.get(thought) or []
            if outcomes and outcomes[0].ok:
                return outcomes[0].value
        return None
    if strategy == "vote":
        return _vote(answers)
    raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")


def _vote(answers: dict[str, list[Outcome]]) -> Fraction | None:
    """Majority over every successful answer of every thought and sample; ties go EoT > PoT > CoT.

    Answers that `answers_match` (0.30000000000000004 and 3/10) vote together, for the first of them seen.
    """
    groups: list[tuple[Fraction, int]] = []  # (first value seen, votes), in ETD order of first sight
    for thought in ETD_ORDER:
        for outcome in answers.get(thought) or []:
            if outcome.ok:
                index = next((i for i, (value, _) in enumerate(groups) if answers_match(outcome.value, value)),
                             len(groups))
                if index == len(groups):
                    groups.append((outcome.value, 0))
                groups[index] = (groups[index][0], groups[index][1] + 1)
    if not groups:
        return None
    best = max(votes for _, votes in groups)
    return next(value for value, votes in groups if votes == best)
