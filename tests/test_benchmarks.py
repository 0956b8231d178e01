"""Loaders: fixture files the tests write (always), the real files in ../shared (when present)."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from conftest import HUB_ROWS, save_hub_copy, upload

from eotd_jax import benchmarks
from eotd_jax.benchmarks import DatasetFormatError, asdiv, multiarith, svamp
from eotd_jax.thoughts.answers import answers_match


def test_fixture_files_load_into_common_records(benchmark_files):
    gsm8k = benchmarks.load("gsm8k", benchmark_files)
    assert [p.answer for p in gsm8k] == [24, 1234]
    assert gsm8k[0].solution.startswith("48/2") and gsm8k[0].source == "gsm8k/test"
    (svamp_problem,) = benchmarks.load("svamp", benchmark_files)
    assert svamp_problem.id == "chal-1" and svamp_problem.answer == 51
    assert svamp_problem.question == "A pack costs 76. Pay?"
    (multiarith_problem,) = benchmarks.load("multiarith", benchmark_files)
    assert multiarith_problem.question == "Debby had 32." and multiarith_problem.answer == 39
    standard = benchmarks.load("asdiv", benchmark_files)
    assert [p.id for p in standard] == ["nluds-0003", "nluds-0001"]  # the ID file's order
    assert [p.answer for p in standard] == [5, 9]  # several values: the first
    full = benchmarks.load("asdiv", benchmark_files, subset="full")
    assert [p.answer for p in full] == [9, None, 5]


@pytest.mark.parametrize(
    "name, relative_path, content, expected",
    [
        ("gsm8k", "gsm8k/test.jsonl", '{"question": "Q?", "answer": "#### 3"}\n{"question": "Q?"}\n',
         r"gsm8k/test.jsonl: line 2: field 'answer': missing"),
        ("gsm8k", "gsm8k/test.jsonl", '{"question": "Q?", "answer": "#### 3"}\n{not json\n',
         r"gsm8k/test.jsonl: line 2: field '<json>'"),
        ("gsm8k", "gsm8k/test.jsonl", '{"question": "Q?", "answer": "no marker"}\n',
         r"line 1: field 'answer': no '#### N' line"),
        ("gsm8k", "gsm8k/test.jsonl", '{"question": "Q?", "answer": "#### many"}\n',
         r"line 1: field 'answer': not a number"),
        ("svamp", "svamp/SVAMP.json", '[{"Body": "b", "Question": "q", "Equation": "1", "Answer": "x"}]',
         r"SVAMP.json: item 0: field 'Answer': expected"),
        ("svamp", "svamp/SVAMP.json", '{"a": 1}', r"SVAMP.json: top level"),
        ("multiarith", "multiarith/MultiArith.json", '[{"sQuestion": "q", "lEquations": [], "lSolutions": [1, 2]}]',
         r"MultiArith.json: item 0: field 'lSolutions': expected one number"),
        ("asdiv", "asdiv/ASDiv.xml", "<ProblemSet><Problem ID='a'><Body>b</Body></Problem></ProblemSet>",
         r"ASDiv.xml: Problem #1 \(ID='a'\): field 'Question': missing"),
        ("asdiv", "asdiv/ASDiv.xml", "<ProblemSet><Problem>", r"ASDiv.xml: line 1: field '<xml>'"),
    ],
)
def test_malformed_files_name_file_item_and_field(benchmark_files, name, relative_path, content, expected):
    (benchmark_files / relative_path).write_text(content)
    with pytest.raises(DatasetFormatError, match=expected):
        benchmarks.load(name, benchmark_files, subset="full")


def test_missing_files_and_bad_arguments_are_clear(benchmark_files):
    empty = benchmark_files / "empty"
    with pytest.raises(FileNotFoundError, match="gsm8k/test: no file at"):
        benchmarks.load("gsm8k", empty)
    with pytest.raises(ValueError, match="unknown benchmark 'mawps'"):
        benchmarks.load("mawps", empty)
    with pytest.raises(ValueError, match="splits"):
        benchmarks.load("svamp", empty, split="train")
    (benchmark_files / "asdiv" / "standard_2096_ids.txt").write_text("nluds-0002\n")
    with pytest.raises(DatasetFormatError, match="line 1: field 'ID': nluds-0002 has no numeric answer"):
        benchmarks.load("asdiv", benchmark_files)
    (benchmark_files / "asdiv" / "standard_2096_ids.txt").write_text("nope\n")
    with pytest.raises(DatasetFormatError, match="'nope' is not in the ASDiv file"):
        benchmarks.load("asdiv", benchmark_files)


def test_hub_loading_code_path_on_local_directories(tmp_path):
    """`datasets.load_dataset` on local directories in each hub copy's schema."""
    for name, row in HUB_ROWS.items():
        directory = tmp_path / name
        directory.mkdir()
        (directory / "test.jsonl").write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
        problems = benchmarks.load_from_hub(name, split="test", path=str(directory))
        assert [p.answer for p in problems] == [6, 6], name
        assert problems[0].question.endswith("Q?") and problems[0].source == f"{name}/test"


def test_hub_copies_saved_with_datasets_load_from_a_local_dir_and_from_gs(tmp_path, gcs):
    """`hub:<dir>`: copies that `save_to_disk` wrote (DatasetDict or Dataset), read with no network."""
    for name, row in HUB_ROWS.items():
        save_hub_copy(name, [row, row], str(tmp_path), as_dict=name != "svamp")
    for name in HUB_ROWS:
        problems = benchmarks.load_from(f"hub:{tmp_path}", name)
        assert [p.answer for p in problems] == [6, 6] and problems[0].source == f"{name}/test", name
    with pytest.raises(ValueError, match="no split 'train'; it has test"):
        benchmarks.load_from_hub("gsm8k", split="train", path=str(tmp_path / "gsm8k"))
    remote = f"{gcs}/hub-{tmp_path.name}"
    save_hub_copy("gsm8k", [HUB_ROWS["gsm8k"]], remote)  # datasets writes to gs:// through fsspec itself
    assert [p.answer for p in benchmarks.load_from(f"hub:{remote}", "gsm8k")] == [6]


def test_benchmark_files_load_the_same_from_gs(benchmark_files, gcs):
    remote = upload(benchmark_files, f"{gcs}/benchmarks-{benchmark_files.name}")
    for name in benchmarks.BENCHMARKS:
        assert benchmarks.load_from(remote, name) == benchmarks.load(name, str(benchmark_files)), name
    with pytest.raises(FileNotFoundError, match=f"gsm8k/test: no file at {remote}/nowhere/gsm8k/test.jsonl"):
        benchmarks.load_from(f"{remote}/nowhere", "gsm8k")


def test_the_asdiv_standard_id_list_ships_in_the_package(benchmark_files):
    ids = open(asdiv.packaged_standard_ids(), encoding="utf-8").read().split()
    assert len(ids) == len(set(ids)) == 2096 and ids[0] == "nluds-0001"
    (benchmark_files / "asdiv" / "standard_2096_ids.txt").unlink()  # no list beside the file: the packaged one
    with pytest.raises(DatasetFormatError, match=r"asdiv_standard_2096_ids.txt: line 2: field 'ID': nluds-0002 has"):
        benchmarks.load("asdiv", benchmark_files)


def test_the_packaged_asdiv_list_selects_the_standard_subset_of_the_real_file(datasets_dir, tmp_path):
    (tmp_path / "asdiv").mkdir()
    (tmp_path / "asdiv" / "ASDiv.xml").write_bytes((datasets_dir / "asdiv" / "ASDiv.xml").read_bytes())
    packaged = benchmarks.load("asdiv", tmp_path)
    assert packaged == benchmarks.load("asdiv", datasets_dir) and len(packaged) == 2096


# The real files (../shared/datasets) -------------------------------------------------------

REAL_COUNTS = [("gsm8k", "train", 7473), ("gsm8k", "test", 1319), ("svamp", "test", 1000),
               ("asdiv", "test", 2096), ("multiarith", "test", 600)]


@pytest.mark.parametrize("name, split, count", REAL_COUNTS)
def test_real_files_have_the_published_counts_and_every_answer_parses(datasets_dir, name, split, count):
    problems = benchmarks.load(name, datasets_dir, split)
    assert len(problems) == count
    assert all(isinstance(p.answer, Fraction) for p in problems)
    assert len({p.id for p in problems}) == count
    assert all(p.question.strip() for p in problems)


def test_real_asdiv_full_set(datasets_dir):
    full = benchmarks.load("asdiv", datasets_dir, subset="full")
    assert len(full) == 2305
    assert sum(p.answer is not None for p in full) > 2096


@pytest.mark.parametrize("name, module", [("svamp", svamp), ("multiarith", multiarith)])
def test_gold_equations_solve_to_gold_answers(datasets_dir, pool, name, module):
    problems = benchmarks.load(name, datasets_dir)
    outcomes = pool.map("eot", [module.gold_eot(p) for p in problems])
    failures = [(p.id, p.equation, p.answer_text, o) for p, o in zip(problems, outcomes, strict=True)
                if not answers_match(o.value, p.answer)]
    solved = len(problems) - len(failures)
    print(f"\n{name}: {solved}/{len(problems)} gold equations solve to the gold answer "
          f"({100 * solved / len(problems):.1f}%); failures: {failures}")
    assert solved >= 0.99 * len(problems)
