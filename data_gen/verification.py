"""Teacher candidates -> verified examples, with every rejection counted by reason.

A rationale is kept only when its executed / extracted answer equals the gold
answer (the same reader and verifier the eval binary uses on student output);
the record keeps the rationale as the teacher wrote it and the form that was
verified beside it. Identical
rationales for one question and thought are kept once; `max_per_thought` caps
how many distinct ones a question keeps per thought.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

from data_gen.teachers.base import Candidate
from eotd_jax.benchmarks import Problem
from eotd_jax.input.records import Record
from eotd_jax.thoughts import THOUGHTS
from eotd_jax.thoughts.sandbox import SandboxPool
from eotd_jax.thoughts.scoring import Verdict, check, verdict


def verify_candidates(
    candidates: Sequence[Candidate],
    problems: Sequence[Problem],
    pool: SandboxPool,
    teacher: str,
    max_per_thought: int = 0,
    progress: bool = True,
) -> tuple[list[Record], dict[str, collections.Counter]]:
    """(kept examples in canonical order, per-thought counts of "kept" and each rejection reason)."""
    order = {problem.id: index for index, problem in enumerate(problems)}
    by_id = {problem.id: problem for problem in problems}
    candidates = sorted(candidates, key=lambda c: (order[c.problem_id], THOUGHTS.index(c.thought), c.sample_index))
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    usable = [c for c in candidates if c.rationale is not None]
    for candidate in candidates:
        if candidate.rationale is None:
            counts[candidate.thought][candidate.failure or "empty"] += 1
    records = [{"thought": c.thought, "rationale": c.rationale} for c in usable]
    kept, seen = [], collections.defaultdict(set)
    for candidate, checked in zip(usable, check(records, pool, progress), strict=True):
        reason = verdict(checked.outcome, by_id[candidate.problem_id].answer, checked.stated)
        group = (candidate.problem_id, candidate.thought)
        normalized = " ".join(candidate.rationale.split())
        if reason is Verdict.KEPT and normalized in seen[group]:
            reason = Verdict.DUPLICATE
        elif reason is Verdict.KEPT and max_per_thought and len(seen[group]) >= max_per_thought:
            reason = Verdict.OVER_CAP
        counts[candidate.thought][reason.value] += 1
        if reason is Verdict.KEPT:
            seen[group].add(normalized)
            problem = by_id[candidate.problem_id]
            kept.append(Record(problem.id, problem.source, problem.question, candidate.thought, candidate.rationale,
                               problem.answer_text, teacher, candidate.sample_index, checked.form))
    return kept, dict(counts)


def yield_report(counts: dict[str, collections.Counter]) -> str:
    """Markdown table: per thought, candidates, kept (and %), then each rejection reason."""
    reasons = sorted({r for c in counts.values() for r in c} - {Verdict.KEPT.value})
    rows = [["thought", "candidates", "kept", *reasons], ["---"] * (len(reasons) + 3)]
    for thought in THOUGHTS:
        if thought in counts:
            total, kept = sum(counts[thought].values()), counts[thought][Verdict.KEPT.value]
            share = f"{kept} ({100 * kept / total:.1f}%)" if total else "0"
            rows.append([thought, str(total), share, *(str(counts[thought][r]) for r in reasons)])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)
