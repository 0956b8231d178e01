import time
from fractions import Fraction

import pytest

from eotd_jax.thoughts.cot import MAX_TEXT_CHARS, extract_cot_answer, marked_answer
from eotd_jax.thoughts.outcome import Failure
from eotd_jax.thoughts.scoring import Verdict, check, verdict


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


def test_the_last_number_when_nothing_concludes():
    assert extract_cot_answer("She has 42 apples and gives away 3").value == 3
    assert extract_cot_answer("12 + 30 = 42 apples, shared by 3 friends").value == 42  # a stated result first


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
    start = time.process_time()
    assert extract_cot_answer("Answer: " * 6_000 + "Answer: 7").value == 7
    assert time.process_time() - start < 1.0


# The classes of final sentences real models write where the first number is not the answer, in the styles of
# several model families: (rationale, its answer, the number a naive reader takes). Each is kept with its answer
# and rejected when the gold answer is the other number.
SEVERAL_NUMBERS = [  # the final sentence holds several numbers
    ("There are 17 marbles in the jar and 9 of them are blue.\n"
     "So the number of red ones is 17 - 9, which is 8.", 8, 17),  # gpt-3.5-turbo
    ("The shop had 99 customers. 8 - 5 = 3 customers left early, and 99 + 3 = 102 came in all.\n"
     "Answer: 3 customers left and there are now 102.", 3, 102),  # llama-2-chat
    ("Q: ...\nA: He had 45 cards and gave away 15. The answer is 45 - 15 = 30.", 30, 45),  # text-davinci-002 few-shot
    ("20 - 15 = 5 students passed the test.\nTherefore, out of 20 students, 5 passed.", 5, 20),  # PaLM-style
    ("Each box holds 12 eggs, so 144 / 12 = 12 boxes.\n\n**Final answer:** 12 boxes hold the 144 eggs.",
     12, 144),  # markdown answer label
    ("It takes 3 hours to paint one room and 4 rooms are left.\nThus, the painter needs 3 × 4 = 12 hours.", 12, 3),
]
RESULTS_IN_WORDS = [  # a later sentence states the result in words: it wins over an earlier "So ..."
    ("So she needs to buy more flour, about 600 grams per cake.\nIn all, 640 + 540 + 30 equals 1210 grams.",
     1210, 600),  # mistral-instruct
    ("Hence each friend gets 4 slices. Adding the 2 slices left over, 4 plus 2 is 6 slices for Ann.", 6, 4),
    ("So the meal costs 12 dollars. With the tip, that makes 12 + 3, which is 15 dollars.", 15, 12),
    ("So far she has read 30 pages.\nTomorrow she reads twice that: 30 times 2 is equal to 60 pages.", 60, 30),
]
NUMBERS_AND_AMOUNTS = [  # digits inside words are no numbers; amounts in other currencies are
    ("Maria had 20 songs and deleted 5, leaving 15 songs on her mp3", 15, 3),
    ("The plant absorbs 4 kg of CO2 a year, so in 3 years it absorbs 12 kg of CO2", 12, 2),
    ("Each ticket is €12.50, so 4 tickets cost 4 × €12.50 = €50.\nShe also pays €5 for parking.", 50, 5),
    ("A bento costs ¥800 and tea ¥150, so lunch is ¥800 + ¥150 = ¥950 a day.\n"
     "For 5 days that is 5 × ¥950 = ¥4,750.", 4750, 5),
    ("Rent is £1,200 and bills are £300: £1,200 + £300 = £1,500 in total.\nThe answer is £1,500.", 1500, 1200),
    ("He pays ₹250 for 2 kg, which is ₹125 per kg. The answer is ₹125.", 125, 250),
]
COT_CLASSES = {"several_numbers": SEVERAL_NUMBERS, "results_in_words": RESULTS_IN_WORDS,
               "numbers_and_amounts": NUMBERS_AND_AMOUNTS}


@pytest.mark.parametrize("name", sorted(COT_CLASSES))
def test_each_cot_class_is_kept_with_its_answer_and_rejected_with_the_other_number(name, pool):
    examples = COT_CLASSES[name]
    checked = check([{"thought": "cot", "rationale": text} for text, _, _ in examples], pool)
    kept = [verdict(c.outcome, Fraction(answer)) for c, (_, answer, _) in zip(checked, examples, strict=True)]
    assert kept == [Verdict.KEPT] * len(examples), [c.outcome for c in checked]
    twins = [verdict(c.outcome, Fraction(other)) for c, (_, _, other) in zip(checked, examples, strict=True)]
    assert twins == [Verdict.WRONG_ANSWER] * len(examples)


ADVERSARIAL = [  # each repeated to the length the test asks for
    " ", "\n", " \t\n", "Answer:" + " " * 999, "answer ", "= ", "=" + " " * 999 + "$", "1 + ", "\n#", "So ",
    "which is ", "1,", "\\boxed{", "\\frac{", "mp3 ", "€", "17 - 9, ", "**", "....", "- 1", "\n" * 99 + "So 4 ",
]


def _repeated(piece: str, length: int) -> str:
    return (piece * (length // len(piece) + 1))[:length]


@pytest.mark.parametrize("piece", ADVERSARIAL)
def test_adversarial_text_is_read_in_linear_time(piece):
    """No run of blanks, markers or digits makes a pattern backtrack: a rationale of the largest size read
    (MAX_TEXT_CHARS) takes well under a second, and a megabyte is refused at once."""
    for text in (_repeated(piece, MAX_TEXT_CHARS - 1) + "7", _repeated(piece, 1_000_000)):
        start = time.process_time()
        extract_cot_answer(text)
        marked_answer(text)
        assert time.process_time() - start < 0.5, len(text)
