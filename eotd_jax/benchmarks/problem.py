"""The record every benchmark loader returns, and the error for malformed files."""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction

from eotd_jax import paths
from eotd_jax.thoughts.answers import parse_number


@dataclasses.dataclass(frozen=True)
class Problem:
    """One math word problem.

    `answer` is the gold number; it is None only for the few ASDiv problems whose
    answer is not one number ("Yes", "3:30 p.m.", "2;3"), kept in the full set.
    `equation` is the dataset's own equation text and `solution` its worked
    solution, when it has them.
    """

    id: str
    source: str  # "<benchmark>/<split>"
    question: str
    answer: Fraction | None
    answer_text: str
    equation: str | None = None
    solution: str | None = None


class DatasetFormatError(ValueError):
    """A benchmark file that does not have the expected format; names where."""

    def __init__(self, path: str, where: str, field: str, problem: str):
        super().__init__(f"{path}: {where}: field {field!r}: {problem}")


def require_field(item: object, field: str, kind: type, path: str, where: str):
    """item[field] checked to be present and of `kind`, else DatasetFormatError."""
    if not isinstance(item, dict):
        raise DatasetFormatError(path, where, field, f"expected an object, got {type(item).__name__}")
    if field not in item:
        raise DatasetFormatError(path, where, field, "missing")
    value = item[field]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DatasetFormatError(path, where, field, f"expected {getattr(kind, '__name__', kind)}, got {value!r:.60}")
    return value


def require_answer(text: str, path: str, where: str, field: str) -> Fraction:
    value = parse_number(text)
    if value is None:
        raise DatasetFormatError(path, where, field, f"not a number: {text!r:.60}")
    return value


def load_json_list(path: str, split: str, parse_item) -> list[Problem]:
    """A file holding one JSON list, each item parsed by `parse_item`."""
    with paths.path(path).open(encoding="utf-8") as file:
        try:
            items = json.load(file)
        except json.JSONDecodeError as error:
            raise DatasetFormatError(path, f"line {error.lineno}", "<json>", error.msg) from None
    if not isinstance(items, list):
        raise DatasetFormatError(path, "top level", "<json>", "expected a list of problems")
    return [parse_item(item, index, split, path, f"item {index}") for index, item in enumerate(items)]
