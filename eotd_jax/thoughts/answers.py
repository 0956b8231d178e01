"""Answer parsing and comparison shared by every thought and every benchmark.

Answers are exact `fractions.Fraction`s so that 51.0 == 51 and 3/4 == 0.75 hold
without float noise; comparison still allows a small tolerance because programs
compute in floats (0.1 + 0.2 != 0.3). `answers_match` is the one comparison of
a found answer with the gold one (data_gen's verdicts, the eval's scores and its
votes all use it).

Every function here reads untrusted text in the main process: each runs in time
linear in its input and returns None rather than raising on any text.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

# Largest number of digits we accept in one number: far above any benchmark
# answer, far below anything that could be used to burn CPU converting it.
MAX_DIGITS = 64
# Agreement of a found answer with the gold one: programs compute in floats.
REL_TOL = 1e-6
ABS_TOL = 1e-6
# Signs that mark an amount of money before its number ("€12", "£3.50").
CURRENCY = "$€£¥₹"

_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
# On text whose blank runs are single spaces (see `parse_number`): every ` ?` takes at most one character, so no
# two optional parts can trade a run of blanks between them and the match is linear in the text.
_ANSWER_RE = re.compile(
    rf"""(?P<sign>-)?\ ?[{CURRENCY}]?\ ?
    (?:
        (?P<whole>\d+)\ (?P<mnum>\d+)\ ?/\ ?(?P<mden>\d+)                  # mixed: 1 1/2
      | (?P<num>\d+(?:\.\d+)?)\ ?/\ ?(?P<den>\d+(?:\.\d+)?)                 # fraction: 3/4
      | (?P<dec>(?:\d{{1,3}}(?:,\d{{3}})+|\d+)(?:\.\d+)?|\.\d+)(?P<exp>[eE][-+]?\d+)?  # 1,234.5 / .5 / 1e3
    )
    (?:\ ?%)?(?:\ ?\([^()]*\))?(?:\ ?\.)?""",
    re.VERBOSE | re.ASCII,
)


def parse_number(text: str | int | float | Fraction | None) -> Fraction | None:
    """Parses one gold or predicted answer; None means "no answer".

    Accepts `1,234`, `$5` (and `€`, `£`, ...), `50%` (read as 50: benchmarks
    state percents in percent), units in parentheses (`9 (apples)`), fractions
    (`3/4`), mixed numbers (`1 1/2`), negatives, decimals and exponents. Anything
    else (words, times like `3:30`, several values) is None, never an exception.
    """
    if text is None or isinstance(text, bool):
        return None
    if isinstance(text, Fraction):
        return text
    if isinstance(text, int):
        return None if too_many_digits(Fraction(text)) else Fraction(text)
    if isinstance(text, float):
        return None if not math.isfinite(text) or too_many_digits(Fraction(repr(text))) else Fraction(repr(text))
    if len(text) > 4 * MAX_DIGITS:
        return None
    match = _ANSWER_RE.fullmatch(" ".join(text.replace("\u2212", "-").split()))
    if match is None:
        return None
    sign = -1 if match["sign"] else 1
    if match["whole"] is not None:
        den = int(match["mden"])
        value = sign * (int(match["whole"]) + Fraction(int(match["mnum"]), den)) if den else None
    elif match["num"] is not None:
        den = Fraction(match["den"])
        value = sign * Fraction(match["num"]) / den if den else None
    else:
        mantissa, exponent = match["dec"].replace(",", ""), match["exp"] or ""
        if len(mantissa) > MAX_DIGITS or (exponent and abs(int(exponent[1:])) > MAX_DIGITS):
            return None  # checked before conversion, so that `1e999999` is never expanded
        value = sign * Fraction(mantissa + exponent)
    return None if value is None or too_many_digits(value) else value


def too_many_digits(value: Fraction) -> bool:
    """The one digit cap of every answer path: numerator or denominator longer than MAX_DIGITS."""
    return max(abs(value.numerator), value.denominator) >= 10**MAX_DIGITS


def find_numbers(text: str) -> list[str]:
    """All number-looking spans in prose, in order (commas inside numbers kept)."""
    return re.findall(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|" + _NUMBER, text)


def answers_match(predicted: Fraction | None, gold: Fraction | None) -> bool:
    """True when both are answers and agree up to float rounding of programs (REL_TOL, ABS_TOL)."""
    if predicted is None or gold is None:
        return False
    if predicted == gold:
        return True
    return math.isclose(float(predicted), float(gold), rel_tol=REL_TOL, abs_tol=ABS_TOL)


def format_number(value: Fraction) -> str:
    """Shortest faithful text for an answer: `51`, `0.75`, `1/3`."""
    if value.denominator == 1:
        return str(value.numerator)
    as_float = float(value)
    if Fraction(repr(as_float)) == value:
        return repr(as_float)
    return f"{value.numerator}/{value.denominator}"
