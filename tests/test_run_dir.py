"""A run directory is self-contained: started from a Hugging Face checkpoint and a tokenizer directory, it resumes,
evaluates and exports after both are deleted (local and gs:// workdirs); a resume that asks for another model or
tokenizer is refused; eval on 2 processes x 2 devices writes exactly the predictions of one process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from flax import nnx
from runs import fake_devices, finish, last_json_line, python_module, start_processes, train

from eotd_jax import paths, run_dir
from eotd_jax.model.config import get_config
from eotd_jax.model.hf_io import export_hf
from eotd_jax.model.t5 import T5

EVAL = ["--datasets=synthetic", "--limit=6", "--strategies=eot,etd", "--max_new_tokens=12", "--batch_size=2",
        "--workers=1"]


def _starting_points(root: Path, data: Path, vocab_size: int = 300, d_ff: int = 128) -> tuple[Path, Path]:
    """A tiny HF checkpoint and a BPE tokenizer directory learnt on `data`, as a user downloads or trains them."""
    tokenizer = root / "tokenizer"
    made = python_module("eotd_jax.train_tokenizer", f"--data={data}", f"--out={tokenizer}",
                         f"--vocab_size={vocab_size}")
    assert made.returncode == 0, made.stderr[-2000:]
    model = root / "hf_model"
    export_hf(T5(get_config("t5-tiny", vocab_size=512, d_ff=d_ff), nnx.Rngs(0)), str(model))
    return model, tokenizer


@pytest.mark.parametrize("where", ["local", "gs"])
def test_a_run_resumes_evaluates_and_exports_after_its_starting_points_are_deleted(tmp_path, training_data, where,
                                                                                     request):
    model, tokenizer = _starting_points(tmp_path, training_data)
    workdir = f"{request.getfixturevalue('gcs')}/{tmp_path.name}/run" if where == "gs" else str(tmp_path / "run")
    start = [f"--config.init_from_hf={model}", f"--config.tokenizer={tokenizer}",
             "--config.checkpoint.every_steps=2"]
    first = train(workdir, training_data, *start, "--config.train.steps=2")
    assert first.returncode == 0, first.stderr[-3000:]
    assert json.loads(paths.path(workdir, run_dir.MODEL).read_text())["vocab_size"] == 512
    assert json.loads(paths.path(workdir, run_dir.CONFIG).read_text())["train"]["steps"] == 2  # written at start
    shutil.rmtree(model)
    shutil.rmtree(tokenizer)

    resumed = train(workdir, training_data, *start, "--config.train.steps=4")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from step 2" in resumed.stderr and last_json_line(resumed.stdout)["step"] == 4

    evaluated = python_module("eotd_jax.eval", f"--workdir={workdir}", *EVAL)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    predictions = paths.path(workdir, "eval", "step_4", "predictions.jsonl").read_text().splitlines()
    assert len(predictions) == 6

    export = f"{workdir}-export"
    exported = python_module("eotd_jax.export", f"--workdir={workdir}", f"--out={export}")
    assert exported.returncode == 0, exported.stderr[-3000:]
    card = paths.path(export, "README.md").read_text()
    assert "step 4 of its run" in card and "| synthetic | 6 |" in card and '"steps": 4' in card
    again = python_module("eotd_jax.eval", f"--workdir={export}", *EVAL, "--max_source_length=256")
    assert again.returncode == 0, again.stderr[-3000:]
    exported_predictions = paths.path(export, "eval", "predictions.jsonl").read_text().splitlines()
    assert [json.loads(line)["thoughts"] for line in exported_predictions] == [
        json.loads(line)["thoughts"] for line in predictions]


def test_a_resume_that_asks_for_another_model_or_tokenizer_is_refused_in_one_line(tmp_path, training_data):
    model, tokenizer = _starting_points(tmp_path, training_data)
    other_model, other_tokenizer = _starting_points(tmp_path / "other", training_data, vocab_size=280, d_ff=256)
    start = ["--config.checkpoint.every_steps=2", "--config.train.steps=2"]
    first = train(tmp_path / "run", training_data, *start, f"--config.init_from_hf={model}",
                  f"--config.tokenizer={tokenizer}")
    assert first.returncode == 0, first.stderr[-3000:]
    saved = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    same_model, same_tokenizer = f"--config.init_from_hf={model}", f"--config.tokenizer={tokenizer}"
    for overrides, message in [([same_model, f"--config.tokenizer={other_tokenizer}"],
                                "was started with another tokenizer"),
                               ([f"--config.init_from_hf={other_model}", same_tokenizer],
                                "was started with another model (d_ff 128 -> 256)"),
                               ([same_model, same_tokenizer, "--config.input.template=Q: {question} {selector}"],
                                "was started with another student input")]:
        result = train(tmp_path / "run", training_data, *start, *overrides, "--config.train.steps=4")
        assert result.returncode != 0
        assert result.stderr.strip().splitlines()[-1].startswith("error: ") and message in result.stderr, overrides
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()} == saved


def test_a_workdir_without_run_files_is_refused_with_how_to_migrate_it(tmp_path, training_data):
    workdir = tmp_path / "run"
    result = train(workdir, training_data, "--config.train.steps=2", "--config.checkpoint.every_steps=2")
    assert result.returncode == 0, result.stderr[-3000:]
    (workdir / run_dir.MODEL).unlink()  # as a run started before the run files existed
    for module, flags in [("eotd_jax.eval", EVAL), ("eotd_jax.export", [f"--out={tmp_path / 'export'}"])]:
        refused = python_module(module, f"--workdir={workdir}", *flags)
        assert refused.returncode != 0
        assert refused.stderr.strip().splitlines()[-1] == (
            f"error: {workdir}: no model.json (started by an older eotd_jax: resume it once with `python -m "
            f"eotd_jax.train --config=<its config> --workdir={workdir}`, which writes them, or train anew)")
    migrated = train(workdir, training_data, "--config.train.steps=2", "--config.checkpoint.every_steps=2")
    assert migrated.returncode == 0 and (workdir / run_dir.MODEL).is_file()
    assert python_module("eotd_jax.eval", f"--workdir={workdir}", *EVAL).returncode == 0


def test_two_processes_evaluating_a_checkpoint_write_the_predictions_of_one(tmp_path, training_data):
    workdir = tmp_path / "run"
    trained = train(workdir, training_data, "--config.train.steps=4", "--config.checkpoint.every_steps=4")
    assert trained.returncode == 0, trained.stderr[-3000:]
    flags = [f"--workdir={workdir}", *EVAL, "--limit=7", "--chunk=3"]  # 7 questions: uneven shares and chunks
    single = python_module("eotd_jax.eval", *flags, f"--eval_dir={tmp_path / 'one'}",
                           env=fake_devices(4))
    assert single.returncode == 0, single.stderr[-3000:]
    logs = tmp_path / "eval"
    finish(start_processes("eotd_jax.eval", *flags, f"--eval_dir={tmp_path / 'two'}", logs=logs), logs)
    assert (tmp_path / "two" / "predictions.jsonl").read_text() == (tmp_path / "one" / "predictions.jsonl").read_text()
    assert (tmp_path / "two" / "results.json").read_text() == (tmp_path / "one" / "results.json").read_text()
