"""The student's input text: the question and a selector saying which thought to write.

The default selectors are those of the paper's released ETD student
(`zhuxunyu/etd-codet5p-770m-py`), so that model can be imported and evaluated
as is (DESIGN.md, "Student input").
"""

from __future__ import annotations

SELECTORS = {
    "cot": "Let's think step by step.",
    "pot": "Let\u2019s break down the code step by step",
    "eot": "System of linear equations: (Do not simplify)",
}


def student_input(question: str, thought: str, selectors: dict[str, str] | None = None) -> str:
    return f"Question: {question}\n{(selectors or SELECTORS)[thought]}\n"
