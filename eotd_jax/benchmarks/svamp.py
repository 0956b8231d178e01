"""SVAMP: a JSON list of {ID, Body, Question, Equation, Answer, Type}."""

from __future__ import annotations

from collections.abc import Mapping

from eotd_jax.benchmarks.problem import Problem, load_json_list, require_field
from eotd_jax.thoughts.answers import parse_number

HUB = ("ChilleD/SVAMP", None)
HUB_SPLITS: dict[str, str] = {}  # our split name -> the hub copy\'s, where they differ
FILES = {"test": "svamp/SVAMP.json"}


def parse_item(item: Mapping, index: int, split: str, path: str, where: str) -> Problem:
    body = require_field(item, "Body", str, path, where).strip()
    question = require_field(item, "Question", str, path, where).strip()
    answer = require_field(item, "Answer", (int, float), path, where)
    return Problem(
        id=str(item.get("ID", f"svamp-{index}")),
        source=f"svamp/{split}",
        question=f"{body} {question}".strip(),
        answer=parse_number(float(answer)),
        answer_text=repr(answer),
        equation=require_field(item, "Equation", str, path, where).strip(),
    )


def load(path: str, split: str) -> list[Problem]:
    return load_json_list(path, split, parse_item)


def from_hub_row(row: Mapping, index: int, split: str, path: str) -> Problem:
    return parse_item(row, index, split, path, f"row {index}")


def gold_eot(problem: Problem) -> str:
    """The dataset's equation (`( 76.0 - 25.0 )`) as an EoT system."""
    return f"ans = {problem.equation}"
