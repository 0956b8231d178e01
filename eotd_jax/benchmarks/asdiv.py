"""ASDiv: XML `<Problem ID=..>` with Body, Question, Answer (`9 (apples)`), Formula.

The full corpus has 2,305 problems; some answers are not numbers ("Yes",
"3:30 p.m."): their `answer` is None. Some list several values
("5 (years old); 15 (years old)"): the first is the gold answer, as in the
loaders of Fu et al. (2023) and most distillation code. The standard evaluation subset is the 2,096 problems
listed, one ID a line, in an ID file (shipped in `eotd_jax/benchmarks/data`).
"""

from __future__ import annotations

import importlib.resources
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping

from eotd_jax import paths
from eotd_jax.benchmarks.problem import DatasetFormatError, Problem, require_field
from eotd_jax.thoughts.answers import parse_number

HUB = ("EleutherAI/asdiv", "asdiv")
HUB_SPLITS = {"test": "validation"}  # the hub copy is the whole corpus, as one "validation" split, without IDs
FILES = {"test": "asdiv/ASDiv.xml"}
STANDARD_IDS = "asdiv/standard_2096_ids.txt"  # an ID list beside the file, used instead of the packaged one


def packaged_standard_ids() -> str:
    """The ID list of the 2,096-problem standard subset shipped in this package (IDs only, derived from ASDiv)."""
    return str(importlib.resources.files("eotd_jax.benchmarks") / "data" / "asdiv_standard_2096_ids.txt")


def load(path: str, split: str, ids_path: str | None = None) -> list[Problem]:
    """All problems, or only those listed in `ids_path` (in its order; all must have numbers)."""
    try:
        with paths.path(path).open("rb") as file:
            root = ElementTree.parse(file).getroot()
    except ElementTree.ParseError as error:
        raise DatasetFormatError(path, f"line {error.position[0]}", "<xml>", str(error)) from None
    problems = {}
    for index, element in enumerate(root.iter("Problem")):
        where = f"Problem #{index + 1} (ID={element.get('ID')!r})"
        fields = {child.tag: (child.text or "").strip() for child in element}
        fields["ID"] = element.get("ID")
        problem = _parse(fields, split, path, where)
        problems[problem.id] = problem
    if ids_path is None:
        return list(problems.values())
    return _select(problems, ids_path)


def _parse(fields: Mapping, split: str, path: str, where: str) -> Problem:
    problem_id = require_field(fields, "ID", str, path, where)
    body = require_field(fields, "Body", str, path, where)
    question = require_field(fields, "Question", str, path, where)
    answer_text = require_field(fields, "Answer", str, path, where)
    return Problem(
        id=problem_id,
        source=f"asdiv/{split}",
        question=f"{body} {question}".strip(),
        answer=parse_number(answer_text.split(";")[0]),
        answer_text=answer_text,
        equation=fields.get("Formula") or None,
    )


def _select(problems: dict[str, Problem], ids_path: str) -> list[Problem]:
    selected = []
    with paths.path(ids_path).open(encoding="utf-8") as lines:
        for line_number, line in enumerate(lines, 1):
            problem_id = line.strip()
            if not problem_id:
                continue
            where = f"line {line_number}"
            if problem_id not in problems:
                raise DatasetFormatError(ids_path, where, "ID", f"{problem_id!r} is not in the ASDiv file")
            problem = problems[problem_id]
            if problem.answer is None:
                raise DatasetFormatError(ids_path, where, "ID", f"{problem_id} has no numeric answer")
            selected.append(problem)
    return selected


def from_hub_row(row: Mapping, index: int, split: str, path: str) -> Problem:
    """The hub copy has lowercase `body, question, answer, formula` and no IDs."""
    fields = {name.capitalize(): row.get(name) for name in ("body", "question", "answer", "formula")}
    fields["ID"] = f"asdiv-{split}-{index}"
    return _parse(fields, split, path, f"row {index}")
