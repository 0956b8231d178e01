"""Equations of thought: parse a system of equations safely and solve it for `ans`.

The text is untrusted (teacher or student output). It is parsed with Python's
`ast` and only a whitelist of nodes is turned into sympy objects built directly
(never `sympify` / `parse_expr`, which evaluate strings). Sizes are bounded so
that a hostile system cannot make sympy compute huge numbers. In production
this module runs inside a sandbox worker under a time limit (see `sandbox.py`).

Accepted: one `lhs = rhs` per line (or separated by `;`), `==` read as `=`;
numbers, identifiers, `+ - * / **`, parentheses, unary minus, `N%` as percent
(N/100) when no operand follows; `a % b` as modulo. Blank lines and `#`
comments are ignored.
"""

from __future__ import annotations

import ast
import math
import re
from fractions import Fraction

import sympy

from eotd_jax.thoughts.answers import MAX_DIGITS
from eotd_jax.thoughts.outcome import Failure, Outcome

MAX_CHARS = 10_000
MAX_EQUATIONS = 64
MAX_NODES = 4_000
MAX_EXPONENT = 64
MAX_RESULT_DIGITS = 400  # a power with numeric base may have at most this many digits
ANSWER_NAME = "ans"

_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%(?!\s*[\w(.])")


class EquationError(Exception):
    """A system that cannot be parsed; carries the typed failure."""

    def __init__(self, failure: Failure, message: str):
        super().__init__(message)
        self.failure = failure


def parse_system(text: str) -> list[sympy.Expr]:
    """Equations as expressions `lhs - rhs` (== 0), built without evaluating strings."""
    if len(text) > MAX_CHARS:
        raise EquationError(Failure.TOO_LARGE, f"system longer than {MAX_CHARS} characters")
    lines = [line.split("#", 1)[0].strip() for line in re.split(r"[\n;]", text)]
    lines = [line for line in lines if line]
    if not lines:
        raise EquationError(Failure.SYNTAX, "no equations")
    if len(lines) > MAX_EQUATIONS:
        raise EquationError(Failure.TOO_LARGE, f"more than {MAX_EQUATIONS} equations")
    builder = _Builder()
    return [builder.equation(line) for line in lines]


def solve_system(text: str) -> Outcome:
    """Solves the system for `ans` (rules for several solutions in `_pick_answer`)."""
    try:
        expressions = parse_system(text)
    except EquationError as error:
        return Outcome.fail(error.failure, str(error))
    answer = sympy.Symbol(ANSWER_NAME, real=True)
    symbols = sorted(set().union(*(e.free_symbols for e in expressions)), key=lambda s: s.name)
    if answer not in symbols:
        return Outcome.fail(Failure.NO_ANS, "no unknown named `ans`")
    try:
        expressions, definitions = _eliminate_definitions(expressions)
        if any(e.is_number and e != 0 for e in expressions):
            return Outcome.fail(Failure.INCONSISTENT, "the system has no solution")
        expressions = [e for e in expressions if not e.is_number]
        unknowns = sorted(set().union(*(e.free_symbols for e in expressions)), key=lambda s: s.name)
        if not expressions:
            solutions = [{}]
        elif all(_is_linear(e, unknowns) for e in expressions):
            solutions = _solve_linear(expressions, unknowns)
        else:
            solutions = sympy.solve(expressions, unknowns, dict=True)
    except (NotImplementedError, ValueError, TypeError, ZeroDivisionError) as error:
        return Outcome.fail(Failure.ERROR, f"sympy could not solve the system: {error}")
    return _pick_answer([_with_definitions(s, definitions) for s in solutions], answer)


def _eliminate_definitions(expressions: list[sympy.Expr]) -> tuple[list[sympy.Expr], list[tuple]]:
    """Substitutes away equations that define one unknown (`step2 = step1 * 3`).

    Teacher and student systems are mostly chains of such definitions; removing
    them leaves a small (often empty) system, where `sympy.solve` on the whole
    chain would take the slow nonlinear path as soon as two unknowns multiply.
    Systems with a symbolic exponent are left whole, so substitution can never
    build a huge power outside the size checks of the parser.
    """
    if any(p.exp.free_symbols for e in expressions for p in e.atoms(sympy.Pow)):
        return expressions, []
    remaining, definitions = list(expressions), []
    while True:
        found = next(((i, d) for i, e in enumerate(remaining) if (d := _definition(e))), None)
        if found is None:
            return remaining, definitions
        index, (symbol, value) = found
        remaining = [e.subs(symbol, value) for j, e in enumerate(remaining) if j != index]
        definitions = [(s, v.subs(symbol, value)) for s, v in definitions] + [(symbol, value)]


def _definition(expression: sympy.Expr) -> tuple | None:
    """(x, value) when `expression == 0` reads `c * x + rest == 0` with rest free of x."""
    for symbol in sorted(expression.free_symbols, key=lambda s: s.name):
        rest, dependent = expression.as_independent(symbol, as_Add=True)
        coefficient = dependent / symbol
        if coefficient.is_number and coefficient != 0:
            return symbol, -rest / coefficient
    return None


def _with_definitions(solution: dict, definitions: list[tuple]) -> dict:
    """A solution of the reduced system extended with the eliminated unknowns."""
    full = dict(solution)
    for symbol, value in definitions:
        full[symbol] = value.subs(solution)
    return full


def _is_linear(expression: sympy.Expr, symbols: list[sympy.Symbol]) -> bool:
    try:
        return sympy.Poly(expression, *symbols).total_degree() <= 1
    except sympy.PolynomialError:
        return False


def _solve_linear(expressions, symbols) -> list[dict]:
    solution_set = sympy.linsolve(expressions, symbols)
    return [dict(zip(symbols, values, strict=True)) for values in solution_set]


def _pick_answer(solutions: list[dict], answer: sympy.Symbol) -> Outcome:
    """One value of `ans` from all solutions.

    Solutions leaving `ans` free are underdetermined. Among the real values of
    `ans`, a unique value wins; else a unique positive value wins (word problems
    count things: x**2 = 16 means 4); anything else is ambiguous.
    """
    if not solutions:
        return Outcome.fail(Failure.INCONSISTENT, "the system has no solution")
    values = set()
    for solution in solutions:
        value = solution.get(answer, answer)
        if value.free_symbols:
            return Outcome.fail(Failure.UNDERDETERMINED, f"`ans` is not fixed: ans = {value}")
        if value.is_real is False:
            continue
        values.add(value)
    if not values:
        return Outcome.fail(Failure.INCONSISTENT, "the system has no real solution")
    if len(values) > 1:
        positive = {v for v in values if v.is_positive}
        if len(positive) != 1:
            return Outcome.fail(Failure.AMBIGUOUS, f"several values of `ans`: {sorted(values, key=str)}")
        values = positive
    return _to_outcome(values.pop())


def _to_outcome(value: sympy.Expr) -> Outcome:
    if value.is_Rational:
        return Outcome(value=Fraction(int(value.p), int(value.q)))
    numeric = value.evalf(30)
    if not numeric.is_Number or not math.isfinite(float(numeric)):
        return Outcome.fail(Failure.NOT_A_NUMBER, f"`ans` = {value} is not a finite number")
    return Outcome(value=Fraction(repr(float(numeric))))


class _Builder:
    """Walks a whitelisted `ast` and builds sympy objects, counting nodes."""

    _BINARY = {
        ast.Add: lambda a, b: a + b,
        ast.Sub: lambda a, b: a - b,
        ast.Mult: lambda a, b: a * b,
        ast.Div: lambda a, b: a / b,
        ast.Mod: lambda a, b: sympy.Mod(a, b),
    }

    def __init__(self):
        self.nodes = 0
        self.symbols: dict[str, sympy.Symbol] = {}

    def equation(self, line: str) -> sympy.Expr:
        line = _PERCENT.sub(r"(\1/100)", line.replace("==", "="))
        sides = line.split("=")
        if len(sides) != 2:
            raise EquationError(Failure.SYNTAX, f"expected one `=` in {line[:80]!r}")
        left, right = (self.expression(side) for side in sides)
        return left - right

    def expression(self, text: str) -> sympy.Expr:
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
            raise EquationError(Failure.SYNTAX, f"cannot parse {text.strip()[:80]!r}: {error}") from None
        try:
            return self.build(tree.body)
        except RecursionError:
            raise EquationError(Failure.TOO_LARGE, "expression nested too deeply") from None

    def build(self, node: ast.AST) -> sympy.Expr:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise EquationError(Failure.TOO_LARGE, f"more than {MAX_NODES} terms")
        if isinstance(node, ast.Constant):
            return _number(node.value)
        if isinstance(node, ast.Name):
            return self.symbols.setdefault(node.id, sympy.Symbol(node.id, real=True))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.build(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            return _power(self.build(node.left), self.build(node.right))
        if isinstance(node, ast.BinOp) and type(node.op) in self._BINARY:
            left, right = self.build(node.left), self.build(node.right)
            if isinstance(node.op, (ast.Div, ast.Mod)) and right == 0:
                raise EquationError(Failure.ERROR, "division by zero")
            return self._BINARY[type(node.op)](left, right)
        raise EquationError(Failure.FORBIDDEN, f"{type(node).__name__} is not allowed in an equation")


def _number(value: object) -> sympy.Expr:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EquationError(Failure.FORBIDDEN, f"constant {value!r:.40} is not a number")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EquationError(Failure.TOO_LARGE, "number overflows")
        if abs(value) >= 10.0**MAX_DIGITS:
            raise EquationError(Failure.TOO_LARGE, f"number {value:.3g} is too large")
        exact = Fraction(repr(value))
        return sympy.Rational(exact.numerator, exact.denominator)
    if value.bit_length() > MAX_DIGITS * 3.33:
        raise EquationError(Failure.TOO_LARGE, "integer literal is too large")
    return sympy.Integer(value)


def _power(base: sympy.Expr, exponent: sympy.Expr) -> sympy.Expr:
    if not exponent.is_Rational:
        raise EquationError(Failure.FORBIDDEN, "exponents must be numbers")
    if abs(exponent) > MAX_EXPONENT:
        raise EquationError(Failure.TOO_LARGE, f"exponent {exponent} is larger than {MAX_EXPONENT}")
    if base.is_Rational and base != 0:
        digits = abs(float(exponent)) * max(
            math.log10(abs(int(base.p))) if base.p else 0, math.log10(int(base.q))
        )
        if digits > MAX_RESULT_DIGITS:
            raise EquationError(Failure.TOO_LARGE, f"power has about {digits:.0f} digits")
    if base == 0 and exponent < 0:
        raise EquationError(Failure.ERROR, "division by zero")
    return base**exponent
