"""Program of thought: screen and run one untrusted Python program, read `ans`.

This code runs inside a sandbox worker process (see `worker.py`), never in the
main process. It is the innermost of several layers:
1. a static screen of the AST: only whitelisted imports, no dunder names (but
   `__name__`), no attributes starting with `_`, no frame/code attributes;
2. restricted builtins and an importer that hands out read-only proxies of a
   few pure numeric modules (their submodules and private names left out);
3. the child's audit hook, then the kernel: a fresh process per task, rlimits,
   Landlock, seccomp, namespaces and a dropped uid (see `confine.py`), and the
   parent's wall-clock kill, which hold even if 1 and 2 are bypassed.
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
import types

from eotd_jax.thoughts.outcome import Failure

MAX_SOURCE_CHARS = 20_000
MAX_INT_DIGITS = 64

ALLOWED_MODULES = types.MappingProxyType({
    module.__name__: module
    for module in (math, fractions, decimal, statistics, itertools, functools, collections, datetime, random)
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


def screen(source: str) -> ast.Module:
    """Parses the program and rejects forbidden constructs before anything runs."""
    if len(source) > MAX_SOURCE_CHARS:
        raise ProgramFailure(Failure.TOO_LARGE, f"program longer than {MAX_SOURCE_CHARS} characters")
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        raise ProgramFailure(Failure.SYNTAX, f"program does not parse: {error}") from None
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            for name in names:
                if name not in ALLOWED_MODULES or getattr(node, "level", 0):
                    raise ProgramFailure(Failure.FORBIDDEN, f"import of {name!r} is not allowed")
            if isinstance(node, ast.ImportFrom) and any(a.name.startswith("_") for a in node.names):
                raise ProgramFailure(Failure.FORBIDDEN, "importing private names is not allowed")
        elif isinstance(node, ast.Attribute):
            _check_attribute(node.attr)
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
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
            _check_format_call(node.func.value)
    return tree


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


def _module_proxy(module: types.ModuleType) -> types.SimpleNamespace:
    """Public, non-module attributes only: no path from `fractions` to `sys`."""
    public = {
        name: value
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    return types.SimpleNamespace(**public)


_PROXIES = types.MappingProxyType({name: _module_proxy(module) for name, module in ALLOWED_MODULES.items()})


# Imported by C code on behalf of a program (`datetime.strptime`, `strftime`) through the
# program's own `__import__`; the screen keeps programs from naming them.
_INTERNAL_IMPORTS = types.MappingProxyType({name: importlib.import_module(name) for name in ("_strptime", "time")})


def _guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
    if not level and name in _INTERNAL_IMPORTS:
        return _INTERNAL_IMPORTS[name]
    if level or name not in _PROXIES:
        raise ProgramFailure(Failure.FORBIDDEN, f"import of {name!r} is not allowed")
    return _PROXIES[name]


def run_program(source: str, print_function) -> str:
    """Runs a screened program; returns its answer as exact text (`51`, `1/3`, `0.5`)."""
    code = compile(screen(source), "<program>", "exec")
    safe_builtins = {name: getattr(builtins, name) for name in _SAFE_BUILTINS}
    safe_builtins.update(__import__=_guarded_import, __build_class__=builtins.__build_class__, print=print_function)
    namespace = {"__builtins__": safe_builtins, "__name__": "__main__"}
    try:
        exec(code, namespace)  # noqa: S102 - untrusted code, inside the sandbox worker only
        if "ans" in namespace:
            value = namespace["ans"]
        elif callable(namespace.get("solution")):
            value = namespace["solution"]()
        else:
            raise ProgramFailure(Failure.NO_ANS, "the program sets no `ans` and defines no `solution()`")
    except (ProgramFailure, MemoryError, RecursionError):
        raise
    except Exception as error:  # the program's own bug: report it, keep serving
        raise ProgramFailure(Failure.ERROR, f"{type(error).__name__}: {error}") from None
    return answer_text(value)


def answer_text(value: object) -> str:
    """Exact text of a numeric answer; raises ProgramFailure for anything else."""
    if isinstance(value, bool):
        raise ProgramFailure(Failure.NOT_A_NUMBER, "`ans` is a bool")
    if isinstance(value, int):
        if value.bit_length() > MAX_INT_DIGITS * 3.33:
            raise ProgramFailure(Failure.TOO_LARGE, f"`ans` has more than {MAX_INT_DIGITS} digits")
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ProgramFailure(Failure.NOT_A_NUMBER, f"`ans` is {value}")
        return repr(value)
    if isinstance(value, fractions.Fraction):
        return answer_text(value.numerator) + "/" + answer_text(value.denominator)
    if isinstance(value, decimal.Decimal):
        return answer_text(float(value)) if value.is_finite() else answer_text(math.inf)
    if isinstance(value, complex) and value.imag == 0:
        return answer_text(value.real)
    if isinstance(value, str) and len(value) < 200:
        return value
    raise ProgramFailure(Failure.NOT_A_NUMBER, f"`ans` is a {type(value).__name__}, not a number")
