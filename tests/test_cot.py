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


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Answer: It will take the builder 48 hours to install the remaining 6 windows.", 48),
        ("14 - 8 = 6 windows remain; 6 * 8 = 48.\nAnswer: It will take 48 hours to install the remaining 6 windows.",
         48),
        ("12/60 = 0.2 per minute. 0.2 * 50 = 10. So Weng earned $10 for 50 minutes of babysitting.", 10),
        ("**Answer:** $18", 18),
        ("**Final Answer:** \\( \\boxed{1{,}500} \\)", 1500),
        ("The total is $\\boxed{1\\,250}$ dollars.", 1250),
        ("The final answer is $\\dfrac{3}{4}$. I hope it is correct.", Fraction(3, 4)),
        ("Therefore, the answer (arabic numerals) is 11.", 11),
        ("She sells 9 eggs for 9 * 2 = 18 dollars.\nTherefore, Janet makes $18 a day.\nNote: a dozen is 12.", 18),
        ("So she has 5 left. Then she buys 3 more, so 5 + 3 = 8 in all.", 8),  # a calculation after "So": last number
        ("The temperature falls to \u22128 degrees.\nAnswer: \u22128", -8),
        ("She gave away 3 of her 5 apples. The answer is two.", 2),
        ("3 + 22 = 25 pencils in all.\nThe answer is twenty-five pencils.", 25),
        ("They are 100 + 50 = 150 pages. The answer is a hundred and fifty.", 150),
    ],
)
def test_answer_phrasings_of_real_models(text, expected):
    assert extract_cot_answer(text).value == expected


def test_many_markers_are_read_in_linear_time():
    import time

    start = time.monotonic()
    assert extract_cot_answer("Answer: " * 20_000 + "Answer: 7").value == 7
    assert time.monotonic() - start < 1.0
