"""The backward and simultaneous synthetic families: gold answers that solve, gold thoughts that verify,
relations stated in an order that does not compute the answer, disjoint splits, and the build binary."""

from __future__ import annotations

import ast
import collections
import json
import re

import pytest
import sympy
from runs import python_module

from data_gen.teachers.gold import GoldTeacher
from data_gen.verification import verify_candidates
from eotd_jax.benchmarks import load_problems
from eotd_jax.benchmarks.synthetic import synthetic_problems
from eotd_jax.benchmarks.synthetic_families import (
    FAMILIES,
    FAMILY_NAMES,
    SPLITS,
    family_problems,
    numbers_key,
    steps_of,
)


def _template(problem) -> str:
    return problem.id.rsplit("-", 1)[1]


def _problems(split: str, count: int, seed: int = 0) -> list:
    return [p for family in FAMILIES for p in family_problems(family, count, seed, split)]


def _sympy_system(equation: str) -> list[sympy.Eq]:
    """Gold systems are this module's own text, so sympy may parse them here (never untrusted text)."""
    return [sympy.Eq(*(sympy.parse_expr(side, evaluate=False) for side in line.split(" = ")))
            for line in equation.splitlines()]


def test_four_families_beside_the_forward_one_each_with_held_out_compositions_of_trained_steps():
    assert FAMILY_NAMES == ("forward", "start_from_end", "two_unknowns", "part_whole", "backward_rates")
    for family in FAMILIES.values():
        trained_steps = {step for name in family.trained for step in steps_of(name)}
        assert family.compositional and not set(family.compositional) & set(family.trained)
        for name in family.compositional:
            assert set(steps_of(name)) <= trained_steps, (family.name, name)
            assert steps_of(name) not in {steps_of(trained) for trained in family.trained}


@pytest.mark.parametrize("split", ["train", "test_compositional"])
def test_gold_answers_solve_the_stated_system_uniquely(split):
    for problem in _problems(split, 40, seed=3):
        system = _sympy_system(problem.equation)
        unknowns = sorted(set().union(*(e.free_symbols for e in system)), key=str)
        solutions = sympy.solve(system, unknowns, dict=True)
        assert len(solutions) == 1, problem.id
        assert solutions[0][sympy.Symbol("ans")] == problem.answer, problem.id
        assert problem.answer > 0 and problem.answer.denominator == 1


def test_the_stated_relations_do_not_compute_the_answer_in_reading_order():
    """Read as assignments top to bottom, no system gives `ans`: the solver (or the student) must invert it."""
    for problem in _problems("train", 40, seed=4) + _problems("test_compositional", 20, seed=4):
        known: dict[str, sympy.Expr] = {}
        for equation in _sympy_system(problem.equation):
            if isinstance(equation.lhs, sympy.Symbol) and equation.rhs.free_symbols <= {sympy.Symbol(k) for k in known}:
                known[equation.lhs.name] = equation.rhs.subs({sympy.Symbol(k): v for k, v in known.items()})
        assert "ans" not in known, problem.id


@pytest.mark.parametrize("split", ["train", "test", "test_compositional"])
def test_every_gold_thought_of_every_family_verifies(split, pool):
    problems = _problems(split, 30, seed=2)
    assert {p.source for p in problems} == {f"synthetic/{family}/{split}" for family in FAMILIES}
    candidates = GoldTeacher().generate(problems, ["cot", "pot", "eot"], 1)
    kept, counts = verify_candidates(candidates, problems, pool, "gold")
    assert {t: c["kept"] for t, c in counts.items()} == {t: len(problems) for t in ("cot", "pot", "eot")}
    rationales = {(r.id, r.thought): r.rationale for r in kept}
    for problem in problems:
        assert rationales[problem.id, "cot"].endswith(f"The answer is {problem.answer_text}.")
        assert rationales[problem.id, "eot"] == problem.equation  # the relations as stated, `ans` among them
        program = rationales[problem.id, "pot"]
        assert program.splitlines()[-1].startswith("ans = ")
        assert all(isinstance(node, ast.Assign) for node in ast.parse(program).body)


def test_splits_share_no_question_and_test_problems_have_new_numbers():
    for name, family in FAMILIES.items():
        splits = {split: family_problems(name, 300, seed=0, split=split) for split in SPLITS}
        questions = {split: {p.question for p in problems} for split, problems in splits.items()}
        for split in SPLITS:
            assert len(questions[split]) == 300
            for other in SPLITS:
                assert split == other or not questions[split] & questions[other], (name, split, other)
        keys = {split: {numbers_key(_template(p), p.equation.splitlines()) for p in splits[split]}
                for split in ("train", "validation", "test")}
        assert not keys["test"] & keys["train"] and not keys["validation"] & keys["train"]
        assert not keys["test"] & keys["validation"]
        for split in ("train", "validation", "test"):
            assert {_template(p) for p in splits[split]} == set(family.trained), (name, split)
        assert {_template(p) for p in splits["test_compositional"]} == set(family.compositional)


def test_numbers_key_sees_through_wording():
    """"1/5 as many" and "5 times as many" state the same numbers: one key, so one split."""
    assert numbers_key("sum+times", ["a + ans = 264", "ans = a / 5"]) == numbers_key(
        "sum+times", ["ans + a = 264", "a = 5 * ans"])


_DISTRACTOR = re.compile(r"years old\.|The shop opened|It rained on|also keeps|The town has")


def test_wording_and_distractors_vary():
    for name in FAMILIES:
        problems = family_problems(name, 200, seed=5)
        questions = [re.sub(r"\d+", "#", p.question.rsplit(". ", 1)[-1]) for p in problems]
        openers = [re.sub(r"\d+", "#", p.question.split(". ", 1)[0]) for p in problems]
        assert len(collections.Counter(questions)) >= 4 and len(collections.Counter(openers)) >= 4, name
        with_distractor = sum(bool(_DISTRACTOR.search(p.question)) for p in problems)
        assert 0.3 < with_distractor / len(problems) < 0.7, name
        steps = [p.solution.count("<<") for p in problems]
        assert min(steps) >= 1 and max(steps) >= 3, name


def test_load_problems_names_families_and_their_splits():
    assert load_problems("synthetic/two_unknowns/test_compositional", limit=7) == family_problems(
        "two_unknowns", 7, split="test_compositional")
    assert load_problems("synthetic/part_whole", limit=3) == family_problems("part_whole", 3, split="test")
    assert load_problems("synthetic/forward/test_unseen", limit=5) == synthetic_problems(5, split="test_unseen")
    assert load_problems("synthetic/forward/train", limit=5) == load_problems("synthetic/train", limit=5)
    with pytest.raises(ValueError, match="unknown family 'sideways'"):
        load_problems("synthetic/sideways/test")
    with pytest.raises(ValueError, match="two_unknowns has no split 'test_unseen'"):
        load_problems("synthetic/two_unknowns/test_unseen")


def test_build_draws_each_named_family(tmp_path):
    out = tmp_path / "data"
    result = python_module("data_gen.build", "--synthetic_count=6", "--synthetic_families=forward,two_unknowns",
                           "--thoughts=eot,pot", f"--out={out}", "--format=jsonl", "--num_shards=1",
                           "--progress=false", "--workers=1", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for path in out.glob("*.jsonl*") for line in path.read_text().splitlines()]
    assert collections.Counter(r["source"] for r in records) == {"synthetic/train": 12,
                                                                 "synthetic/two_unknowns/train": 12}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["synthetic_families"] == ["forward", "two_unknowns"]
    assert manifest["problems"] == 12
    bad = python_module("data_gen.build", "--synthetic_families=sideways", f"--out={tmp_path / 'bad'}",
                        "--progress=false", timeout=300)
    assert bad.returncode != 0 and "error: synthetic: unknown family 'sideways'" in bad.stderr
    assert "Traceback" not in bad.stderr
