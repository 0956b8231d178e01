"""Chain of thought: read the final answer out of prose, the way real models state it.

Rules, first that finds a number wins:
1. the last explicit answer marker in the text: "The (final) answer is N",
   "the answer (arabic numerals) is N", "the answer would be N",
   "Answer: N" / "**Answer:** N", a "#### N" line, `\\boxed{N}`;
2. the final statement: the last concluding sentence ("Therefore / Thus / So /
   Hence / In total ..."), unless a calculation with a stated result comes after
   it; then (or when no sentence concludes) the last stated result of a calculation;
3. the last number anywhere in the text.
A text with none of these gives `Failure.NO_ANSWER`.

A stated result is the number after `=`, "equals" or "is equal to", or after
"which is", "is", "gives", "comes to", ... when a calculation precedes it
("17 - 9, which is 8", "640 + 540 + 30 equals 1210", "5 + 3 is 8"). Within the
sentence a rule picks, the answer is:
a. the last result it states, if it states one;
b. else its first number that is not an operand of a calculation; after "Answer:"
   and in a concluding sentence, which may be whole sentences ("Answer: Out of 20
   students, 5 passed."), the first one the rationale calculated earlier, if any;
c. else a whole number written in words at its start ("The answer is twenty-five").
Numbers are standalone: the digit of "mp3" or "CO2" is none; an amount may carry a
currency sign (`$`, `€`, `£`, ...). Every step is linear in the text.
"""

from __future__ import annotations

import dataclasses
import re
from fractions import Fraction

from eotd_jax.thoughts.answers import CURRENCY, parse_number
from eotd_jax.thoughts.outcome import Failure, Outcome

MAX_TEXT_CHARS = 50_000  # the longest rationale read (every reader's cap); a longer text is refused unread
MAX_MARKERS = 16  # the last markers tried; a text with more is not a rationale
SENTENCE_CHARS = 300  # how far an answer sentence or a \boxed{} may reach
_LOOK_BACK = 8  # tokens searched before a result marker for the calculation it concludes

# The tokens that matter, one per match; words and blanks are matched whole and skipped, so that the text is
# read in one linear pass. Two tokens are adjacent when only blanks, brackets or a currency sign lie between.
_TOKEN = re.compile(
    r"""(?P<number>(?<![\w.])-?(?:\d+/\d+(?![\d/])|\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|\d+(?:\.\d+)?|\.\d+))
    |(?P<strong>=|\b(?:equals|is[ \t]+equal[ \t]+to|equal[ \t]+to)\b)
    |(?P<weak>\b(?:which[ \t]+(?:is|equals|gives|makes)|gives[ \t]+us|comes[ \t]+to|amounts[ \t]+to
                 |results[ \t]+in|is)\b)
    |(?P<operator>[-+*/×÷]|\\times|\\cdot|\b(?:plus|minus|times|x|divided[ \t]+by|multiplied[ \t]+by)\b)
    |(?P<newline>\s*\n\s*)
    |(?P<skip>[^\W\d_]\w*+|[ \t\r\f\v]++|[^\w\s.=+\-*/×÷\\]++)""",
    re.VERBOSE | re.IGNORECASE,
)
_GAP = re.compile(rf"[\s{CURRENCY}()\[\]]*+")  # between adjacent tokens
_MARKER_GAP = re.compile(rf"[ \t:]*+(?:[{CURRENCY}][ \t]*+)?")  # between a result marker and its number
_ANSWER_LABEL = re.compile(r"\banswer[ \t]*(?:\*\*[ \t]*)?[:=][ \t]*(?:\*\*)?", re.IGNORECASE)
_ANSWER_IS = re.compile(r"\banswer\s*(?:\([^()\n]{0,30}\)\s*)?(?:is|would\s+be|will\s+be|should\s+be)\b\s*:?",
                        re.IGNORECASE)  # also zero-shot CoT's "Therefore, the answer (arabic numerals) is"
_HASHES = re.compile(r"^[ \t]*####", re.MULTILINE)
_BOXED = re.compile(r"\\(?:boxed|fbox)[ \t]*\{")
_CONCLUSION = re.compile(r"(?:^|(?<=[.!?:]\s))[ \t]*(?:[*#>-]+[ \t]*)?(?:therefore|thus|so|hence|in total|"
                         r"altogether|in conclusion|finally|overall)\b", re.IGNORECASE | re.MULTILINE)
_SENTENCE_END = re.compile(r"\.(?=\s+[A-Z*(\\])|\.\s*$|\n\s*\n|\n(?=\s*[A-Z#*-])|[!?](?=\s)", re.MULTILINE)
_LATEX = ((re.compile(r"(?<=\d)(?:\{,\}|\\,|\\!|\\ )(?=\d{3})"), ""),  # 1{,}000 and 1\,000 are 1000
          (re.compile(r"\\[dt]?frac\{\s*(\d+)\s*\}\{\s*(\d+)\s*\}"), r" \1/\2 "),  # \frac{3}{4} is the number 3/4
          (re.compile(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}"), r"(\1)/(\2)"),
          (re.compile(r"\\text\{[^{}]*\}|\\[,;!]|\\%|\\\$|\^\\circ|\\mathrm\{[^{}]*\}|\*\*"), " "))


# A token is (kind, start, end), kind one of: number, strong / weak (a result marker), operator, newline.
_Token = tuple[str, int, int]


def extract_cot_answer(text: str) -> Outcome:
    """The answer a chain-of-thought rationale ends with (rules in the module doc). Linear in the text."""
    if len(text) > MAX_TEXT_CHARS:
        return Outcome.fail(Failure.TOO_LARGE, f"rationale longer than {MAX_TEXT_CHARS} characters")
    text = _normalised(text)
    tokens = _tokens(text)
    results = _results(text, tokens)
    if (value := _marked(text, results)) is not None:
        return Outcome(value=value)
    if (value := _final_statement(text, results)) is not None:
        return Outcome(value=value)
    for kind, start, end in reversed(tokens):
        if kind == "number" and (value := parse_number(text[start:end])) is not None:
            return Outcome(value=value)
    return Outcome.fail(Failure.NO_ANSWER, "no final answer found in the rationale")


def marked_answer(text: str) -> Fraction | None:
    """The answer an explicit marker states (rule 1 alone: no concluding sentence, no last number), or None."""
    if len(text) > MAX_TEXT_CHARS:
        return None
    text = _normalised(text)
    return _marked(text, _results(text, _tokens(text)))


@dataclasses.dataclass(frozen=True)
class _Result:
    start: int  # where its marker is
    value: Fraction
    calculated: bool  # a calculation precedes the marker


def _normalised(text: str) -> str:
    """Minus signs, LaTeX number spellings and Markdown emphasis as plain text (each a linear substitution)."""
    text = text.replace("\u2212", "-")
    for pattern, replacement in _LATEX:
        text = pattern.sub(replacement, text)
    return text


def _tokens(text: str) -> list[_Token]:
    return [(m.lastgroup, m.start(), m.end()) for m in _TOKEN.finditer(text) if m.lastgroup != "skip"]


def _results(text: str, tokens: list[_Token]) -> list[_Result]:
    """Every stated result, in order: `= N` and "equals N" anywhere, "which is N" / "is N" after a calculation."""
    results = []
    for index, (kind, start, end) in enumerate(tokens[:-1]):
        if kind not in ("strong", "weak"):
            continue
        following, number_start, number_end = tokens[index + 1]
        if following != "number" or not _MARKER_GAP.fullmatch(text, end, number_start):
            continue
        calculated = _calculation_before(text, tokens, index)
        if calculated or kind == "strong":
            value = parse_number(text[number_start:number_end])
            if value is not None:
                results.append(_Result(start, value, calculated))
    return results


def _calculation_before(text: str, tokens: list[_Token], index: int) -> bool:
    """True when `number operator number` (or a fraction `a/b`) ends shortly before the marker at `index`,
    on its line: the marker states the calculation's result."""
    for position in range(index - 1, max(-1, index - 1 - _LOOK_BACK), -1):
        kind, start, end = tokens[position]
        if kind in ("newline", "strong", "weak"):
            return False
        if kind == "number" and ("/" in text[start:end] or _is_operand(text, tokens, position)):
            return True
    return False


def _is_operand(text: str, tokens: list[_Token], index: int) -> bool:
    """True for a number joined to another number by an operator (`17 - 9`, `3 × (4`), not for a bullet `* 3`."""
    for step in (-1, 1):
        operator = _adjacent(text, tokens, index, step)
        if operator is not None and tokens[operator][0] == "operator":
            other = _adjacent(text, tokens, operator, step)
            if other is not None and tokens[other][0] == "number":
                return True
    return False


def _adjacent(text: str, tokens: list[_Token], index: int, step: int) -> int | None:
    """The token next to `index` in direction `step` when only blanks, brackets or a currency sign lie between."""
    other = index + step
    if not 0 <= other < len(tokens):
        return None
    left, right = (tokens[other], tokens[index]) if step < 0 else (tokens[index], tokens[other])
    return other if _GAP.fullmatch(text, left[2], right[1]) else None


def _marked(text: str, results: list[_Result]) -> Fraction | None:
    marks = [(m.end(), "label" if marker is _ANSWER_LABEL else "answer")
             for marker in (_ANSWER_IS, _ANSWER_LABEL, _HASHES) for m in marker.finditer(text)]
    marks += [(m.end(), "boxed") for m in _BOXED.finditer(text)]
    for start, kind in sorted(marks, reverse=True)[:MAX_MARKERS]:
        tail = _boxed_content(text, start) if kind == "boxed" else _sentence(text, start)
        computed = {r.value for r in results if r.start < start}
        value = _choose(tail, computed if kind == "label" else set()) if tail else None
        if value is not None:
            return value
    return None


def _final_statement(text: str, results: list[_Result]) -> Fraction | None:
    """Rule 2: the last concluding sentence, or a calculated result stated after it (or without one)."""
    calculated = [r for r in results if r.calculated]
    conclusions = list(_CONCLUSION.finditer(text))
    if conclusions:
        conclusion = conclusions[-1]
        sentence = _sentence(text, conclusion.end())
        if not any(r.start >= conclusion.end() + len(sentence) for r in calculated):
            computed = {r.value for r in results if r.start < conclusion.end()}
            if (value := _choose(sentence, computed)) is not None:
                return value
    return calculated[-1].value if calculated else None


def _sentence(text: str, start: int) -> str:
    """From `start` to the end of its sentence (or of the next line when the marker ends its line)."""
    rest = text[start: start + SENTENCE_CHARS]
    stripped = rest.lstrip(" \t*")
    if stripped.startswith("\n"):
        rest = stripped.lstrip()
    end = _SENTENCE_END.search(rest)
    return rest[: end.start()] if end else rest


def _choose(sentence: str, computed: set[Fraction]) -> Fraction | None:
    """The answer among the numbers of one answer sentence (rules a-c of the module doc); `computed` holds the
    results the rationale stated before it, preferred where the sentence may say more than its answer."""
    tokens = _tokens(sentence)
    stated = _results(sentence, tokens)
    if stated:
        return stated[-1].value
    values = [parse_number(sentence[start:end]) for i, (kind, start, end) in enumerate(tokens)
              if kind == "number" and not _is_operand(sentence, tokens, i)]
    values = [value for value in values if value is not None]
    if values:
        return next((value for value in values if value in computed), values[0])
    if any(kind == "number" for kind, _, _ in tokens):
        return None  # only a calculation whose result it does not state
    return _number_in_words(sentence)


_UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen " \
         "seventeen eighteen nineteen".split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_WORD_VALUES = {**{w: i for i, w in enumerate(_UNITS)}, **{w: 10 * (i + 2) for i, w in enumerate(_TENS)}}
_WORDS = re.compile(r"^\W*((?:(?:" + "|".join(_WORD_VALUES) + r"|hundred|a|and)(?:[\s-]+|$|(?=\W)))+)", re.IGNORECASE)


def _number_in_words(sentence: str) -> Fraction | None:
    """A whole number written in words at the start of the sentence ("The answer is twenty-five."), below 1000."""
    match = _WORDS.match(sentence)
    if not match:
        return None
    total, seen = 0, False
    for word in re.split(r"[\s-]+", match[1].lower().strip()):
        if word in _WORD_VALUES:
            total, seen = total + _WORD_VALUES[word], True
        elif word == "hundred":
            total, seen = max(total, 1) * 100, True
    return Fraction(total) if seen else None


def _boxed_content(text: str, start: int) -> str | None:
    """The content of the `\\boxed{` opened just before `start`, braces matched, or None."""
    depth = 1
    for index in range(start, min(len(text), start + SENTENCE_CHARS)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[start:index].replace("{", " ").replace("}", " ")
    return None
