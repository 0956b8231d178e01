"""Equations of thought: parse a system of equations safely and solve it for `ans`.

The text is untrusted (teacher or student output). It is parsed with Python's
`ast` and only a whitelist of nodes is turned into sympy objects built directly
(never `sympify` / `parse_expr`, which evaluate strings). Sizes are bounded so
that a hostile system cannot make sympy compute huge numbers. In production
this module runs inside a sandbox worker under a time limit (see `sandbox.py`).

Accepted: one `lhs = rhs` per line (or separated by `;`), `==` read as `=`;
numbers, identifiers, `+ - * / **`, parentheses, unary minus, `N%` as percent
(N/100) when no operand follows; `a % b` as modulo; the functions `floor ceil
round abs sqrt min max int float` (also as `math.floor`...). Blank lines and `#`
comments are ignored. What models write around this (`%` comment lines, `^`,
`×`, fences, ...) is turned into this form by `reading.read_rationale` first.

A division by an expression that is zero at the solution is a failure, even
where sympy cancelled it (`(y - 1) / (y - 1)`); every answer obeys the digit
cap of `answers.MAX_DIGITS`; the degree of a polynomial in the unknowns and
the size of every number met while substituting are bounded.
"""

from __future__ import annotations

import ast
import math
import re
from fractions import Fraction

import sympy

from eotd_jax.thoughts.answers import MAX_DIGITS, too_many_digits
from eotd_jax.thoughts.outcome import Failure, Outcome

MAX_CHARS = 10_000
MAX_EQUATIONS = 64
MAX_NODES = 4_000
MAX_EXPONENT = 64
MAX_DEGREE = 8  # of any equation in its unknowns: word problems are linear, sometimes quadratic
MAX_RESULT_DIGITS = 400  # a number built while parsing or substituting may have at most this many digits
ANSWER_NAME = "ans"

# `N%` is a percent unless an operand (or another `%`) follows: `20% * 50`, but `7 % 3` and `5 %% 3`.
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%(?!\s*[\w(.%])")


class EquationError(Exception):
    """A system that cannot be parsed; carries the typed failure."""

    def __init__(self, failure: Failure, message: str):
        super().__init__(message)
        self.failure = failure


def _parse(text: str) -> tuple[list[sympy.Expr], list[sympy.Expr]]:
    """(equations as `lhs - rhs`, every non-constant divisor met)."""
    if len(text) > MAX_CHARS:
        raise EquationError(Failure.TOO_LARGE, f"system longer than {MAX_CHARS} characters")
    statements = [part.strip() for line in text.splitlines() for part in line.split("#", 1)[0].split(";")]
    statements = [statement for statement in statements if statement]
    if not statements:
        raise EquationError(Failure.SYNTAX, "no equations")
    if len(statements) > MAX_EQUATIONS:
        raise EquationError(Failure.TOO_LARGE, f"more than {MAX_EQUATIONS} equations")
    builder = _Builder()
    equations = [builder.equation(statement) for statement in statements]
    for equation in equations:
        _check_size(equation)
    return equations, builder.divisors


def solve_system(text: str) -> Outcome:
    """Solves the system for `ans` (rules for several solutions in `_pick_answer`)."""
    try:
        expressions, divisors = _parse(text)
    except EquationError as error:
        return Outcome.fail(error.failure, str(error))
    except RecursionError:
        return Outcome.fail(Failure.TOO_LARGE, "expression nested too deeply")
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
        elif len(unknowns) == 1 and all(e.is_polynomial(unknowns[0]) for e in expressions):
            solutions = _real_roots(expressions, unknowns[0])
        else:
            solutions = sympy.solve(expressions, unknowns, dict=True)
        solutions = [_with_definitions(s, definitions) for s in solutions]
    except EquationError as error:
        return Outcome.fail(error.failure, str(error))
    except (NotImplementedError, ValueError, TypeError, ZeroDivisionError, AttributeError) as error:
        return Outcome.fail(Failure.ERROR, f"sympy could not solve the system: {error}")
    except RecursionError:
        return Outcome.fail(Failure.TOO_LARGE, "the system is nested too deeply to solve")
    defined = [s for s in solutions if not any(_is_zero(d.subs(s)) for d in divisors)]
    if solutions and not defined:
        return Outcome.fail(Failure.ERROR, "division by zero at the solution")
    return _pick_answer(defined, answer)


def _is_zero(value: sympy.Expr) -> bool:
    return not value.free_symbols and value.is_zero is True


def _check_size(expression: sympy.Expr) -> None:
    """Bounds the degree in the unknowns and the digits of every number (before sympy works on it)."""
    if expression.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        raise EquationError(Failure.ERROR, "division by zero")
    if _degree(expression) > MAX_DEGREE:
        raise EquationError(Failure.TOO_LARGE, f"an equation has degree above {MAX_DEGREE} in its unknowns")
    for number in expression.atoms(sympy.Rational):
        if _digits(number) > MAX_RESULT_DIGITS:
            raise EquationError(Failure.TOO_LARGE, f"a number has more than {MAX_RESULT_DIGITS} digits")


def _digits(number: sympy.Rational) -> int:
    return max(len(str(abs(int(number.p)))), len(str(int(number.q))))


def _degree(expression: sympy.Expr) -> float:
    """An upper bound of the total degree in the unknowns, read off the tree (nothing is expanded)."""
    if expression.is_Symbol:
        return 1
    if not expression.free_symbols:
        return 0
    if expression.is_Pow and expression.exp.is_Rational:
        return _degree(expression.base) * math.ceil(abs(expression.exp))
    if expression.is_Pow:
        return math.inf
    if expression.is_Mul:
        return sum(_degree(arg) for arg in expression.args)
    return max(_degree(arg) for arg in expression.args)


def _eliminate_definitions(expressions: list[sympy.Expr]) -> tuple[list[sympy.Expr], list[tuple]]:
    """Substitutes away equations that define one unknown (`step2 = step1 * 3`).

    Teacher and student systems are mostly chains of such definitions; removing
    them leaves a small (often empty) system, where `sympy.solve` on the whole
    chain would take the slow nonlinear path as soon as two unknowns multiply.
    Every expression is size-checked after each substitution, so a chain of
    powers (`b = a ** 64`, `c = b ** 64`, ...) stops at the first oversized step.
    """
    remaining, definitions = list(expressions), []
    while True:
        found = next(((i, d) for i, e in enumerate(remaining) if (d := _definition(e))), None)
        if found is None:
            return remaining, definitions
        index, (symbol, value) = found
        remaining = [e.subs(symbol, value) for j, e in enumerate(remaining) if j != index]
        definitions = [(s, v.subs(symbol, value)) for s, v in definitions] + [(symbol, value)]
        for expression in remaining + [v for _, v in definitions]:
            _check_size(expression)


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


def _real_roots(expressions: list[sympy.Expr], symbol: sympy.Symbol) -> list[dict]:
    """Real roots common to polynomials in one unknown, exact even where no radical formula exists (degree 5+)."""
    polynomials = [sympy.Poly(sympy.together(e).as_numer_denom()[0], symbol) for e in expressions]
    common = polynomials[0]
    for polynomial in polynomials[1:]:
        common = sympy.gcd(common, polynomial)
    if common.degree() < 1:
        return []
    return [{symbol: root} for root in set(sympy.real_roots(common))]


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
        exact = Fraction(int(value.p), int(value.q))
    else:
        numeric = value.evalf(30)
        if not numeric.is_Number or not math.isfinite(float(numeric)):
            return Outcome.fail(Failure.NOT_A_NUMBER, f"`ans` = {value} is not a finite number")
        exact = Fraction(repr(float(numeric)))
    if too_many_digits(exact):
        return Outcome.fail(Failure.TOO_LARGE, f"`ans` has more than {MAX_DIGITS} digits")
    return Outcome(value=exact)


def _round(value: sympy.Expr, places: sympy.Expr = sympy.Integer(0)) -> sympy.Expr:
    """Rounding half up, as word problems mean it (`round(2.5)` is 3)."""
    if not places.is_Integer or not 0 <= places <= 10:
        raise EquationError(Failure.FORBIDDEN, "round() takes a whole number of places from 0 to 10")
    scale = sympy.Integer(10) ** places
    return sympy.floor(value * scale + sympy.Rational(1, 2)) / scale


# name -> (sympy builder, smallest and largest number of arguments)
_FUNCTIONS = {
    "floor": (sympy.floor, 1, 1),
    "ceil": (sympy.ceiling, 1, 1),
    "ceiling": (sympy.ceiling, 1, 1),
    "round": (_round, 1, 2),
    "abs": (sympy.Abs, 1, 1),
    "sqrt": (lambda x: _power(x, sympy.Rational(1, 2)), 1, 1),
    "min": (sympy.Min, 2, 8),
    "max": (sympy.Max, 2, 8),
    "int": (lambda x: sympy.sign(x) * sympy.floor(sympy.Abs(x)), 1, 1),  # Python's int(): toward zero
    "float": (lambda x: x, 1, 1),
}


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
        self.divisors: list[sympy.Expr] = []

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
            base, exponent = self.build(node.left), self.build(node.right)
            if base.free_symbols and exponent.is_Rational and exponent < 0:
                self.divisors.append(base)
            return _power(base, exponent)
        if isinstance(node, ast.BinOp) and type(node.op) in self._BINARY:
            left, right = self.build(node.left), self.build(node.right)
            if isinstance(node.op, (ast.Div, ast.Mod)):
                if right == 0:
                    raise EquationError(Failure.ERROR, "division by zero")
                if right.free_symbols:
                    self.divisors.append(right)
            return self._BINARY[type(node.op)](left, right)
        if isinstance(node, ast.Call):
            return self.call(node)
        raise EquationError(Failure.FORBIDDEN, f"{type(node).__name__} is not allowed in an equation")

    def call(self, node: ast.Call) -> sympy.Expr:
        """One of `_FUNCTIONS`, called by name or as `math.<name>`, with positional arguments only."""
        function = node.func
        if isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name) and function.value.id == "math":
            name = function.attr
        else:
            name = function.id if isinstance(function, ast.Name) else ""
        if name not in _FUNCTIONS or node.keywords:
            raise EquationError(Failure.FORBIDDEN, f"only the functions {', '.join(_FUNCTIONS)} are allowed")
        builder, fewest, most = _FUNCTIONS[name]
        if not fewest <= len(node.args) <= most:
            raise EquationError(Failure.SYNTAX, f"{name}() takes {fewest} to {most} arguments")
        return builder(*(self.build(arg) for arg in node.args))


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
    elif not base.is_Rational and _degree(base) * math.ceil(abs(exponent)) > MAX_DEGREE:
        raise EquationError(Failure.TOO_LARGE, f"a power of degree above {MAX_DEGREE} in the unknowns")
    if base == 0 and exponent < 0:
        raise EquationError(Failure.ERROR, "division by zero")
    return base**exponent
