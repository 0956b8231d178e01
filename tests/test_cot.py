from fractions import Fraction

import pytest

from eotd_jax.thoughts.cot import extract_cot_answer
from eotd_jax.thoughts.outcome import Failure


@pytest.mark.parametrize(
    "text, expected",
    [
        ("She sold 48 + 24 = 72 clips. The answer is 72.", 72),
        ("So 3 apples each... The answer is: $1,250.", 1250),
        ("The answer is **-4**", -4),
        ("the answer is 2.5 hours", Fraction(5, 2)),
        ("First the answer is 3. Rethinking, the answer is 5.", 5),
        ("Natalia sold 48/2 = 24 clips.\n#### 72", 72),
        ("so x = \\boxed{12}", 12),
        ("The answer is 7 (apples). Total 99 items.", 7),
    ],
)
def test_marked_answers_win(text, expected):
    assert extract_cot_answer(text).value == expected


def test_last_number_fallback_and_its_switch():
    text = "12 + 30 = 42 so she has 42 left"
    assert extract_cot_answer(text).value == 42
    assert extract_cot_answer(text, last_number_fallback=False).failure is Failure.NO_ANSWER


def test_marker_without_number_falls_back_to_earlier_marker():
    assert extract_cot_answer("The answer is 9.\nThe answer is unclear").value == 9


def test_no_number_is_no_answer():
    outcome = extract_cot_answer("I do not know.")
    assert not outcome.ok and outcome.failure is Failure.NO_ANSWER and outcome.message
