"""End to end: a tiny student trained for a few steps, evaluated by the eval binary on fixture files in the
benchmarks' original formats and on the real files; resuming; and the same student exported to Hugging Face."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runs import python_module, train

from eotd_jax.strategies import STRATEGIES
from eotd_jax.thoughts import THOUGHTS

DATASETS = ["gsm8k", "svamp", "multiarith", "asdiv"]
FAST = ["--max_new_tokens=24", "--batch_size=4", "--workers=1"]


@pytest.fixture(scope="module")
def student(tmp_path_factory, training_data) -> Path:
    workdir = tmp_path_factory.mktemp("student")
    result = train(workdir, training_data, "--config.train.steps=4", "--config.checkpoint.every_steps=4")
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def _evaluate(workdir: Path, eval_dir: Path, *flags: str):
    result = python_module("eotd_jax.eval", f"--workdir={workdir}", f"--eval_dir={eval_dir}",
                           *FAST, *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _predictions(eval_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (eval_dir / "predictions.jsonl").read_text().splitlines()]


def test_eval_on_fixture_files_writes_predictions_tables_and_plot_and_resumes(student, benchmark_files, tmp_path):
    flags = [f"--data_dir={benchmark_files}", f"--datasets={','.join([*DATASETS, 'synthetic'])}", "--limit=3"]
    result = _evaluate(student, tmp_path, *flags)
    records = _predictions(tmp_path)
    counts = {"gsm8k": 2, "svamp": 1, "multiarith": 1, "asdiv": 2, "synthetic": 3}  # answerable fixture items
    assert len(records) == sum(counts.values())
    for record in records:
        assert set(record["thoughts"]) == set(THOUGHTS) and set(record["correct"]) == set(STRATEGIES)
        for (outcome,) in record["thoughts"].values():
            assert isinstance(outcome["text"], str)
            assert (outcome["answer"] is None) == (outcome["failure"] not in (None, "wrong_answer"))
    results = json.loads((tmp_path / "results.json").read_text())
    assert {name: r["questions"] for name, r in results.items()} == counts
    for name, result_of in results.items():
        mine = [r for r in records if r["source"].split("/")[0] == name]
        for strategy in STRATEGIES:
            assert result_of["accuracy"][strategy] == sum(r["correct"][strategy] for r in mine) / len(mine)
    table = (tmp_path / "results.md").read_text()
    assert table.strip() in result.stdout and "| dataset | questions | cot | pot | eot | etd | vote |" in table
    assert (tmp_path / "results.png").read_bytes().startswith(b"\x89PNG")

    # Interrupted after four questions, mid-write: the resumed run keeps them and answers only the rest.
    lines = (tmp_path / "predictions.jsonl").read_text().splitlines()
    kept = [json.loads(line) | {"question": "ANSWERED BEFORE THE INTERRUPTION"} for line in lines[:4]]
    (tmp_path / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept) + lines[4][:30])
    _evaluate(student, tmp_path, *flags)
    resumed = _predictions(tmp_path)
    assert len(resumed) == len(records)
    assert len({(r["source"], r["id"]) for r in resumed}) == len(records)
    assert resumed[:4] == kept
    by_key = {(r["source"], r["id"]): r for r in records}
    assert all(r == by_key[r["source"], r["id"]] for r in resumed[4:])  # greedy decoding: same answers again

    changed = python_module("eotd_jax.eval", f"--workdir={student}", f"--eval_dir={tmp_path}", *flags,
                            "--max_new_tokens=32", "--batch_size=4", "--workers=1")
    assert changed.returncode != 0
    assert "holds predictions made with other settings (max_new_tokens: 24 -> 32)" in changed.stderr


def test_eval_on_the_real_benchmark_files(student, datasets_dir, tmp_path):
    _evaluate(student, tmp_path, f"--data_dir={datasets_dir}", f"--datasets={','.join(DATASETS)}", "--limit=2",
              "--strategies=etd,vote")
    results = json.loads((tmp_path / "results.json").read_text())
    assert {name: r["questions"] for name, r in results.items()} == dict.fromkeys(DATASETS, 2)
    assert all(set(r["accuracy"]) == {"etd", "vote"} for r in results.values())


def test_an_exported_student_answers_the_same_from_its_hugging_face_directory(student, tmp_path):
    exported = python_module("eotd_jax.export", f"--workdir={student}", f"--out={tmp_path / 'hf'}")
    assert exported.returncode == 0, exported.stderr[-3000:]
    flags = ["--datasets=synthetic", "--limit=4", "--strategies=etd"]
    _evaluate(student, tmp_path / "from_checkpoint", *flags)
    _evaluate(tmp_path / "hf", tmp_path / "from_hf", *flags)
    texts = [[r["thoughts"][t][0]["text"] for t in THOUGHTS] for r in _predictions(tmp_path / "from_checkpoint")]
    assert texts == [[r["thoughts"][t][0]["text"] for t in THOUGHTS] for r in _predictions(tmp_path / "from_hf")]


def test_bad_eval_arguments_fail_with_one_line(student, tmp_path):
    for flags, message in [(["--datasets=mmlu"], "--datasets: unknown mmlu"),
                           (["--strategies=beam"], "--strategies: unknown beam"),
                           (["--step=7"], "no checkpoint at step 7; saved: [4]"),
                           (["--step=first"], "must be latest, best or a step number"),
                           (["--datasets=gsm8k", f"--data_dir={tmp_path}"], "gsm8k/test: no file at")]:
        result = python_module("eotd_jax.eval", f"--workdir={student}", f"--eval_dir={tmp_path}", *flags)
        assert result.returncode != 0
        assert result.stderr.strip().splitlines()[-1].startswith("error: ") and message in result.stderr, flags
