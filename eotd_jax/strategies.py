"""Turning each thought's answer into one answer per question: single thought, ETD fallback, majority vote.

`answers` maps a thought to the outcomes of its samples (first = the greedy or
first sampled rationale). These rules are the paper's (ETD: EoT, then PoT when
the system fails, then CoT when the program fails) plus voting.
"""

from __future__ import annotations

import collections
from fractions import Fraction

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


def _key(value: Fraction) -> float:
    return round(float(value), 6)  # 0.30000000000000004 and 3/10 vote together


def _vote(answers: dict[str, list[Outcome]]) -> Fraction | None:
    """Majority over every successful answer of every thought and sample; ties go EoT > PoT > CoT."""
    counts: collections.Counter = collections.Counter()
    first_seen: dict[float, tuple[int, Fraction]] = {}
    for rank, thought in enumerate(ETD_ORDER):
        for outcome in answers.get(thought) or []:
            if outcome.ok:
                key = _key(outcome.value)
                counts[key] += 1
                first_seen.setdefault(key, (rank, outcome.value))
    if not counts:
        return None
    best = max(counts.values())
    winner = min((key for key, count in counts.items() if count == best), key=lambda key: first_seen[key][0])
    return first_seen[winner][1]
