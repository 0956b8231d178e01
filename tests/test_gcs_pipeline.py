"""The whole pipeline on gs:// paths, against a GCS emulator on 127.0.0.1, as on a 2-host slice: data_gen build ->
training on 2 processes -> SIGTERM to one -> resume on 2 (in-training eval reading a hub-format copy on gs://) ->
eval on 2 processes (benchmark files on gs://) -> export -> eval of the export.

Every binary runs as a user runs it, with the emulator's environment (tests/gcs.py). TensorFlow's own GCS
client cannot be pointed at the emulator; the project never hands it a gs:// path, and this test would fail
(no network) if it did.
"""

from __future__ import annotations

import json
import signal
import time
import uuid

import fsspec
import pytest
from conftest import HUB_ROWS, save_hub_copy, upload
from runs import ROOT, finish, last_json_line, python_module, start_processes, train_flags

from eotd_jax import paths

STEPS = 30
TRAIN = [f"--config.train.steps={STEPS}", "--config.checkpoint.every_steps=10", "--config.log_every_steps=5",
         "--config.checkpoint.asynchronous=true",  # as in production (the tiny runs' default is synchronous)
         f"--config.eval.every_steps={STEPS}", "--config.eval.datasets=gsm8k", "--config.eval.limit=2",
         "--config.eval.max_new_tokens=8", "--config.eval.batch_size=2", "--config.eval.workers=1"]
EVAL = ["--max_new_tokens=16", "--batch_size=2", "--workers=1", "--limit=2", "--strategies=eot,etd"]


def _committed_steps(checkpoints: str) -> list[int]:
    """Steps Orbax has finished writing (on GCS it marks them with commit_success.txt), read afresh."""
    filesystem, directory = fsspec.core.url_to_fs(checkpoints)
    filesystem.invalidate_cache()
    return sorted(int(p.split("/")[-2]) for p in filesystem.glob(f"{directory}/*/commit_success.txt"))


def _scalar_steps(tensorboard: str) -> dict[str, list[int]]:
    import tensorflow as tf

    steps: dict[str, list[int]] = {}
    with paths.local_copy(tensorboard) as local:
        for path in sorted(tf.io.gfile.glob(f"{local}/events.*")):
            for event in tf.compat.v1.train.summary_iterator(path):
                for value in event.summary.value:
                    steps.setdefault(value.tag, []).append(event.step)
    return steps


def _texts(records: list[dict]) -> list[list[str]]:
    """The rationales, less undecodable bytes: the byte-level tokenizer shows them as U+FFFD, the exported
    student's ByT5Tokenizer drops them (the token ids are the same)."""
    return [[o["text"].replace("\ufffd", "") for t in ("cot", "pot", "eot") for o in r["thoughts"][t]]
            for r in records]


@pytest.mark.timeout(900)  # four 2-process runs
def test_build_train_preempt_resume_eval_export_on_gs_with_two_processes(gcs, benchmark_files, tmp_path):
    root = f"{gcs}/{uuid.uuid4().hex}"
    data, workdir, export = f"{root}/data", f"{root}/train", f"{root}/export"
    benchmarks = upload(benchmark_files, f"{root}/benchmarks")
    save_hub_copy("gsm8k", [HUB_ROWS["gsm8k"]] * 2, f"{root}/hub")

    built = python_module("data_gen.build", "--synthetic_count=40", "--thoughts=eot", f"--out={data}",
                          "--num_shards=2", "--progress=false", "--workers=1", timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    manifest = json.loads(paths.path(data, "manifest.json").read_text())
    assert [s["file"] for s in manifest["shards"]] == [p.name for p in sorted(paths.path(data).glob("*.tfrecord-*"))]
    assert paths.path(data, "dataset_info.json").is_file()

    command = [*train_flags(workdir, data, *TRAIN), f"--config.eval.data_dir=hub:{root}/hub"]
    logs = tmp_path / "train"
    processes = start_processes("eotd_jax.train", *command, logs=logs)
    deadline = time.monotonic() + 240
    while all(p.poll() is None for p in processes) and not _committed_steps(f"{workdir}/checkpoints") \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(p.poll() is None for p in processes), "the run ended before it could be stopped"
    processes[1].send_signal(signal.SIGTERM)  # a preempted host: both processes save the same step and exit 0
    finish(processes, logs)
    saved = _committed_steps(f"{workdir}/checkpoints")
    assert saved and saved[-1] < STEPS, saved

    resumed = finish(start_processes("eotd_jax.train", *command, logs=logs), logs)
    assert all(f"resumed from step {saved[-1]}" in output for output in resumed)
    metrics = last_json_line(resumed[0])
    assert metrics["step"] == STEPS and 0.0 <= metrics["eval/gsm8k/etd_accuracy"] <= 1.0
    assert _committed_steps(f"{workdir}/checkpoints")[-1] == STEPS
    config = json.loads(paths.path(workdir, "config.json").read_text())
    assert config["train"]["steps"] == STEPS and config["checkpoint"]["asynchronous"] is True
    scalars = _scalar_steps(f"{workdir}/tensorboard")
    assert STEPS in scalars["loss"] and scalars["eval/gsm8k/etd_accuracy"] == [STEPS]

    logs = tmp_path / "eval"
    evaluated = finish(start_processes("eotd_jax.eval", f"--workdir={workdir}", f"--data_dir={benchmarks}",
                                       "--datasets=gsm8k,asdiv", *EVAL, logs=logs), logs)[0]
    eval_dir = paths.path(workdir, "eval", f"step_{STEPS}")
    results = json.loads((eval_dir / "results.json").read_text())
    assert {name: r["questions"] for name, r in results.items()} == {"gsm8k": 2, "asdiv": 2}
    assert (eval_dir / "results.md").read_text().strip() in evaluated
    assert (eval_dir / "results.png").read_bytes().startswith(b"\x89PNG")
    predictions = [json.loads(line) for line in (eval_dir / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 4

    exported = python_module("eotd_jax.export", f"--workdir={workdir}", f"--out={export}")
    assert exported.returncode == 0, exported.stderr[-3000:]
    import transformers

    with paths.local_copy(export) as local:
        model = transformers.T5ForConditionalGeneration.from_pretrained(local)
        assert model.config.d_model == json.loads(paths.path(export, "config.json").read_text())["d_model"]
        assert transformers.AutoTokenizer.from_pretrained(local).decode([72 + 3]) == "H"
    from_export = python_module("eotd_jax.eval", f"--workdir={export}", f"--data_dir={benchmarks}",
                                "--datasets=gsm8k", *EVAL)
    assert from_export.returncode == 0, from_export.stderr[-3000:]
    exported_predictions = [json.loads(line) for line in
                            paths.path(export, "eval", "predictions.jsonl").read_text().splitlines()]
    assert _texts(exported_predictions) == _texts(predictions[:2])
    assert not (ROOT / "gs:").exists()  # os.path.abspath("gs://...") once made local "gs:" directories
