"""What every teacher returns, and the one interface they share."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

from eotd_jax.benchmarks import Problem


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One rationale a teacher wrote for one problem, before verification.

    `rationale` is None when the teacher produced nothing usable; `failure` then
    says why ("truncated", "empty", "api_error", "no_annotations", ...), and the
    candidate is counted as rejected for that reason.
    """

    problem_id: str
    thought: str
    sample_index: int
    rationale: str | None
    failure: str | None = None


@dataclasses.dataclass
class Usage:
    """What a teacher spent: requests sent, tokens and cost in US dollars."""

    requests: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


class TeacherError(RuntimeError):
    """A failure that stops the run (bad key, unknown model); journaled work is kept."""


class Teacher(Protocol):
    name: str  # recorded as `teacher` in every shard record
    usage: Usage

    def generate(self, problems: Sequence[Problem], thoughts: Sequence[str], samples: int) -> list[Candidate]:
        """Candidates for every (problem, thought, sample); order is not significant."""
        ...
