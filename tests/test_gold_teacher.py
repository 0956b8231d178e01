"""The gold teacher: calculator steps and prose arithmetic become verified PoT / EoT."""

from __future__ import annotations

from fractions import Fraction

import pytest

from data_gen.teachers.gold import GoldTeacher, arithmetic_value, clean_expression, gold_rationales, solution_steps
from data_gen.verification import verify_candidates
from eotd_jax.benchmarks import Problem, load
from eotd_jax.benchmarks.synthetic import TRAIN_TEMPLATES, synthetic_problems


def _gsm8k(question: str, solution: str, answer: int) -> Problem:
    return Problem("q", "gsm8k/train", question, Fraction(answer), str(answer), solution=solution)


def test_annotations_become_named_steps():
    problem = _gsm8k("Natalia sold clips to 48 friends in April, and half as many in May. How many in all?",
                     "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nShe sold 48+24 = <<48+24=72>>72 clips.", 72)
    assert gold_rationales(problem)["pot"] == "step1 = 48 / 2\nans = 48 + step1"
    assert gold_rationales(problem, "compact")["eot"] == "step1 = 48 / 2\nans = 48 + step1"
    assert gold_rationales(problem)["cot"].endswith("She sold 48+24 = 72 clips.\nThe answer is 72.")


def test_paper_style_eot_comments_each_equation_with_its_prose_step():
    problem = _gsm8k("Natalia sold clips to 48 friends in April, and half as many in May. How many in all?",
                     "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nShe sold 48+24 = <<48+24=72>>72 clips.", 72)
    assert gold_rationales(problem)["eot"] == ("% Natalia sold 48/2 = 24 clips in May:\nstep1 = 48 / 2\n"
                                               "% She sold 48+24 = 72 clips:\nans = 48 + step1")
    svamp = Problem("s", "svamp/test", "Jack has 5 apples. He buys 3 more. How many apples does he have?", Fraction(8),
                    "8", equation="( 5.0 + 3.0 )")
    assert gold_rationales(svamp)["eot"] == "% How many apples does he have?:\nans = ( 5.0 + 3.0 )"
    assert gold_rationales(svamp, "compact")["eot"] == "ans = ( 5.0 + 3.0 )"


def test_unannotated_final_steps_units_and_unicode_minus_are_read():
    problem = _gsm8k("Clare has $47. She buys 4 loaves at $2 and 2 milks at $2. How much is left?",
                     "Bread: 4 × $2 = $<<4*2=8>>8.\nMilk: 2 × $2 = $<<2*2=4>>4.\nTotal $8 + $4 = $<<8+4=12>>12.\n"
                     "Clare has $47 − $12 = $35 left.", 35)
    assert gold_rationales(problem)["pot"].splitlines()[-1] == "ans = 47 - step3"
    problem = _gsm8k("Tina cleans 14 keys at 3 minutes each, then works 10 minutes. How long?",
                     "14 x 3 = <<14*3=42>>42 minutes.\nSo 42 minutes + 10 minutes = 52 minutes total.", 52)
    assert gold_rationales(problem)["pot"] == "step1 = 14 * 3\nans = step1 + 10"


def test_percent_is_read_the_way_the_written_result_agrees_with():
    assert solution_steps("100% - 40% = 60%")[0][:2] == ("100 - 40", Fraction(60))
    assert solution_steps("60% * 40% = 24%")[0][:2] == ("(60 / 100) * (40 / 100)", Fraction(6, 25))
    assert clean_expression("$1,200 x 10%") == "1200 * (10 / 100)"
    assert clean_expression("3(10)") == "3 * ( 10 )"


def test_rounding_is_a_program_step_but_not_an_equation():
    problem = _gsm8k("Study 15 hours at 4 hours a day. How many days?", "15 / 4 = <<15/4=3.75>>3.75 days", 4)
    rationales = gold_rationales(problem)
    assert rationales["pot"] == "import math\nstep1 = 15 / 4\nans = math.ceil(step1)"
    assert rationales["eot"].endswith("\nans = 15 / 4")  # verification will reject it: equations cannot round


def test_no_steps_means_no_program():
    problem = _gsm8k("Let x be ...", "Let x be the age.\nx+3x=40\nx=10", 10)
    assert "pot" not in gold_rationales(problem)
    assert GoldTeacher().generate([problem], ["pot"], 1)[0].failure == "no_annotations"


@pytest.mark.parametrize("hostile", ["__import__('os').system('id')", "9**9**9", "(1).__class__", "a.b", "f(1)"])
def test_arithmetic_never_evaluates_anything_but_arithmetic(hostile):
    assert arithmetic_value(hostile) is None


def test_synthetic_source_is_reproducible_and_covers_every_template():
    first, again = synthetic_problems(50, seed=3), synthetic_problems(50, seed=3)
    assert first == again
    assert first != synthetic_problems(50, seed=4)
    assert {p.id.rsplit("-", 1)[1] for p in first} == set(TRAIN_TEMPLATES)


def test_every_synthetic_gold_thought_verifies(pool):
    problems = synthetic_problems(140, seed=0)
    candidates = GoldTeacher().generate(problems, ["cot", "pot", "eot"], 1)
    kept, counts = verify_candidates(candidates, problems, pool, "gold")
    assert {t: c["kept"] for t, c in counts.items()} == {"cot": 140, "pot": 140, "eot": 140}
    assert len(kept) == 420


def test_gold_teacher_yield_on_real_gsm8k_train(datasets_dir, pool):
    problems = load("gsm8k", str(datasets_dir), "train")
    candidates = GoldTeacher().generate(problems, ["pot", "eot"], 1)
    kept, counts = verify_candidates(candidates, problems, pool, "gold")
    pot, eot = counts["pot"]["kept"] / len(problems), counts["eot"]["kept"] / len(problems)
    print(f"\ngold teacher on GSM8K train ({len(problems)}): PoT {pot:.2%}, EoT (paper format) {eot:.2%}")
    assert pot >= 0.98 and eot >= 0.979
    eot_record = next(r for r in kept if r.thought == "eot")
    assert eot_record.rationale.startswith("% ") and "%" not in eot_record.verified_form
