"""The student's input text: the question and a selector saying which thought to write.

The defaults are those of the paper's released ETD student
(`zhuxunyu/etd-codet5p-770m-py`), so that model can be imported and evaluated
as it was trained (docs/design.md, "The student input"). A training config carries its
own (`input.template`, `input.selectors`); the checkpoint keeps them, an
export writes them to `student_input.json`, and the eval binary reads them
back (its flags override them).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping

from eotd_jax import paths

TEMPLATE = "Question: {question}\n{selector}\n"
SELECTORS = {
    "cot": "Let's think step by step.",
    "pot": "Let\u2019s break down the code step by step",
    "eot": "System of linear equations: (Do not simplify)",
}
FILE_NAME = "student_input.json"  # beside an exported Hugging Face model
_PLACEHOLDER = re.compile(r"\{(question|selector)\}")


@dataclasses.dataclass(frozen=True)
class StudentInput:
    template: str = TEMPLATE
    selectors: Mapping[str, str] = dataclasses.field(default_factory=lambda: dict(SELECTORS))

    def __post_init__(self):
        found = set(_PLACEHOLDER.findall(self.template))
        if found != {"question", "selector"}:
            raise ValueError(f"input template {self.template!r} must contain {{question}} and {{selector}}")
        missing = [t for t in SELECTORS if not self.selectors.get(t)]
        if missing:
            raise ValueError(f"input selectors: none given for {', '.join(missing)}")

    def text(self, question: str, thought: str) -> str:
        """The template filled in; plain substitution, so braces in a question or template are never evaluated."""
        values = {"question": question, "selector": self.selectors[thought]}
        return _PLACEHOLDER.sub(lambda match: values[match.group(1)], self.template)

    def to_dict(self) -> dict:
        return {"template": self.template, "selectors": dict(self.selectors)}

    @classmethod
    def from_dict(cls, section: Mapping) -> StudentInput:
        """{"template": ..., "selectors": {thought: ...}}; missing entries take the defaults."""
        return cls(section.get("template", TEMPLATE), {**SELECTORS, **dict(section.get("selectors") or {})})

    @classmethod
    def from_config(cls, config) -> StudentInput:
        """A training config's `input` section."""
        return cls.from_dict(config.input)

    def replace(self, template: str | None = None, **selectors: str | None) -> StudentInput:
        """A copy with the given (not None) template and selectors changed, e.g. from eval flags."""
        chosen = {t: s for t, s in selectors.items() if s is not None}
        return StudentInput(template if template is not None else self.template, {**self.selectors, **chosen})


def save(student_input: StudentInput, directory: str) -> None:
    paths.path(directory, FILE_NAME).write_text(json.dumps(student_input.to_dict(), indent=2, ensure_ascii=False))


def load(directory: str) -> StudentInput:
    """What an exported model was trained with; the defaults for a directory without the file (a hub model)."""
    path = paths.path(directory, FILE_NAME)
    if not path.is_file():
        return StudentInput()
    try:
        return StudentInput.from_dict(json.loads(path.read_text()))
    except (ValueError, AttributeError) as error:
        raise ValueError(f"{path}: {error}") from None
