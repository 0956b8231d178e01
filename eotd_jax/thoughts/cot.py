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
_CALCULATION = re.compile(r"\d\s*[-+*/×x÷]\s*\$?\d[^=\n]*=\s*\$?-?\d")
_LATEX = ((re.compile(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}"), r"(\1)/(\2)"),
          (re.compile(r"\\text\{[^{}]*\}|\\[,;!]|\\%|\\\$|\^\\circ|\\mathrm\{[^{}]*\}"), " "))


def extract_cot_answer(text: str, last_number_fallback: bool = True) -> Outcome:
    """The answer a chain-of-thought rationale ends with (rules in the module doc)."""
    text = text.replace("\u2212", "-")
    tails = [(m.end(), _sentence(text, m.end()), marker is not _ANSWER_LABEL)
             for marker in _MARKERS for m in marker.finditer(text)]
    tails += [(start, body, True) for start, body in _boxed(text)]
    for start, tail, first in sorted(tails, key=lambda t: t[0], reverse=True):
        value = _choose(tail, text[:start], first)
        if value is not None:
            return Outcome(value=value)
    conclusions = [m.end() for m in _CONCLUSION.finditer(text)]
    if conclusions:
        sentence = _sentence(text, conclusions[-1])
        after = text[conclusions[-1] + len(sentence):]
        if not _CALCULATION.search(after) and (value := _choose(sentence, text[:conclusions[-1]], False)):
            return Outcome(value=value)
    if last_number_fallback:
        for number in reversed(_NUMBER.findall(text)):
            if (value := parse_number(number)) is not None:
                return Outcome(value=value)
    return Outcome.fail(Failure.NO_ANSWER, "no final answer found in the rationale")


def _sentence(text: str, start: int) -> str:
    """From `start` to the end of its sentence (or of the next line when the marker ends its line)."""
    rest = text[start:]
    stripped = rest.lstrip(" \t*")
    if stripped.startswith("\n"):
        rest = stripped.lstrip()
    end = _SENTENCE_END.search(rest)
    return rest[: end.start()] if end else rest


def _choose(sentence: str, before: str, first: bool) -> Fraction | None:
    """The answer among the numbers of one marked sentence (rule in the module doc)."""
    sentence = _latex_free(sentence.replace("**", " "))
    if "=" in sentence:
        sentence = sentence.rsplit("=", 1)[1]
    values = [v for v in (parse_number(n.replace(" ", "")) for n in _NUMBER.findall(sentence)) if v is not None]
    if len(values) <= 1 or first:
        return values[0] if values else None
    results = [parse_number(r) for r in _RESULT.findall(before)]
    for result in reversed(results):
        if result in values:
            return result
    return values[0]


def _boxed(text: str) -> list[tuple[int, str]]:
    """(position, content) of every `\\boxed{...}`, braces matched."""
    found = []
    for match in _BOXED.finditer(text):
        depth, index = 1, match.end()
        while index < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[index], 0)
            index += 1
        if depth == 0:
            found.append((match.end(), text[match.end(): index - 1]))
    return found


def _latex_free(content: str) -> str:
    for pattern, replacement in _LATEX:
        content = pattern.sub(replacement, content)
    return content.replace("(", " ").replace(")", " ").replace("{", " ").replace("}", " ")
