"""ETD fallback and voting on hand-made outcomes where the right choice is known."""

from __future__ import annotations

from fractions import Fraction

import pytest

from eotd_jax.strategies import choose
from eotd_jax.thoughts.outcome import Failure, Outcome

ok = lambda v: Outcome(value=Fraction(v))  # noqa: E731
bad = Outcome.fail(Failure.SYNTAX, "x")


def test_single_thoughts_take_their_own_first_answer():
    answers = {"cot": [ok(1)], "pot": [bad, ok(9)], "eot": [ok(3)]}
    assert choose("cot", answers) == 1 and choose("pot", answers) is None and choose("eot", answers) == 3


@pytest.mark.parametrize(("answers", "expected"), [
    ({"eot": [ok(3)], "pot": [ok(2)], "cot": [ok(1)]}, 3),       # EoT solves: used
    ({"eot": [bad], "pot": [ok(2)], "cot": [ok(1)]}, 2),         # EoT fails -> PoT
    ({"eot": [bad], "pot": [bad], "cot": [ok(1)]}, 1),           # both fail -> CoT
    ({"eot": [bad], "pot": [bad], "cot": [bad]}, None),
    ({"eot": [ok(5)], "pot": [], "cot": []}, 5),
])
def test_etd_falls_back_eot_pot_cot(answers, expected):
    assert choose("etd", answers) == expected


def test_vote_takes_the_majority_and_breaks_ties_eot_pot_cot():
    assert choose("vote", {"eot": [ok(3)], "pot": [ok(2)], "cot": [ok(2)]}) == 2
    assert choose("vote", {"eot": [ok(3)], "pot": [ok(2)], "cot": [ok(1)]}) == 3
    assert choose("vote", {"eot": [bad], "pot": [ok(2)], "cot": [ok(1)]}) == 2
    # Samples count as votes; a float program and an exact fraction agree.
    answers = {"eot": [bad, bad], "pot": [Outcome(value=Fraction(0.1) + Fraction(0.2)), ok(7)],
               "cot": [ok(Fraction(3, 10)), ok(7), ok(7)]}
    assert choose("vote", answers) == 7
    assert choose("vote", {"eot": [bad], "pot": [bad], "cot": [bad]}) is None
    with pytest.raises(ValueError, match="unknown strategy"):
        choose("best", {})


def test_vote_groups_answers_with_the_one_answer_tolerance():
    """Answers that `answers_match` vote together however they round: 123456789.00001 and 123456789."""
    answers = {"eot": [ok(5)], "pot": [Outcome(value=Fraction(123456789) + Fraction(1, 100_000))],
               "cot": [ok(123456789)]}
    assert choose("vote", answers) == Fraction(123456789) + Fraction(1, 100_000)
    assert choose("vote", {"eot": [ok(5)], "pot": [ok(Fraction(1, 3))], "cot": [ok(Fraction(333, 1000))]}) == 5
