"""The offline gold teacher: all three thoughts derived from dataset annotations.

GSM8K solutions carry calculator steps, `<<48/2=24>>`. Each becomes a named
intermediate, `step1 = 48 / 2`; a later number equal to an earlier result (and
not in the question) is replaced by that step's name, so the PoT program and
the EoT system are real derivations, not copies of results. Solution lines
without annotations are searched for plain arithmetic (`20/4 = $5`). The final
step, or the last one whose result is the gold answer, becomes `ans`. CoT is
the solution text without annotations, ending in "The answer is N.". In the
"paper" prompt style, EoT is written as the paper's teacher writes it: before
each equation a `%` comment line, the prose step of the solution it comes from.

SVAMP, MultiArith and ASDiv carry one equation, which becomes `ans = <expr>`;
synthetic problems carry a declarative EoT system of their own.

Nothing here is trusted to be right: every derived rationale is verified like a
teacher's, and the yield says how often the annotations are usable.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Sequence
from fractions import Fraction
from typing import NamedTuple

from data_gen.teachers.base import Candidate, Usage
from eotd_jax.benchmarks import Problem
from eotd_jax.thoughts.answers import find_numbers, format_number, parse_number

_ANNOTATION = re.compile(r"<<([^<>]*)=([^<>=]*)>>")
_NUMBER = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
_UNIT = r"(?:\s+(?!x\b)[A-Za-z][\w'’-]*|/[A-Za-z]+)"  # "42 minutes", "$600/weekday"
_MIXED = r"\d+\s+\d+/\d+"  # "1 1/2"
_OPERAND = rf"\(?\$?(?:{_MIXED}|{_NUMBER})%?\)?{_UNIT}{{0,3}}"
_OPERATOR = r"\s*(?:[-+*/×÷−–]|\bx\b)\s*"
_INLINE = re.compile(rf"(?<![\w.,/])({_OPERAND}(?:{_OPERATOR}{_OPERAND})+)\s*=\s*\$?({_NUMBER})\s*(%?)")
_COMPACT = re.compile(rf"(?<![\w.,/])([\d$(][\d\s.,$%()+*/×÷−–-]*[\d)%])\s*=\s*\$?({_NUMBER})\s*(%?)")  # 3(10)
_TOKEN = re.compile(rf"({_NUMBER})\s*(%?)|(\*\*|//|[-+*/×÷^()−–])|\b(x)\b")
_OPERATORS = {"x": "*", "×": "*", "÷": "/", "^": "**", "−": "-", "–": "-"}
_PLAIN_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_EXPRESSION_OF = {
    "svamp": lambda equation: equation,
    "multiarith": lambda equation: equation.split("=", 1)[1],
    "asdiv": lambda equation: equation.rsplit("=", 1)[0],
}


def clean_expression(text: str, percent: bool = True) -> str:
    """Calculator notation or prose arithmetic as a Python/EoT expression.

    Units and currency are dropped, `x × ÷ ^` become `* / **`, and `N%` becomes
    `(N / 100)`, or plain N with `percent=False` ("100% - 40% = 60%").
    """
    text = re.sub(r"(\d+)\s+(\d+)/(\d+)", r"(\1 + \2 / \3)", text)
    text = re.sub(r"(?<=[\d)])\s*(?=\()|(?<=\))\s*(?=\d)", " * ", text)  # "2(3)" and "(1/2)(20)" multiply
    tokens = []
    for number, percent_sign, symbol, times in _TOKEN.findall(re.sub(r"/[A-Za-z]+", "", text)):
        if number:
            number = number.replace(",", "")
            tokens.append(f"({number} / 100)" if percent_sign and percent else number)
        else:
            tokens.append(_OPERATORS.get(symbol or times, symbol))
    return " ".join(tokens)


def arithmetic_value(expression: str, names: dict[str, Fraction] | None = None) -> Fraction | None:
    """The exact value of plain arithmetic over `names`, or None (never `eval`: dataset text is untrusted)."""
    try:
        return _evaluate(ast.parse(expression, mode="eval").body, names or {})
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError, OverflowError):
        return None


def _evaluate(node: ast.AST, names: dict[str, Fraction]) -> Fraction:
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _evaluate(node.operand, names)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, names), _evaluate(node.right, names)
        if isinstance(node.op, ast.Pow):
            if right.denominator != 1 or abs(right) > 64 or abs(left.numerator) > 10**12:
                raise ValueError("power too large")
            return left ** int(right)
        operations = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
                      ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv}
        if type(node.op) in operations:
            return Fraction(operations[type(node.op)](left, right))
    raise ValueError("not plain arithmetic")


class Step(NamedTuple):
    """One calculation of a solution: Python/EoT expression, its exact value, the result as written, its line."""

    expression: str
    value: Fraction
    written: Fraction
    line: str = ""


def _step(expression_text: str, result_text: str, result_percent: str = "") -> tuple[str, Fraction, Fraction] | None:
    """(expression, value, written result) of one calculation, reading `%` the way the written result agrees with."""
    written = parse_number(result_text)
    if written is None:
        return None
    readings = []
    for percent in (True, False):
        expression = clean_expression(expression_text, percent)
        if "//" in expression:  # EoT has no floor division; keep it only where it is exact
            expression = expression.replace("//", "/")
        value = arithmetic_value(expression)
        if value is not None:
            readings.append((expression, value))
    for result in (written, written / 100) if result_percent else (written,):
        for expression, value in readings:
            if abs(value - result) <= abs(result) / 100 + Fraction(1, 100):  # written results are rounded
                return expression, value, result
    return (*readings[0], readings[0][1]) if readings else None


def solution_steps(solution: str) -> list[Step]:
    """Each calculation in a GSM8K-style solution, in order, with the prose line it is on."""
    steps = []
    for line in solution.splitlines():
        found = [(m.group(1), m.group(2), "") for m in _ANNOTATION.finditer(line)]
        if not found:
            found = [m.groups() for m in _INLINE.finditer(line)] or [m.groups() for m in _COMPACT.finditer(line)]
        prose = " ".join(_ANNOTATION.sub("", line).split()).rstrip(" .:")
        steps.extend(Step(*step, prose) for found_step in found if (step := _step(*found_step)))
    return steps


def derivation(steps: list[Step], question: str, answer: Fraction, program: bool) -> list[str] | None:
    """`name = expression` lines ending in `ans = ...`, or None when there are no steps.

    Earlier results are referred to by name; where that changes the value (a
    rounded result, or a number that only looks like an earlier one), the
    literal numbers are kept instead, so the derivation computes what the
    solution computes. A `program` (PoT) may end by rounding (`math.ceil`),
    which equations cannot express.
    """
    if not steps:
        return None
    lines = _named_steps(steps, question, answer, True, program)
    if not _computes(lines, answer):
        lines = _named_steps(steps, question, answer, False, program)
    return lines


def _named_steps(steps: list[Step], question: str, answer: Fraction, linked: bool, program: bool) -> list[str]:
    given = {parse_number(number) for number in find_numbers(question)}
    names: dict[Fraction, str] = {}
    lines = []
    for index, (expression, value, written, _) in enumerate(steps, 1):

        def name_of(match: re.Match) -> str:
            number = parse_number(match.group(0))
            return names[number] if number in names and number not in given else match.group(0)

        lines.append(f"step{index} = " + (_PLAIN_NUMBER.sub(name_of, expression) if linked else expression))
        names[value] = names[written] = f"step{index}"
    final = next((i for i in range(len(steps), 0, -1) if answer in (steps[i - 1].value, steps[i - 1].written)), None)
    if final is None and ("%" in question or "percent" in question.lower()):
        final = next((i for i in range(len(steps), 0, -1) if answer == 100 * steps[i - 1].value), None)
        if final is not None:  # a fraction asked for as a percentage
            lines.append(f"ans = step{final} * 100")
            return lines
    last_value = steps[-1].value
    rounded = (math.floor(last_value), math.ceil(last_value))
    if final is None and program and last_value.denominator != 1 and answer in rounded:
        rounding = "ceil" if answer == math.ceil(last_value) else "floor"  # "... so she needs 4 bottles"
        return ["import math", *lines, f"ans = math.{rounding}(step{len(steps)})"]
    if final is None or final == len(steps):
        final = len(steps)
        lines[-1] = "ans" + lines[-1][len(f"step{final}"):]
    else:
        lines.append(f"ans = step{final}")
    return lines


def _computes(lines: list[str], answer: Fraction) -> bool:
    values: dict[str, Fraction] = {}
    for line in lines:
        if line == "import math":
            continue
        name, expression = line.split(" = ", 1)
        value = arithmetic_value(expression, values)
        if value is None:
            return False
        values[name] = value
    return abs(values["ans"] - answer) <= abs(answer) * Fraction(1, 10**6)


def cot_from_solution(solution: str, answer: Fraction) -> str:
    text = _ANNOTATION.sub("", solution).strip()
    return f"{text}\nThe answer is {format_number(answer)}."


def commented_system(lines: list[str], comments: list[str], question: str) -> str:
    """The paper's EoT format: a `% <fact in words>:` line before each equation (the question before the last)."""
    asked = _question_asked(question)
    out = []
    for index, line in enumerate(lines):
        comment = comments[index] if index < len(comments) and comments[index] else asked
        out += [f"% {comment}:", line]
    return "\n".join(out)


def _question_asked(question: str) -> str:
    sentences = [s for s in re.split(r"(?<=[.?!])\s+", " ".join(question.split())) if s]
    asked = next((s for s in reversed(sentences) if s.endswith("?")), sentences[-1] if sentences else "")
    return asked.rstrip(" .:")


class GoldTeacher:
    """Derives thoughts from annotations; one sample per problem and thought."""

    name = "gold"

    def __init__(self, style: str = "paper"):
        self.style = style
        self.usage = Usage()

    def generate(self, problems: Sequence[Problem], thoughts: Sequence[str], samples: int) -> list[Candidate]:
        candidates = []
        for problem in problems:
            rationales = gold_rationales(problem, self.style)
            for thought in thoughts:
                text = rationales.get(thought)
                failure = None if text else "no_annotations"
                candidates.append(Candidate(problem.id, thought, 0, text, failure))
        return candidates


def gold_rationales(problem: Problem, style: str = "paper") -> dict[str, str]:
    """The thoughts the annotations of `problem` give; a thought is absent when they give none.

    `style` "paper" writes EoT with `%` comment lines (the GSM8K prose step, or the question); "compact" without.
    """
    benchmark = problem.source.split("/", 1)[0]
    paper = style == "paper"
    rationales = {}
    if problem.solution:
        steps = solution_steps(problem.solution)
        for thought in ("pot", "eot"):
            if lines := derivation(steps, problem.question, problem.answer, program=thought == "pot"):
                comments = [step.line for step in steps]
                commented = thought == "eot" and paper
                rationales[thought] = commented_system(lines, comments, problem.question) if commented else (
                    "\n".join(lines))
        rationales["cot"] = cot_from_solution(problem.solution, problem.answer)
    if problem.equation and benchmark in _EXPRESSION_OF:
        expression = _EXPRESSION_OF[benchmark](problem.equation).strip()
        rationales.setdefault("pot", f"ans = {expression}")
        rationales.setdefault("cot", f"{expression} = {format_number(problem.answer)}.\n"
                                     f"The answer is {format_number(problem.answer)}.")
        equation = f"ans = {expression}"
        rationales["eot"] = commented_system([equation], [], problem.question) if paper else equation
    elif problem.equation:
        rationales["eot"] = problem.equation
    return rationales
