"""The trainer: one-line config errors before compiling, and exact resume from a checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--config.model=t5-tiny", "--config.train.batch_size=4", "--config.data.source_length=256",
        "--config.data.target_length=96", "--config.log_every_steps=1", "--config.progress=false",
        "--config.checkpoint.asynchronous=false"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data")
    result = subprocess.run([sys.executable, "-m", "data_gen.build", "--synthetic_count=40", "--thoughts=eot",
                             f"--out={out}", "--format=jsonl", "--num_shards=1", "--progress=false", "--workers=1"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return out


def _train(workdir: Path, data_dir: Path, *overrides: str, env: dict | None = None):
    command = [sys.executable, "-m", "eotd_jax.train", "--config=configs/quickstart.py", f"--workdir={workdir}",
               f"--config.data.dir={data_dir}", *TINY, *overrides]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})})


def _params(workdir: Path, step: int):
    import orbax.checkpoint as ocp

    with ocp.StandardCheckpointer() as checkpointer:
        state = checkpointer.restore(workdir / "checkpoints" / str(step) / "state")
    return state["params"]


def test_a_restarted_run_reaches_the_same_loss_and_params(tmp_path, data_dir):
    full = _train(tmp_path / "full", data_dir, "--config.train.steps=6", "--config.checkpoint.every_steps=3")
    assert full.returncode == 0, full.stderr[-3000:]
    first = _train(tmp_path / "split", data_dir, "--config.train.steps=3", "--config.checkpoint.every_steps=3")
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = _train(tmp_path / "split", data_dir, "--config.train.steps=6", "--config.checkpoint.every_steps=3")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from step 3" in resumed.stderr
    full_metrics = json.loads(full.stdout.strip().splitlines()[-1])
    resumed_metrics = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert full_metrics["step"] == resumed_metrics["step"] == 6
    assert abs(full_metrics["loss"] - resumed_metrics["loss"]) < 1e-6
    for a, b in zip(_leaves(_params(tmp_path / "full", 6)), _leaves(_params(tmp_path / "split", 6)), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (tmp_path / "full" / "tensorboard").is_dir() and any((tmp_path / "full" / "tensorboard").iterdir())


def _leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(tree)]


@pytest.mark.parametrize(("overrides", "message"), [
    (["--config.model=t5-huge"], "config.model: unknown model 't5-huge'"),
    (["--config.mesh.shape=(3,1,1)"], "config.mesh.shape: mesh shape"),
    (["--config.train.batch_size=3"], "is not divisible by the 2 data-parallel devices"),
])
def test_bad_configs_fail_with_one_line_before_compiling(tmp_path, data_dir, overrides, message):
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    result = _train(tmp_path, data_dir, "--config.train.steps=2", *overrides, env=env)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert message in result.stderr.strip().splitlines()[-1]


def test_a_missing_data_dir_is_named(tmp_path):
    result = _train(tmp_path, tmp_path / "nowhere", "--config.train.steps=2")
    assert result.returncode != 0
    assert "nowhere does not exist" in result.stderr.strip().splitlines()[-1]


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_processes_train_to_the_same_losses_as_one(tmp_path, data_dir):
    """2 processes x 2 CPU devices (jax.distributed on 127.0.0.1) vs 1 process x 4 devices."""
    steps = ["--config.train.steps=3", "--config.checkpoint.every_steps=100", "--config.mesh.shape=(2,2,1)"]
    single = _train(tmp_path / "one", data_dir, *steps, env={"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
    assert single.returncode == 0, single.stderr[-3000:]
    port = _free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    processes = []
    for index in range(2):
        command = [sys.executable, "-m", "eotd_jax.train", "--config=configs/quickstart.py",
                   f"--workdir={tmp_path / 'two'}", f"--config.data.dir={data_dir}", *TINY, *steps,
                   f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={index}"]
        processes.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True))
    outputs = [p.communicate(timeout=600) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs[0][1][-3000:] + outputs[1][1][-3000:]
    one = json.loads(single.stdout.strip().splitlines()[-1])
    two = json.loads(outputs[0][0].strip().splitlines()[-1])
    assert two["step"] == one["step"] == 3
    assert abs(two["loss"] - one["loss"]) < 1e-5 and abs(two["grad_norm"] - one["grad_norm"]) < 1e-4


def test_sigterm_saves_a_checkpoint_before_exiting(tmp_path, data_dir):
    import signal
    import time

    sources = [f"--config.data.dir={data_dir}"]
    command = [sys.executable, "-m", "eotd_jax.train", "--config=configs/quickstart.py", f"--workdir={tmp_path}",
               *sources, *TINY, "--config.train.steps=100000", "--config.checkpoint.every_steps=100000"]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "JAX_PLATFORMS": "cpu"},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    events = tmp_path / "tensorboard"
    while time.monotonic() < deadline and not (events.is_dir() and any(events.iterdir())):
        time.sleep(0.2)
    time.sleep(2)  # a few steps in
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    assert "SIGTERM: saving step" in stderr
    saved = [int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()]
    assert len(saved) == 1 and 0 < saved[0] < 100000
