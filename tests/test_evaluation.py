"""Scoring student output: the oracle check and the robustness of one question's failure."""

from __future__ import annotations

from data_gen.teachers.gold import gold_rationales
from eotd_jax.benchmarks import load
from eotd_jax.benchmarks.synthetic import synthetic_problems
from eotd_jax.evaluation import score
from eotd_jax.thoughts import THOUGHTS

STRATEGIES = ["cot", "pot", "eot", "etd", "vote"]


def _oracle(problems, pool):
    """Gold-teacher rationales fed through the scoring code as if the student wrote them."""
    gold = [gold_rationales(p) for p in problems]
    usable = [i for i, g in enumerate(gold) if all(t in g for t in THOUGHTS)]
    problems = [problems[i] for i in usable]
    rationales = {t: [[gold[i][t]] for i in usable] for t in THOUGHTS}
    return score(problems, rationales, STRATEGIES, pool)


def test_oracle_on_synthetic_problems_is_perfect(pool):
    records = _oracle(synthetic_problems(70, seed=5, split="test"), pool)
    assert len(records) == 70
    assert all(all(r["correct"].values()) for r in records)


def test_oracle_on_real_gsm8k_is_perfect_where_the_gold_teacher_verified(datasets_dir, pool):
    problems = load("gsm8k", str(datasets_dir), "test")[:300]
    records = _oracle(problems, pool)
    verified = [r for r in records if r["thoughts"]["eot"][0]["failure"] is None]
    assert len(verified) > 0.9 * len(records)
    assert all(r["correct"]["eot"] and r["correct"]["etd"] for r in verified)
    assert all(r["correct"]["cot"] for r in records)  # the CoT ends in the gold answer


def test_a_hanging_or_hostile_program_costs_only_its_question(pool):
    problems = synthetic_problems(3, seed=1, split="test")
    gold = [gold_rationales(p) for p in problems]
    rationales = {"pot": [[gold[0]["pot"]], ["while True:\n    pass"], ["import os\nos.system('id')"]],
                  "eot": [[gold[0]["eot"]], ["x = = 1"], [gold[2]["eot"]]],
                  "cot": [["The answer is 0."], [gold[1]["cot"]], ["no idea"]]}
    records = score(problems, rationales, STRATEGIES, pool)
    assert records[0]["correct"]["pot"] and records[0]["correct"]["etd"]
    assert records[1]["thoughts"]["pot"][0]["failure"] == "timeout"
    assert records[1]["correct"]["etd"]  # EoT and PoT failed, CoT answered
    assert records[2]["thoughts"]["pot"][0]["failure"] == "forbidden" and records[2]["correct"]["etd"]
