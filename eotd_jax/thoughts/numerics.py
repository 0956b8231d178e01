"""numpy calls of PoT programs, made explicit in the standard library with numpy's semantics.

numpy does not run in the PoT sandbox, yet models open their programs with
`import numpy as np` and call `np.ceil`, `np.sum`. The
reader (`reading.py`) rewrites such a call only when its arguments have the
shape of a scalar call (`np.max(values)`, not `np.max(a, axis)`), and then to
a helper defined at the top of the verified form. A helper computes what numpy
computes for Python numbers and lists of them (int64 results, float64 rounding
of `np.round`, integers to negative powers refused) and raises where numpy
would give another value (int64 overflow, ints beyond int64) or where its
semantics are not emulated (arrays, booleans, nested lists): the program is then
rejected, never kept with a value that its own run would not give. Float
results agree with numpy's up to rounding (numpy sums pairwise).
sympy programs are not rewritten: they run as written, with sympy, in the
sandbox (`thoughts/pot.py`, `SYMPY_NAMES`).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib

# The helpers, as the sandbox runs them (its builtins: no `type`, `super` or `NotImplemented`).
HELPERS_SOURCE = '''
import fractions as stdlib_fractions
import math as stdlib_math


def numpy_int64(value):
    """numpy's int64 for a Python int; numpy wraps what leaves its range, so that is refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError('numpy semantics are emulated for int and float values only')
    if not -2 ** 63 <= value < 2 ** 63:
        raise OverflowError('numpy int64 overflows here: the program does not compute this value')
    return NumpyInt64(value)


def numpy_arithmetic(operation, left, right):
    """int64 with int64 stays int64 (checked); with a float, numpy computes in float64."""
    if isinstance(left, bool) or isinstance(right, bool) or not isinstance(left, (int, float)) \\
            or not isinstance(right, (int, float)):
        raise TypeError('numpy semantics are emulated for int and float values only')
    if isinstance(left, float) or isinstance(right, float):
        return operation(float(left), float(right))
    return numpy_int64(operation(int(left), int(right)))


def numpy_int_power(base, exponent):
    if isinstance(base, float) or isinstance(exponent, float):
        return stdlib_math.pow(base, exponent)
    if exponent < 0:
        raise ValueError('Integers to negative integer powers are not allowed.')
    if abs(base) > 1 and exponent > 64:
        raise OverflowError('numpy int64 overflows here: the program does not compute this value')
    return base ** exponent


class NumpyInt64(int):
    """numpy's int64 scalar: arithmetic with ints stays in int64 (checked), with floats gives a float."""

    def __add__(self, other):
        return numpy_arithmetic(lambda a, b: a + b, self, other)

    def __radd__(self, other):
        return numpy_arithmetic(lambda a, b: a + b, other, self)

    def __sub__(self, other):
        return numpy_arithmetic(lambda a, b: a - b, self, other)

    def __rsub__(self, other):
        return numpy_arithmetic(lambda a, b: a - b, other, self)

    def __mul__(self, other):
        return numpy_arithmetic(lambda a, b: a * b, self, other)

    def __rmul__(self, other):
        return numpy_arithmetic(lambda a, b: a * b, other, self)

    def __floordiv__(self, other):
        return numpy_arithmetic(lambda a, b: a // b, self, other)

    def __rfloordiv__(self, other):
        return numpy_arithmetic(lambda a, b: a // b, other, self)

    def __mod__(self, other):
        return numpy_arithmetic(lambda a, b: a % b, self, other)

    def __rmod__(self, other):
        return numpy_arithmetic(lambda a, b: a % b, other, self)

    def __pow__(self, other):
        return numpy_arithmetic(numpy_int_power, self, other)

    def __rpow__(self, other):
        return numpy_arithmetic(numpy_int_power, other, self)

    def __neg__(self):
        return numpy_int64(-int(self))

    def __pos__(self):
        return self

    def __abs__(self):
        return numpy_int64(abs(int(self)))


def numpy_scalar(value):
    """What numpy makes of a Python number: int64 or float64."""
    if isinstance(value, float):
        return value
    return numpy_int64(value)


def numpy_elements(values):
    """The elements numpy makes of a number or a list, tuple or range of numbers: int64 when all are ints."""
    if isinstance(values, (int, float)):
        values = [values]
    if not isinstance(values, (list, tuple, range)):
        raise TypeError('numpy semantics are emulated for lists, tuples and ranges of numbers only')
    elements = list(values)
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in elements):
        raise TypeError('numpy semantics are emulated for int and float elements only')
    if elements and all(isinstance(v, int) for v in elements):
        return [numpy_int64(v) for v in elements]
    return [float(v) for v in elements]


def numpy_sum(values):
    elements = numpy_elements(values)
    if elements and isinstance(elements[0], int):
        return numpy_int64(sum(int(v) for v in elements))  # int64 wraps: a result in range is exact
    return sum(elements, 0.0)


def numpy_prod(values):
    elements = numpy_elements(values)
    if elements and isinstance(elements[0], int):
        return numpy_int64(stdlib_math.prod(int(v) for v in elements))  # int64 wraps: a result in range is exact
    return stdlib_math.prod(elements, start=1.0)


def numpy_max(values):
    return max(numpy_elements(values))


def numpy_min(values):
    return min(numpy_elements(values))


def numpy_mean(values):
    elements = numpy_elements(values)
    return sum(float(v) for v in elements) / len(elements)


def numpy_median(values):
    elements = sorted(float(v) for v in numpy_elements(values))
    middle = len(elements) // 2
    return elements[middle] if len(elements) % 2 else (elements[middle - 1] + elements[middle]) / 2


def numpy_maximum(left, right):
    return numpy_arithmetic(max, numpy_scalar(left), numpy_scalar(right))


def numpy_minimum(left, right):
    return numpy_arithmetic(min, numpy_scalar(left), numpy_scalar(right))


def numpy_power(base, exponent):
    return numpy_arithmetic(numpy_int_power, numpy_scalar(base), numpy_scalar(exponent))


def numpy_abs(value):
    return abs(numpy_scalar(value))


def numpy_ceil(value):
    value = numpy_scalar(value)
    return float(stdlib_math.ceil(value)) if isinstance(value, float) else value


def numpy_floor(value):
    value = numpy_scalar(value)
    return float(stdlib_math.floor(value)) if isinstance(value, float) else value


def numpy_trunc(value):
    value = numpy_scalar(value)
    return float(stdlib_math.trunc(value)) if isinstance(value, float) else value


def numpy_round(value, decimals=0):
    """numpy's rounding: half to even of value * 10**decimals in float64 (not Python's correctly rounded digits)."""
    value = numpy_scalar(value)
    if isinstance(decimals, bool) or not isinstance(decimals, int):
        raise TypeError('decimals must be an int')
    if isinstance(value, int):
        return value if decimals >= 0 else numpy_int64(round(int(value), decimals))
    scale = 10.0 ** abs(decimals)
    return round(value * scale) / scale if decimals >= 0 else round(value / scale) * scale


def numpy_sqrt(value):
    return stdlib_math.sqrt(float(numpy_scalar(value)))


def numpy_exp(value):
    return stdlib_math.exp(float(numpy_scalar(value)))


def numpy_log(value):
    return stdlib_math.log(float(numpy_scalar(value)))


def numpy_log10(value):
    return stdlib_math.log10(float(numpy_scalar(value)))


def numpy_log2(value):
    return stdlib_math.log2(float(numpy_scalar(value)))

'''

# Calls rewritten: name -> (helper or standard-library function, the positional-argument counts it takes,
# the keywords it takes). A helper's name is defined by HELPERS_SOURCE.
_SCALAR = ((1,), ())
NUMPY = {
    **{name: (f"numpy_{name}", *_SCALAR) for name in
       ("ceil", "floor", "trunc", "sqrt", "exp", "log", "log10", "log2", "abs", "sum", "prod", "max", "min", "mean",
        "median")},
    "absolute": ("numpy_abs", *_SCALAR), "amax": ("numpy_max", *_SCALAR), "amin": ("numpy_min", *_SCALAR),
    "round": ("numpy_round", (1, 2), ("decimals",)), "around": ("numpy_round", (1, 2), ("decimals",)),
    "power": ("numpy_power", (2,), ()), "pow": ("numpy_power", (2,), ()),
    "maximum": ("numpy_maximum", (2,), ()), "minimum": ("numpy_minimum", (2,), ()),
}
CONSTANTS = {"numpy": {"pi": "stdlib_math.pi", "e": "stdlib_math.e"}}
# Names of the helpers and of the modules they import: a program that binds or reads one is not rewritten.
RESERVED_PREFIXES = ("numpy_", "stdlib_", "NumpyInt64")
EQUIVALENTS = {"numpy": NUMPY}
# Modules whose exported names a reader may list (to know what `from m import *` binds): the sandbox's own
# modules and numpy. Never a module named by the program itself: importing runs code.
_LISTABLE = ("math", "fractions", "decimal", "statistics", "itertools", "functools", "collections", "datetime",
             "random", "numpy")


@dataclasses.dataclass(frozen=True)
class _Helper:
    source: str  # as written in HELPERS_SOURCE
    uses: frozenset[str]  # the names it reads


@functools.cache
def _helpers() -> dict[str, _Helper]:
    """Each helper and each import of HELPERS_SOURCE, by the name it binds, in the order written."""
    helpers = {}
    for statement in ast.parse(HELPERS_SOURCE).body:
        name = statement.names[0].asname if isinstance(statement, ast.Import) else statement.name
        uses = frozenset(n.id for n in ast.walk(statement) if isinstance(n, ast.Name))
        helpers[name] = _Helper(ast.get_source_segment(HELPERS_SOURCE, statement), uses)
    return helpers


def helpers_source(names: set[str]) -> str:
    """The definitions of `names` and of every helper they use, in the order of HELPERS_SOURCE ("" for none)."""
    helpers = _helpers()
    needed, pending = set(), list(names)
    while pending:
        name = pending.pop()
        if name in helpers and name not in needed:
            needed.add(name)
            pending.extend(helpers[name].uses)
    return "".join(helper.source + "\n\n\n" for name, helper in helpers.items() if name in needed)


@functools.cache
def exported_names(module: str) -> frozenset[str] | None:
    """The names `from module import *` binds, for the modules in _LISTABLE; None for any other module."""
    if module not in _LISTABLE:
        return None
    imported = importlib.import_module(module)
    names = getattr(imported, "__all__", None) or [n for n in vars(imported) if not n.startswith("_")]
    return frozenset(names)
