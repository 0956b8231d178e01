"""`python -m data_gen.build`: shards readable by TFDS and tf.data, a manifest, and one-line errors that leave
what was there as it was."""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes.openai_server import FakeChatServer

from data_gen.teachers.gold import gold_rationales
from data_gen.teachers.journal import Journal
from eotd_jax.benchmarks.synthetic import synthetic_problems

ROOT = Path(__file__).resolve().parents[1]


def _run(*flags: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "data_gen.build", "--progress=false", *flags], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


@pytest.fixture(scope="module")
def synthetic_shards(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synthetic")
    result = _run("--dataset=synthetic", "--synthetic_count=70", f"--out={out}", "--num_shards=3", "--workers=2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| eot | 70 | 70 (100.0%) |" in result.stdout
    return out


def _as_text(features: dict) -> dict:
    return {k: (v.decode() if isinstance(v, bytes) else int(v)) for k, v in features.items()}


def test_shards_read_back_the_same_with_tfds_and_plain_tf_data(synthetic_shards):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    builder = tfds.builder_from_directory(str(synthetic_shards))
    via_tfds = [_as_text({k: v.numpy() for k, v in x.items()}) for x in builder.as_dataset(split="train")]
    files = sorted(glob.glob(str(synthetic_shards / "eotd-train.tfrecord-*-of-00003")))
    via_tf_data = []
    for record in tf.data.TFRecordDataset(files):
        example = tf.train.Example.FromString(record.numpy())
        via_tf_data.append(_as_text({k: (f.bytes_list.value or f.int64_list.value)[0]
                                     for k, f in example.features.feature.items()}))
    key = lambda r: (r["id"], r["thought"])  # noqa: E731
    assert len(via_tfds) == 210 and sorted(via_tfds, key=key) == sorted(via_tf_data, key=key)
    assert {r["thought"] for r in via_tfds} == {"cot", "pot", "eot"}
    assert set(via_tfds[0]) == {"id", "source", "question", "thought", "rationale", "answer", "teacher",
                                "sample_index", "verified_form"}
    from eotd_jax.input.records import read_records

    assert sorted(read_records(str(synthetic_shards)), key=key) == sorted(via_tfds, key=key)


def test_manifest_counts_and_shard_hashes(synthetic_shards):
    import hashlib

    manifest = json.loads((synthetic_shards / "manifest.json").read_text())
    assert manifest["teacher"] == "gold" and manifest["problems"] == 70
    assert manifest["prompt_style"] == "paper"
    assert manifest["counts"]["pot"] == {"candidates": 70, "kept": 70, "rejected": {}}
    assert sum(s["records"] for s in manifest["shards"]) == 210
    for shard in manifest["shards"]:
        assert hashlib.sha256((synthetic_shards / shard["file"]).read_bytes()).hexdigest() == shard["sha256"]


def test_jsonl_format_and_seeded_shuffle(tmp_path):
    runs = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        result = _run("--dataset=synthetic", "--synthetic_count=20", "--format=jsonl", f"--seed={seed}",
                      f"--out={tmp_path / name}", "--num_shards=1", "--thoughts=eot", "--workers=1")
        assert result.returncode == 0, result.stderr[-2000:]
        runs.append((tmp_path / name / "eotd-train.jsonl-00000-of-00001").read_text())
    assert runs[0] == runs[1] and runs[0] != runs[2]
    assert {json.loads(line)["thought"] for line in runs[0].splitlines()} == {"eot"}


@pytest.mark.parametrize(("flags", "message"), [
    (["--thoughts=cot,essay"], "--thoughts: unknown thought essay"),
    (["--dataset=mathqa"], "--dataset: unknown dataset 'mathqa'; known: synthetic, gsm8k"),
    (["--dataset=gsm8k", "--data_dir=/nonexistent"], "gsm8k/train: no file at /nonexistent/gsm8k/train.jsonl"),
    (["--num_shards=0"], "flag --num_shards=0: 0 is not a positive integer"),
    (["--synthetic_count=-5"], "flag --synthetic_count=-5: -5 is not a positive integer"),
    (["--limit=-3"], "flag --limit=-3: -3 is not a non-negative integer"),
    (["--samples=0"], "flag --samples=0: 0 is not a positive integer"),
    (["--max_per_thought=-1"], "flag --max_per_thought=-1: -1 is not a non-negative integer"),
    (["--workers=0"], "flag --workers=0: 0 is not a positive integer"),
    (["--rpm=-60"], "flag --rpm=-60: -60.0 is not a non-negative number"),
    (["--top_p=2"], "flag --top_p=2: 2.0 is not a number in the range [0.0, 1.0]"),
    (["--batch_max_requests=60000"], "flag --batch_max_requests=60000: 60000 is not an integer in the range"),
    (["--limti=3"], "Unknown command line flag 'limti'. Did you mean: limit ?"),
    (["stray"], "unexpected arguments stray"),
])
def test_bad_input_is_one_line_and_a_nonzero_exit(tmp_path, flags, message):
    result = _run(*flags, f"--out={tmp_path / 'out'}")
    assert result.returncode != 0
    assert _one_line(result).startswith(f"error: {message}")
    assert not (tmp_path / "out").exists()


def _one_line(result: subprocess.CompletedProcess) -> str:
    """The run's only line on stderr but absl's log lines ("I1207 02:05:18.541674 ...")."""
    lines = [line for line in result.stderr.strip().splitlines() if not re.match(r"[IWEF]\d{4} \d\d:", line)]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def _contents(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_a_dataset_of_another_name_is_never_written_beside_one(tmp_path):
    out = tmp_path / "out"
    flags = ["--synthetic_count=5", "--thoughts=eot", "--format=jsonl", "--num_shards=1", "--workers=1", f"--out={out}"]
    assert _run(*flags).returncode == 0
    before = _contents(out)
    result = _run(*flags, "--name=other")
    assert result.returncode != 0
    assert _one_line(result) == (f"error: --out={out} holds the dataset 'eotd'; writing 'other' beside it would mix "
                                 "the two (give another --out, or --name=eotd to rebuild that one)")
    assert _contents(out) == before
    assert _run(*flags).returncode == 0  # the same name rebuilds it


def _api_build(url: str, out: Path, *flags: str, **popen) -> list[str]:
    return [sys.executable, "-m", "data_gen.build", "--teacher=openai", f"--base_url={url}", "--model=fake-teacher",
            "--progress=false", "--workers=1", f"--out={out}", *flags]


_API_ENV = {**os.environ, "OPENAI_API_KEY": "test-key", "PYTHONPATH": str(ROOT)}


def test_a_run_in_which_no_request_was_answered_fails_with_one_line_and_writes_nothing(tmp_path):
    problems = synthetic_problems(3)
    with FakeChatServer({}, faults={p.question: ["500"] * 10 for p in problems}) as server:
        result = subprocess.run(_api_build(server.url, tmp_path, "--synthetic_count=3", "--max_retries=1",
                                           "--backoff=0.01"), cwd=ROOT, env=_API_ENV, capture_output=True, text=True,
                                timeout=300)
    assert result.returncode != 0
    assert _one_line(result).startswith("error: no answer to any of the 9 requests (last error: http_500) (check that "
                                        f"{server.url} is up and serves --model=fake-teacher")
    assert not (tmp_path / "manifest.json").exists() and not list(tmp_path.glob("eotd-train.*"))


def test_a_run_that_verified_nothing_writes_nothing_and_says_why(tmp_path):
    with FakeChatServer({}) as server:  # every answer empty
        result = subprocess.run(_api_build(server.url, tmp_path, "--synthetic_count=2", "--thoughts=pot"), cwd=ROOT,
                                env=_API_ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "| pot | 2 | 0 (0.0%) | 2 |" in result.stdout
    assert _one_line(result) == ("error: no rationale was verified, so nothing was written (the yield table above "
                                 "counts each reason for rejecting one)")
    assert not (tmp_path / "manifest.json").exists() and not list(tmp_path.glob("eotd-train.*"))


def test_an_unreachable_server_stops_the_run_within_a_minute_at_the_defaults(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    start = time.monotonic()
    result = subprocess.run(_api_build(url, tmp_path, "--synthetic_count=200"), cwd=ROOT, env=_API_ENV,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and time.monotonic() - start < 60
    assert _one_line(result).startswith(f"error: {url} unreachable: no reply for 30 s (APIConnectionError) (start "
                                        "the server or fix --base_url;")
    assert not (tmp_path / "manifest.json").exists() and not list(tmp_path.glob("eotd-train.*"))


def test_ctrl_c_is_one_line_and_the_answers_so_far_are_kept(tmp_path):
    problems = synthetic_problems(40)
    # The server holds every request after the fourth, so the signal lands while the build is still asking.
    with FakeChatServer({p.question: gold_rationales(p) for p in problems}, hold_after=4) as server:
        build = subprocess.Popen(_api_build(server.url, tmp_path, "--synthetic_count=40", "--concurrency=2"), cwd=ROOT,
                                 env=_API_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        journal = tmp_path / "journal.jsonl"
        deadline = time.monotonic() + 120
        while not (journal.exists() and journal.read_bytes().count(b"\n") >= 4):
            assert time.monotonic() < deadline and build.poll() is None, "the build never got an answer"
            time.sleep(0.05)
        build.send_signal(signal.SIGINT)
        _, stderr = build.communicate(timeout=60)
    assert build.returncode == 130
    assert stderr.strip() == ("error: interrupted (the API teacher's journal keeps every answer received: re-run the "
                              "same command to resume)")
    assert len(Journal(str(journal)).entries) == 4


def test_a_malformed_dataset_line_is_named(tmp_path):
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "train.jsonl").write_text('{"question": "q", "answer": "#### 1"}\n{"question": \n')
    result = _run("--dataset=gsm8k", f"--data_dir={tmp_path}", f"--out={tmp_path / 'out'}")
    assert result.returncode != 0
    assert "train.jsonl: line 2" in result.stderr.strip().splitlines()[-1]


def test_a_bad_api_key_exits_nonzero_with_one_line(tmp_path):
    with FakeChatServer({}) as server:
        result = _run("--teacher=openai", f"--base_url={server.url}", "--synthetic_count=3", f"--out={tmp_path}",
                      env={"OPENAI_API_KEY": "wrong"})
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: ") and "HTTP 401" in result.stderr
