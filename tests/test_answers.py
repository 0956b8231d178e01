from fractions import Fraction

import pytest

from eotd_jax.thoughts.answers import answers_match, find_numbers, format_number, parse_number
from eotd_jax.thoughts.outcome import Failure


@pytest.mark.parametrize(
    "text, expected",
    [
        ("72", 72),
        ("1,234", 1234),
        ("$1,234.50", Fraction(246_900, 200)),
        ("-5", -5),
        ("−5", -5),
        ("51.0", 51),
        ("50%", 50),
        ("9 (apples)", 9),
        ("0.5 (kg)", Fraction(1, 2)),
        ("3/4", Fraction(3, 4)),
        ("1 1/2", Fraction(3, 2)),
        ("1e3", 1000),
        (".5", Fraction(1, 2)),
        ("18.", 18),
        (7, 7),
        (2.5, Fraction(5, 2)),
    ],
)
def test_parse_number_reads_benchmark_and_model_answers(text, expected):
    assert parse_number(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "Yes", "3:30 p.m.", "Purple", "1/0", "2;3", "1" * 100, "1e999", float("nan"), float("inf"), True, None],
)
def test_parse_number_gives_no_answer(text):
    assert parse_number(text) is None


def test_answers_match_exact_and_with_float_rounding():
    assert answers_match(Fraction(51), parse_number("51.0"))
    assert answers_match(parse_number(0.1 + 0.2), Fraction(3, 10))
    assert answers_match(Fraction(3, 4), parse_number("0.75"))
    assert not answers_match(Fraction(1, 3), parse_number("0.33"))
    assert not answers_match(Fraction(72), Fraction(73))
    assert not answers_match(None, Fraction(1))
    assert not answers_match(Fraction(1), None)


def test_format_number_is_short_and_faithful():
    assert format_number(Fraction(51)) == "51"
    assert format_number(Fraction(3, 4)) == "0.75"
    assert format_number(Fraction(1, 3)) == "1/3"
    for value in (Fraction(51), Fraction(3, 4), Fraction(1, 3), Fraction(-7, 8)):
        assert parse_number(format_number(value)) == value


@pytest.mark.parametrize("text", ["1" * 65 + "/3", "3/" + "1" * 65, "1 1/" + "9" * 65, "1" * 65, 10**64, 1e64, "1e64"])
def test_one_digit_cap_on_every_answer_path(text):
    """Plain, fraction, mixed, int and float answers over 64 digits are all refused."""
    assert parse_number(text) is None


def test_the_cap_itself_is_allowed():
    assert parse_number("9" * 64) == 10**64 - 1
    assert parse_number("1/" + "9" * 64) == Fraction(1, 10**64 - 1)


@pytest.mark.parametrize("text", ["e5", "E10", "-e5", ".e3", "1e", "e", ".", ",", "$", "%", "1,2,3", "٣", "1/", "/2",
                                  "1 1/", "--5", "5-", "(3)", "3 (a) (b)", "\udc80", "1\x00", "1e-", "0x10"])
def test_no_text_makes_parse_number_raise(text):
    assert parse_number(text) is None


@pytest.mark.parametrize("text, expected", [("€12", 12), ("£ 3.50", Fraction(7, 2)), ("- ¥800", -800), ("₹1,250", 1250),
                                            ("  7  ", 7), ("\t18 .\n", 18), ("3 / 4", Fraction(3, 4)),
                                            ("12 %", 12), ("5 (apples) .", 5)])
def test_amounts_in_other_currencies_and_blanks_anywhere(text, expected):
    assert parse_number(text) == expected


def test_random_text_never_raises_and_blank_runs_are_linear():
    """The answer pattern has no adjacent optional blanks: 250 blanks and a letter parse at once."""
    import random
    import time

    rng = random.Random(7)
    alphabet = "0123456789 \t\n.,-−+eE/$€£%()abc\udc80٣"
    for _ in range(20_000):
        parse_number("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))))
    start = time.process_time()
    for text in (" " * 250 + "a", "- " * 120 + "x", "1" + " " * 250 + "/", "$" + " " * 250 + "1 1/ ", " " * 255 + "e5"):
        assert parse_number(text) is None
    assert time.process_time() - start < 0.1


def test_a_program_answering_any_text_gets_an_outcome(pool):
    """The sandbox hands the parent `ans` as text: whatever it is, `run` and `map` return an outcome."""
    texts = ["e5", "E10", " " * 150 + "a", "1e", "\udc80", "٣", "1/0", "nan", "inf", "-", "1" * 199]
    programs = [f"ans = {text!r}" for text in texts]
    outcomes = pool.map("pot", programs)
    assert [o.failure for o in outcomes] == [Failure.NOT_A_NUMBER] * len(texts)
    assert pool.run("pot", "ans = 'e5'").failure is Failure.NOT_A_NUMBER


@pytest.mark.parametrize("piece", ["1,", "1", "-", " ", "1.", "1e", "1 ", "-1,000", "1/"])
def test_numbers_of_a_megabyte_of_text_are_found_in_linear_time(piece):
    import time

    start = time.process_time()
    find_numbers(piece * (1_000_000 // len(piece)))
    assert time.process_time() - start < 1.0
