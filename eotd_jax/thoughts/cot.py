"""Chain of thought: read the final answer out of prose, the way real models state it.

Rules, first that finds a number wins:
1. the last explicit answer marker in the text: "The (final) answer is N",
   "the answer (arabic numerals) is N", "the answer would be N",
   "Answer: N" / "**Answer:** N", a "#### N" line, `\\boxed{N}`;
2. the last concluding sentence ("Therefore / Thus / So / Hence / In total ...")
   when no calculation follows it;
3. if `last_number_fallback`, the last number anywhere in the text.
A text with none of these gives `Failure.NO_ANSWER`.

Where the marked sentence holds several numbers ("Answer: It will take 48
hours to install the remaining 6 windows."), the number after its last `=`
wins; else the one that is the latest result of a calculation in the text
(`6 * 8 = 48`); else the first one.
"""

from __future__ import annotations

import re
from fractions import Fraction

from eotd_jax.thoughts.answers import parse_number
from eotd_jax.thoughts.outcome import Failure, Outcome

_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?\s*/\s*\d+(?![\d.,])|-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d*\.?\d+")
_ANSWER_LABEL = re.compile(r"\banswer\s*(?:\*\*)?\s*[:=]\s*(?:\*\*)?", re.IGNORECASE)
_ANSWER_IS = re.compile(r"answer\s*(?:\([^()\n]{0,30}\)\s*)?(?:is|would\s+be|will\s+be|should\s+be)\s*:?",
                        re.IGNORECASE)  # also zero-shot CoT's "Therefore, the answer (arabic numerals) is"
_MARKERS = (_ANSWER_IS, _ANSWER_LABEL, re.compile(r"^\s*####", re.MULTILINE))
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_CONCLUSION = re.compile(r"(?:^|(?<=[.!?:]\s)|(?<=\n))\s*(?:[*#>-]+\s*)?(?:therefore|thus|so|hence|in total|"
                         r"altogether|in conclusion|finally|overall)\b", re.IGNORECASE | re.MULTILINE)
_SENTENCE_END = re.compile(r"\.(?=\s+[A-Z*(\\])|\.\s*$|\n\s*\n|\n(?=\s*[A-Z#*-])|[!?](?=\s)", re.MULTILINE)
_RESULT = re.compile(r"=\s*\$?\s*(-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d*\.?\d+)")
_CALCULATION = re.compile(r"\d\s*[-+*/×x÷]\s*\$?\d[^=\n]{0,80}=\s*\$?-?\d")
_LATEX = ((re.compile(r"(?<=\d)(?:\{,\}|\\,|\\!|\\ )(?=\d{3})"), ""),  # 1{,}000 and 1\,000 are 1000
          (re.compile(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}"), r"(\1)/(\2)"),
          (re.compile(r"\\text\{[^{}]*\}|\\[,;!]|\\%|\\\$|\^\\circ|\\mathrm\{[^{}]*\}"), " "))


MAX_MARKERS = 16  # the last markers tried; a text with more is not a rationale
SENTENCE_CHARS = 300  # how far an answer sentence or a \boxed{} may reach


def extract_cot_answer(text: str, last_number_fallback: bool = True) -> Outcome:
    """The answer a chain-of-thought rationale ends with (rules in the module doc). Linear in the text."""
    text = text.replace("\u2212", "-")
    results = [(m.start(), parse_number(m[1])) for m in _RESULT.finditer(text)]
    if (value := _marked(text, results)) is not None:
        return Outcome(value=value)
    conclusions = [m.end() for m in _CONCLUSION.finditer(text)]
    if conclusions:
        sentence = _sentence(text, conclusions[-1])
        after = text[conclusions[-1] + len(sentence):]
        results_before = [v for p, v in results if p < conclusions[-1]]
        if not _CALCULATION.search(after) and (value := _choose(sentence, results_before, False)):
            return Outcome(value=value)
    if last_number_fallback:
        for number in reversed(_NUMBER.findall(text)):
            if (value := parse_number(number)) is not None:
                return Outcome(value=value)
    return Outcome.fail(Failure.NO_ANSWER, "no final answer found in the rationale")


def marked_answer(text: str) -> Fraction | None:
    """The answer an explicit marker states (rule 1 alone: no concluding sentence, no last number), or None."""
    text = text.replace("\u2212", "-")
    return _marked(text, [(m.start(), parse_number(m[1])) for m in _RESULT.finditer(text)])


def _marked(text: str, results: list[tuple[int, Fraction | None]]) -> Fraction | None:
    marks = [(m.end(), marker is not _ANSWER_LABEL, False) for marker in _MARKERS for m in marker.finditer(text)]
    marks += [(m.end(), True, True) for m in _BOXED.finditer(text)]
    for start, first, boxed in sorted(marks, reverse=True)[:MAX_MARKERS]:
        tail = _boxed_content(text, start) if boxed else _sentence(text, start)
        value = _choose(tail, [v for p, v in results if p < start], first) if tail else None
        if value is not None:
            return value
    return None


def _sentence(text: str, start: int) -> str:
    """From `start` to the end of its sentence (or of the next line when the marker ends its line)."""
    rest = text[start: start + SENTENCE_CHARS]
    stripped = rest.lstrip(" \t*")
    if stripped.startswith("\n"):
        rest = stripped.lstrip()
    end = _SENTENCE_END.search(rest)
    return rest[: end.start()] if end else rest


def _choose(sentence: str, results: list[Fraction | None], first: bool) -> Fraction | None:
    """The answer among the numbers of one marked sentence, given the results calculated before it."""
    sentence = _latex_free(sentence.replace("**", " "))
    if "=" in sentence:
        sentence = sentence.rsplit("=", 1)[1]
    values = [v for v in (parse_number(n.replace(" ", "")) for n in _NUMBER.findall(sentence)) if v is not None]
    if not values:
        return _number_in_words(sentence)
    if len(values) == 1 or first:
        return values[0]
    for result in reversed(results):
        if result in values:
            return result
    return values[0]


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
            return text[start:index]
    return None


def _latex_free(content: str) -> str:
    for pattern, replacement in _LATEX:
        content = pattern.sub(replacement, content)
    return content.replace("(", " ").replace(")", " ").replace("{", " ").replace("}", " ")
