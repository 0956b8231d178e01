"""Few-shot prompts for the three thoughts, as versioned text files, in two styles.

The "paper" style (default) asks for what the paper's teacher wrote: EoT as
`%`-comment lines, each stating a fact, before its equation, ending in
`ans = ...`. The "compact" style keeps bare equations. `<thought>.txt` is a
thought's paper prompt; `<thought>.compact.txt`, where it exists, its compact
one (CoT and PoT have one prompt for both styles).

Each file holds `=== system ===`, then alternating `=== question ===`
/ `=== answer ===` examples. A prompt's identity is the hash of its file, so a
change to a prompt changes the hash recorded in the manifest and the cache key
of every request made with it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from importlib import resources

_SECTION = re.compile(r"^=== (system|question|answer) ===$", re.MULTILINE)
_FENCE = re.compile(r"^```[\w-]*\s*\n(.*?)\n```\s*$", re.DOTALL)


@dataclasses.dataclass(frozen=True)
class Prompt:
    thought: str
    system: str
    examples: tuple[tuple[str, str], ...]  # (question, answer)
    sha256: str

    def messages(self, question: str) -> list[dict]:
        """Chat messages: system, the few-shot examples as turns, then the question."""
        messages = [{"role": "system", "content": self.system}]
        for example_question, example_answer in self.examples:
            messages.append({"role": "user", "content": f"Question: {example_question}"})
            messages.append({"role": "assistant", "content": example_answer})
        messages.append({"role": "user", "content": f"Question: {question}"})
        return messages


def parse_prompt(thought: str, text: str) -> Prompt:
    parts = _SECTION.split(text)
    sections = [(parts[i], parts[i + 1].strip()) for i in range(1, len(parts) - 1, 2)]
    if not sections or sections[0][0] != "system":
        raise ValueError(f"prompt {thought!r}: must start with '=== system ==='")
    examples = sections[1:]
    kinds = [kind for kind, _ in examples]
    if kinds != ["question", "answer"] * (len(examples) // 2):
        raise ValueError(f"prompt {thought!r}: examples must alternate question / answer")
    pairs = tuple((examples[i][1], examples[i + 1][1]) for i in range(0, len(examples), 2))
    return Prompt(thought, sections[0][1], pairs, hashlib.sha256(text.encode()).hexdigest())


PROMPT_STYLES = ("paper", "compact")


def load_prompt(thought: str, style: str = "paper") -> Prompt:
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt style {style!r}; known: {', '.join(PROMPT_STYLES)}")
    folder = resources.files("data_gen.prompts")
    path = folder / f"{thought}.{style}.txt"
    if not path.is_file():
        path = folder / f"{thought}.txt"
    if not path.is_file():
        raise ValueError(f"no prompt for thought {thought!r}")
    return parse_prompt(thought, path.read_text(encoding="utf-8"))


def clean_response(text: str) -> str:
    """A teacher's reply as a rationale: surrounding code fences and blank space removed."""
    text = text.strip()
    if match := _FENCE.match(text):
        text = match.group(1).strip()
    return text
