"""`python -m data_gen.build`: shards readable by TFDS and tf.data, a manifest, and one-line errors."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    (["--num_shards=0"], "--num_shards must be at least 1"),
])
def test_bad_input_is_one_line_and_a_nonzero_exit(tmp_path, flags, message):
    result = _run(*flags, f"--out={tmp_path}")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {message}")


def test_a_malformed_dataset_line_is_named(tmp_path):
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "train.jsonl").write_text('{"question": "q", "answer": "#### 1"}\n{"question": \n')
    result = _run("--dataset=gsm8k", f"--data_dir={tmp_path}", f"--out={tmp_path / 'out'}")
    assert result.returncode != 0
    assert "train.jsonl: line 2" in result.stderr.strip().splitlines()[-1]


def test_a_bad_api_key_exits_nonzero_with_one_line(tmp_path):
    from data_gen.teachers.fake_server import FakeChatServer

    with FakeChatServer({}) as server:
        result = _run("--teacher=openai", f"--base_url={server.url}", "--synthetic_count=3", f"--out={tmp_path}",
                      env={"OPENAI_API_KEY": "wrong"})
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: ") and "HTTP 401" in result.stderr
