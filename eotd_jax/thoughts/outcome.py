"""The result of turning one rationale into an answer: a value or a typed failure."""

from __future__ import annotations

import dataclasses
import enum
from fractions import Fraction


class Failure(enum.StrEnum):
    """Why a rationale produced no answer. The values appear in manifests and reports."""

    NO_ANSWER = "no_answer"  # CoT: no number found
    SYNTAX = "syntax"  # program or equation does not parse
    FORBIDDEN = "forbidden"  # import, attribute walk, file/process/network access, ...
    TIMEOUT = "timeout"  # CPU or wall-clock limit
    MEMORY = "memory"  # address-space limit
    OUTPUT_LIMIT = "output_limit"  # printed too much
    ERROR = "error"  # program raised
    NO_ANS = "no_ans"  # program / system defines no `ans`
    NOT_A_NUMBER = "not_a_number"  # `ans` is not a finite number
    TOO_LARGE = "too_large"  # number, exponent or input beyond bounds
    INCONSISTENT = "inconsistent"  # equation system has no solution
    UNDERDETERMINED = "underdetermined"  # `ans` not fixed by the system
    AMBIGUOUS = "ambiguous"  # several different values of `ans`
    CRASHED = "crashed"  # the worker died (signal, protocol violation)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """`value` is set exactly when `failure` is None."""

    value: Fraction | None = None
    failure: Failure | None = None
    message: str = ""

    def __post_init__(self):
        if (self.value is None) == (self.failure is None):
            raise ValueError("Outcome needs exactly one of value and failure")

    @property
    def ok(self) -> bool:
        return self.failure is None

    @classmethod
    def fail(cls, failure: Failure, message: str = "") -> Outcome:
        return cls(failure=failure, message=message[:500])
