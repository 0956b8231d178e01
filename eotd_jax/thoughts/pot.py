"""Program of thought: screen and run one untrusted Python program, read `ans`.

This code runs inside a sandbox worker process (see `worker.py`), never in the
main process. It is the innermost of several layers:
1. a static screen of the AST: only whitelisted imports, no dunder names (but
   `__name__`), no attributes starting with `_`, no frame/code attributes, no
   attribute named in a string (`"{0.x}".format` only called on a constant
   template, whose fields are checked);
2. restricted builtins and an importer that hands out read-only proxies of a
   few pure numeric modules (their submodules and private names left out, and
   the functions that reach attributes named by their arguments withheld);
3. the child's audit hook, which also screens every string compiled while the
   program runs (`singledispatch` annotations, sympy), then the kernel: a fresh
   process per task, rlimits, Landlock, seccomp, namespaces and a dropped uid
   (see `confine.py`), and the parent's wall-clock kill, which hold even if 1
   and 2 are bypassed.

The runtime a program sees:
- the prelude (`PRELUDE`): names a model often uses without importing them,
  written for a runtime that pre-imports them (`ceil`, `sqrt`, `gcd`, `lcm`,
  `comb`, `factorial`, `pi` and the rest of `math`, `Fraction`, `Decimal`, and
  the allowed modules themselves, as in `math.ceil(x)` with no `import math`).
  The reader writes the imports for the prelude names a program leaves unbound
  at the top of its verified form (`prelude_imports`), so the kept form states
  what was bound; builtins keep their meaning (`pow` stays the builtin). The
  sandbox itself binds nothing implicitly;
- sympy, in the zygotes that load it (`sympy_modules`): the names of
  `SYMPY_NAMES` (symbols, Eq, solve, Rational, ...), with the time and memory
  bounds of every task; a string sympy evaluates (`sympify("x - 2")`) is
  Python compiled at run time, screened by the hook like the program;
- `ans` read as one exact number (`answer_value`): ints, floats, fractions,
  decimals, numeric text (`"1,234"`), sympy numbers and numeric expressions
  (`sqrt(2)` as its float), and a list, tuple, set or dict holding exactly one
  such value (`solve(...)` giving `[5]` or `[{x: 5}]`); several values are
  `ambiguous`, none `not_a_number`.
"""

from __future__ import annotations

import _string
import ast
import builtins
import collections
import datetime
import decimal
import fractions
import functools
import importlib
import itertools
import math
import random
import statistics
import string
import sys
import types
from collections.abc import Callable, Iterable, Mapping

from eotd_jax.thoughts.answers import parse_number
from eotd_jax.thoughts.outcome import Failure

MAX_SOURCE_CHARS = 20_000
MAX_INT_DIGITS = 64
_MAX_NESTING = 3  # `ans` = [{x: 5}]: a value inside at most this many single-value containers

ALLOWED_MODULES = types.MappingProxyType({
    module.__name__: module
    for module in (math, fractions, decimal, statistics, itertools, functools, collections, datetime, random)
})
# Functions that read or write attributes named by their arguments (`update_wrapper(w, f, updated=('__globals__',))`
# merges a module's globals into the program): a program gets none of them. Reviewed as safe, though they name
# attributes or compile at run time: `total_ordering` (fixed names), `lru_cache` and `singledispatchmethod`
# (`update_wrapper` with its fixed default names), `namedtuple` (field names must be identifiers without a
# leading `_`; its code is screened by the hook), `singledispatch` (annotations: screened by the hook).
WITHHELD = types.MappingProxyType({
    "functools": frozenset({"update_wrapper", "wraps", "WRAPPER_ASSIGNMENTS", "WRAPPER_UPDATES"}),
})
SYMPY_NAMES = frozenset(
    "symbols Symbol Eq Ne Lt Le Gt Ge solve solveset linsolve nonlinsolve nsolve reduce_inequalities Rational "
    "Integer Float N S nsimplify sympify simplify expand factor together cancel apart collect trigsimp sqrt cbrt "
    "root Abs sign floor ceiling frac Min Max pi E I oo exp log ln sin cos tan cot sec csc asin acos atan atan2 "
    "sinh cosh tanh factorial binomial gcd lcm igcd ilcm isprime prime primerange nextprime prevprime primefactors "
    "divisors divisor_count factorint totient mod_inverse Mod Poly roots real_roots nroots Matrix eye zeros ones "
    "diff integrate limit summation Sum product Product series Interval Union FiniteSet Function Piecewise re im "
    "fraction numer denom fibonacci gamma Point Line Segment Triangle Circle Polygon Derivative Integral".split()
)
PRELUDE = types.MappingProxyType({
    **{name: "math" for name in dir(math) if not name.startswith("_") and not hasattr(builtins, name)},
    "Fraction": "fractions",
    "Decimal": "decimal",
    **{name: name for name in ALLOWED_MODULES},
})
_FRAME_ATTRIBUTES = frozenset(
    "f_globals f_locals f_builtins f_back f_code gi_frame gi_code gi_yieldfrom cr_frame cr_code "
    "cr_await ag_frame ag_code tb_frame tb_next co_code mro format_map".split()
)
# Dunder methods a class in a program may define; never `__del__` (runs at an unknown time),
# `__getattr__`/`__getattribute__`/`__setattr__`, `__init_subclass__`, `__set_name__`, `__reduce__`...
_ALLOWED_DUNDER_DEFS = frozenset(
    "__init__ __repr__ __str__ __eq__ __ne__ __lt__ __le__ __gt__ __ge__ __hash__ __bool__ __len__ "
    "__iter__ __next__ __contains__ __getitem__ __setitem__ __call__ __int__ __float__ __index__ "
    "__add__ __radd__ __iadd__ __sub__ __rsub__ __isub__ __mul__ __rmul__ __imul__ __truediv__ "
    "__rtruediv__ __itruediv__ __floordiv__ __rfloordiv__ __mod__ __rmod__ __pow__ __rpow__ __neg__ "
    "__pos__ __abs__ __round__".split()
)
_FORBIDDEN_NAMES = frozenset(
    "open eval exec compile globals locals vars getattr setattr delattr input breakpoint exit quit "
    "help memoryview type object super dir id classmethod staticmethod property".split()
)
_SAFE_BUILTINS = (
    "abs all any bin bool chr complex dict divmod enumerate filter float format frozenset hex "
    "int isinstance len list map max min next oct ord pow range repr reversed round set slice "
    "sorted str sum tuple zip ArithmeticError AssertionError Exception IndexError KeyError "
    "OverflowError StopIteration TypeError ValueError ZeroDivisionError True False None"
).split()


class ProgramFailure(Exception):
    """A typed reason this program gives no answer."""

    def __init__(self, failure: Failure, message: str):
        super().__init__(message)
        self.failure = failure


def prelude_imports(unbound: Iterable[str]) -> list[ast.stmt]:
    """The imports that bind the prelude names among `unbound` (names a program reads and never binds),
    modules first, then one `from ... import ...` per module, in a fixed order."""
    wanted = sorted(set(unbound) & PRELUDE.keys())
    statements: list[ast.stmt] = [ast.Import([ast.alias(name)]) for name in wanted if PRELUDE[name] == name]
    by_module: dict[str, list[str]] = collections.defaultdict(list)
    for name in wanted:
        if PRELUDE[name] != name:
            by_module[PRELUDE[name]].append(name)
    return statements + [ast.ImportFrom(module, [ast.alias(n) for n in names], 0)
                         for module, names in sorted(by_module.items())]


def screen(source: str) -> ast.Module:
    """Parses the program and rejects forbidden constructs before anything runs."""
    if len(source) > MAX_SOURCE_CHARS:
        raise ProgramFailure(Failure.TOO_LARGE, f"program longer than {MAX_SOURCE_CHARS} characters")
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        raise ProgramFailure(Failure.SYNTAX, f"program does not parse: {error}") from None
    called_formats = {
        id(node.func) for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"
    }
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            _check_import(node)
        elif isinstance(node, ast.Attribute):
            _check_attribute(node.attr)
            if node.attr == "format":  # only `"<template>".format(...)`: a template whose fields are checked
                if id(node) not in called_formats:
                    raise ProgramFailure(Failure.FORBIDDEN, "`.format` not called on a template is not allowed")
                _check_format_call(node.value)
        elif isinstance(node, ast.Name) and (
            node.id in _FORBIDDEN_NAMES or (node.id.startswith("__") and node.id != "__name__")
        ):
            raise ProgramFailure(Failure.FORBIDDEN, f"name {node.id!r} is not allowed")
        elif isinstance(node, (ast.Global, ast.Nonlocal, ast.AsyncFunctionDef, ast.Await)):
            raise ProgramFailure(Failure.FORBIDDEN, f"{type(node).__name__} is not allowed")
        elif isinstance(node, ast.MatchClass):  # `case C(__globals__=g)` reads an attribute
            for attr in node.kwd_attrs:
                _check_attribute(attr)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name.startswith("__"):
            if node.name not in _ALLOWED_DUNDER_DEFS:
                raise ProgramFailure(Failure.FORBIDDEN, f"defining {node.name!r} is not allowed")
    return tree


def _check_import(node: ast.Import | ast.ImportFrom) -> None:
    modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else [alias.name for alias in node.names]
    for module in modules:
        if module not in ALLOWED_MODULES and module != "sympy" or getattr(node, "level", 0):
            raise ProgramFailure(Failure.FORBIDDEN, f"import of {module!r} is not allowed")
    if isinstance(node, ast.ImportFrom):
        for alias in node.names:
            if alias.name.startswith("_"):
                raise ProgramFailure(Failure.FORBIDDEN, "importing private names is not allowed")
            _check_available(node.module, alias.name)


def _check_available(module: str, name: str) -> None:
    if name in WITHHELD.get(module, ()):
        raise ProgramFailure(
            Failure.FORBIDDEN, f"{module}.{name} is not allowed (it reaches attributes named by its arguments)"
        )
    if module == "sympy" and name not in SYMPY_NAMES and name != "*":
        raise ProgramFailure(Failure.FORBIDDEN, f"sympy.{name} is not allowed (the sandbox offers pot.SYMPY_NAMES)")


def _check_attribute(attr: str) -> None:
    if attr.startswith("_") or attr in _FRAME_ATTRIBUTES:
        raise ProgramFailure(Failure.FORBIDDEN, f"attribute {attr!r} is not allowed")


def _check_format_call(receiver: ast.expr) -> None:
    """`"{0.__class__}".format(x)` walks attributes: only constant templates, with safe field paths."""
    if not (isinstance(receiver, ast.Constant) and isinstance(receiver.value, str)):
        raise ProgramFailure(Failure.FORBIDDEN, "`.format` on a computed string is not allowed (use an f-string)")
    _check_template(receiver.value, depth=0)


def _check_template(template: str, depth: int) -> None:
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ProgramFailure(Failure.SYNTAX, f"bad format string: {error}") from None
    for _, field, spec, _ in fields:
        if field is None:
            continue
        try:
            _, path = _string.formatter_field_name_split(field)
            path = list(path)
        except ValueError as error:
            raise ProgramFailure(Failure.SYNTAX, f"bad format field {field!r}: {error}") from None
        for is_attribute, key in path:
            if is_attribute:
                _check_attribute(key)
        if spec and depth < 2:
            _check_template(spec, depth + 1)


class _ModuleProxy(types.SimpleNamespace):
    """The public, non-module names of a module: no path from `fractions` to `sys`; a withheld name says why."""

    def __init__(self, name: str, names: Mapping[str, object]):
        super().__init__(**names)
        self._module_name = name

    def __getattr__(self, name: str):
        if not name.startswith("_"):  # the import system asks for `__all__`, `__path__`...
            _check_available(self._module_name, name)
        raise AttributeError(f"module {self._module_name!r} has no attribute {name!r} in the sandbox")


def _module_proxy(module: types.ModuleType, names: Iterable[str] | None = None) -> _ModuleProxy:
    withheld = WITHHELD.get(module.__name__, frozenset())
    public = {
        name: value
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name not in withheld
        and (names is None or name in names)
    }
    return _ModuleProxy(module.__name__, public)


MODULES = types.MappingProxyType({name: _module_proxy(module) for name, module in ALLOWED_MODULES.items()})


def sympy_modules() -> Mapping[str, object]:
    """The modules of a zygote that loads sympy: the standard ones and `SYMPY_NAMES` of sympy (imported here)."""
    sympy = importlib.import_module("sympy")
    return types.MappingProxyType({**MODULES, "sympy": _module_proxy(sympy, SYMPY_NAMES)})


# Imported by C code on behalf of a program (`datetime.strptime`, `strftime`) through the
# program's own `__import__`; the screen keeps programs from naming them.
_INTERNAL_IMPORTS = types.MappingProxyType({name: importlib.import_module(name) for name in ("_strptime", "time")})


def _importer(modules: Mapping[str, object]):
    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if not level and name in _INTERNAL_IMPORTS:
            return _INTERNAL_IMPORTS[name]
        if level or name not in modules:
            raise ProgramFailure(Failure.FORBIDDEN, f"import of {name!r} is not allowed")
        return modules[name]

    return guarded_import


def compile_program(source: str) -> types.CodeType:
    """The screened program, compiled: none of its code has run."""
    return compile(screen(source), "<program>", "exec")


def run_compiled(code: types.CodeType, print_function: Callable, modules: Mapping[str, object] = MODULES):
    """Runs a compiled program with restricted builtins; returns its answer (`answer_value`)."""
    safe_builtins = {name: getattr(builtins, name) for name in _SAFE_BUILTINS}
    safe_builtins.update(__import__=_importer(modules), __build_class__=builtins.__build_class__,
                         print=print_function)
    namespace = {"__builtins__": safe_builtins, "__name__": "__main__"}
    try:
        exec(code, namespace)  # noqa: S102 - untrusted code, inside the sandbox worker only
        if "ans" in namespace:
            value = namespace["ans"]
        elif callable(namespace.get("solution")):
            value = namespace["solution"]()
        else:
            raise ProgramFailure(Failure.NO_ANS, "the program sets no `ans` and defines no `solution()`")
        return answer_value(value)
    except (ProgramFailure, MemoryError, RecursionError):
        raise
    except Exception as error:  # the program's own bug: report it, keep serving
        raise ProgramFailure(Failure.ERROR, f"{type(error).__name__}: {error}") from None


def run_program(source: str, print_function: Callable, modules: Mapping[str, object] = MODULES):
    """Screens, compiles and runs a program; returns its answer as an exact Fraction."""
    return run_compiled(compile_program(source), print_function, modules)


def answer_value(value: object, depth: int = 0) -> fractions.Fraction:
    """The one exact number `ans` holds (rules in the module doc); ProgramFailure for anything else."""
    value = _from_sympy(value)
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        kind = type(value).__name__
        if len(value) != 1 or depth >= _MAX_NESTING:
            if len(value) > 1:
                raise ProgramFailure(Failure.AMBIGUOUS, f"`ans` holds {len(value)} values (a {kind}), not one answer")
            raise ProgramFailure(Failure.NOT_A_NUMBER, f"`ans` is a {kind} of {len(value)} values, not a number")
        (item,) = value.values() if isinstance(value, dict) else value
        return answer_value(item, depth + 1)
    if isinstance(value, bool):
        raise ProgramFailure(Failure.NOT_A_NUMBER, "`ans` is a bool")
    if isinstance(value, int):
        if value.bit_length() > MAX_INT_DIGITS * 3.33:
            raise ProgramFailure(Failure.TOO_LARGE, f"`ans` has more than {MAX_INT_DIGITS} digits")
        return fractions.Fraction(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ProgramFailure(Failure.NOT_A_NUMBER, f"`ans` is {value}")
        return fractions.Fraction(repr(float(value)))
    if isinstance(value, fractions.Fraction):
        return answer_value(value.numerator) / answer_value(value.denominator)
    if isinstance(value, decimal.Decimal):
        return answer_value(float(value)) if value.is_finite() else answer_value(math.inf)
    if isinstance(value, complex) and value.imag == 0:
        return answer_value(value.real)
    if isinstance(value, str) and len(value) < 200:
        return _number_in_text(value)
    raise ProgramFailure(Failure.NOT_A_NUMBER, f"`ans` is a {type(value).__name__}, not a number")


def _number_in_text(text: str) -> fractions.Fraction:
    try:
        number = parse_number(str(text))
    except (ValueError, ArithmeticError):
        number = None
    if number is None:
        raise ProgramFailure(Failure.NOT_A_NUMBER, f"`ans` = {text[:80]!r} is not a number")
    return number


def _from_sympy(value: object) -> object:
    """A sympy value as the Python value it stands for; anything else unchanged.

    Only a zygote that loaded sympy can hold sympy values, so a program without sympy never imports it here.
    """
    sympy = sys.modules.get("sympy")
    if sympy is None or not isinstance(value, sympy.Basic):
        return value
    if isinstance(value, (sympy.FiniteSet, sympy.Tuple)):
        return tuple(value)
    if isinstance(value, sympy.Integer):
        return int(value)
    if isinstance(value, sympy.Rational):
        return fractions.Fraction(int(value.p), int(value.q))
    if not isinstance(value, sympy.Expr) or value.free_symbols or not value.is_number:
        names = ", ".join(sorted(str(s) for s in getattr(value, "free_symbols", ())))[:80]
        reason = f"an expression in {names}" if names else f"a sympy {type(value).__name__}"
        raise ProgramFailure(Failure.NOT_A_NUMBER, f"`ans` is {reason}, not a number")
    real, imaginary = value.evalf(30).as_real_imag()
    if imaginary != 0 or not real.is_Float and not real.is_Rational:
        raise ProgramFailure(Failure.NOT_A_NUMBER, f"`ans` = {str(value)[:80]} is not a real number")
    return float(real)
