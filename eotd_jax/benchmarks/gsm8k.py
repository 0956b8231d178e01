"""GSM8K: JSON lines with `question` and `answer`; the answer ends in `#### N`."""

from __future__ import annotations

import json
from collections.abc import Mapping

from eotd_jax import paths
from eotd_jax.benchmarks.problem import DatasetFormatError, Problem, require_answer, require_field

HUB = ("openai/gsm8k", "main")
HUB_SPLITS: dict[str, str] = {}  # our split name -> the hub copy\'s, where they differ
FILES = {"train": "gsm8k/train.jsonl", "test": "gsm8k/test.jsonl"}


def parse_item(item: Mapping, index: int, split: str, path: str, where: str) -> Problem:
    question = require_field(item, "question", str, path, where)
    answer = require_field(item, "answer", str, path, where)
    solution, marker, final = answer.rpartition("####")
    if not marker:
        raise DatasetFormatError(path, where, "answer", "no '#### N' line")
    return Problem(
        id=f"gsm8k-{split}-{index}",
        source=f"gsm8k/{split}",
        question=question.strip(),
        answer=require_answer(final.strip(), path, where, "answer"),
        answer_text=final.strip(),
        solution=solution.strip(),
    )


def load(path: str, split: str) -> list[Problem]:
    problems = []
    with paths.path(path).open(encoding="utf-8") as lines:
        for line_number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"line {line_number}"
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                raise DatasetFormatError(path, where, "<json>", str(error)) from None
            problems.append(parse_item(item, len(problems), split, path, where))
    return problems


def from_hub_row(row: Mapping, index: int, split: str, path: str) -> Problem:
    return parse_item(row, index, split, path, f"row {index}")
