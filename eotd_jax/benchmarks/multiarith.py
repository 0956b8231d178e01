"""MultiArith (MAWPS): a JSON list of {iIndex, sQuestion, lEquations, lSolutions}."""

from __future__ import annotations

import re
from collections.abc import Mapping

from eotd_jax.benchmarks.problem import DatasetFormatError, Problem, load_json_list, require_answer, require_field
from eotd_jax.thoughts.answers import parse_number

HUB = ("ChilleD/MultiArith", None)
HUB_SPLITS: dict[str, str] = {}  # our split name -> the hub copy\'s, where they differ
FILES = {"test": "multiarith/MultiArith.json"}


def parse_item(item: Mapping, index: int, split: str, path: str, where: str) -> Problem:
    solutions = require_field(item, "lSolutions", list, path, where)
    equations = require_field(item, "lEquations", list, path, where)
    if len(solutions) != 1 or isinstance(solutions[0], bool) or not isinstance(solutions[0], (int, float)):
        raise DatasetFormatError(path, where, "lSolutions", f"expected one number, got {solutions!r:.60}")
    return Problem(
        id=f"multiarith-{item.get('iIndex', index)}",
        source=f"multiarith/{split}",
        question=" ".join(require_field(item, "sQuestion", str, path, where).split()),
        answer=parse_number(float(solutions[0])),
        answer_text=repr(solutions[0]),
        equation="\n".join(str(e) for e in equations),
    )


def load(path: str, split: str) -> list[Problem]:
    return load_json_list(path, split, parse_item)


def from_hub_row(row: Mapping, index: int, split: str, path: str) -> Problem:
    """The hub copy has `question` and `final_ans` (a string) and no equation."""
    where = f"row {index}"
    final = str(require_field(row, "final_ans", (str, int, float), path, where))
    return Problem(
        id=f"multiarith-{split}-{index}",
        source=f"multiarith/{split}",
        question=" ".join(require_field(row, "question", str, path, where).split()),
        answer=require_answer(final, path, where, "final_ans"),
        answer_text=final,
    )


def gold_eot(problem: Problem) -> str:
    """The dataset's equations (`X=((32.0+42.0)-35.0)`) as an EoT system: X becomes `ans`."""
    return re.sub(r"\bX\b", "ans", problem.equation)
