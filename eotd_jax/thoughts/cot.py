"""Chain of thought: read the final answer out of prose.

Order of precedence (the first rule that finds a number wins):
1. the last "The answer is N" (case-insensitive; `$`, `**`, commas and units allowed);
2. the last GSM8K-style "#### N" line;
3. the last `\\boxed{N}`;
4. if `last_number_fallback`, the last number anywhere in the text.
A text with none of these gives `Failure.NO_ANSWER`.
"""

from __future__ import annotations

import re

from eotd_jax.thoughts.answers import find_numbers, parse_number
from eotd_jax.thoughts.outcome import Failure, Outcome

# The tail is a lookahead so that several markers on one line are all found.
_MARKERS = (
    re.compile(r"answer\s+is\s*:?\s*\**\s*(?=(?P<tail>[^\n]*))", re.IGNORECASE),
    re.compile(r"^\s*####\s*(?=(?P<tail>[^\n]*))", re.MULTILINE),
    re.compile(r"\\boxed\{(?=(?P<tail>[^{}]*)\})"),
)


def extract_cot_answer(text: str, last_number_fallback: bool = True) -> Outcome:
    """The answer a chain-of-thought rationale ends with (rules in the module doc)."""
    for marker in _MARKERS:
        tails = [m["tail"] for m in marker.finditer(text)]
        for tail in reversed(tails):
            numbers = find_numbers(tail)
            if numbers:
                value = parse_number(numbers[0])
                if value is not None:
                    return Outcome(value=value)
    if last_number_fallback:
        for number in reversed(find_numbers(text)):
            value = parse_number(number)
            if value is not None:
                return Outcome(value=value)
    return Outcome.fail(Failure.NO_ANSWER, "no final answer found in the rationale")
