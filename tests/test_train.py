"""The trainer: one-line config errors before compiling, exact resume after SIGKILL, SIGTERM saves (in two
processes too: both stop at the same step, mid-eval), in-training eval, the compilation cache, --help."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from runs import (
    ROOT,
    cpu_env,
    fake_devices,
    finish,
    last_json_line,
    python_module,
    start_processes,
    train,
    train_command,
    train_flags,
)

from eotd_jax.configs import default, paper


def _params(workdir: Path, step: int):
    """A checkpoint's parameters on this process's first device, whatever devices saved them."""
    import jax
    import orbax.checkpoint as ocp

    path = workdir / "checkpoints" / str(step) / "params"
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    with ocp.StandardCheckpointer() as checkpointer:
        target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                              checkpointer.metadata(path).item_metadata)
        return checkpointer.restore(path, target)


def _scalar_steps(workdir: Path) -> dict[str, list[int]]:
    """Steps logged per scalar tag in the run's TensorBoard events (flushed every logged step)."""
    import tensorflow as tf

    steps: dict[str, list[int]] = {}
    for path in (workdir / "tensorboard").glob("events.*"):
        try:
            for event in tf.compat.v1.train.summary_iterator(str(path)):
                for value in event.summary.value:
                    steps.setdefault(value.tag, []).append(event.step)
        except tf.errors.DataLossError:  # the record being written
            pass
    return steps


def _logged_steps(workdir: Path) -> list[int]:
    return _scalar_steps(workdir).get("loss", [])


def _saved_steps(workdir: Path) -> list[int]:
    directory = workdir / "checkpoints"
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) if directory.is_dir() else []


def test_a_run_killed_between_checkpoints_resumes_to_the_same_loss_and_params(tmp_path, training_data):
    steps = ["--config.train.steps=90", "--config.checkpoint.every_steps=30"]
    full = train(tmp_path / "full", training_data, *steps, "--config.compilation_cache_dir=")
    assert full.returncode == 0, full.stderr[-3000:]
    assert not (tmp_path / "full" / "compilation_cache").exists()  # empty: no cache

    _logged_steps(tmp_path / "full")  # imports TensorFlow now, not while the run goes on
    killed = tmp_path / "killed"
    process = subprocess.Popen(train_command(killed, training_data, *steps), cwd=ROOT, env=cpu_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (_saved_steps(killed) and max(_logged_steps(killed)) >= 35):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL
    saved, logged = _saved_steps(killed), max(_logged_steps(killed))
    assert saved and saved[-1] < logged < 90, (saved, logged)  # killed after training past its last checkpoint

    resumed = train(killed, training_data, *steps)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from step {saved[-1]}" in resumed.stderr
    full_metrics = last_json_line(full.stdout)
    resumed_metrics = last_json_line(resumed.stdout)
    assert full_metrics["step"] == resumed_metrics["step"] == 90
    assert abs(full_metrics["loss"] - resumed_metrics["loss"]) < 1e-6
    for a, b in zip(_leaves(_params(tmp_path / "full", 90)), _leaves(_params(killed, 90)), strict=True):
        np.testing.assert_array_equal(a, b)


def test_in_training_eval_scores_checkpoints_for_keep_best(tmp_path, training_data):
    """Checkpoints at 2, 4 and 6, each scored by the eval; keep=1 and keep_best=1 leave the latest and the best."""
    result = train(tmp_path, training_data, "--config.train.steps=6", "--config.checkpoint.every_steps=2",
                   "--config.eval.every_steps=2", "--config.checkpoint.keep=1", "--config.checkpoint.keep_best=1",
                   "--config.eval.limit=6", "--config.eval.max_new_tokens=16", "--config.eval.workers=1",
                   "--config.eval.thoughts=eot,pot",
                   env={"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"})  # cache every compile, however quick
    assert result.returncode == 0, result.stderr[-3000:]
    cached = {p.name.split("-")[0] for p in (tmp_path / "compilation_cache").iterdir()}  # on by default
    assert {"jit_train_step_on_mesh", "jit_greedy"} <= cached, cached
    logged = {int(m[0]): float(m[1]) for m in re.findall(r"step (\d+): held-out ETD accuracy ([\d.]+)", result.stderr)}
    assert sorted(logged) == [2, 4, 6]
    metrics = last_json_line(result.stdout)
    assert {"eval/synthetic/eot_accuracy", "eval/synthetic/pot_accuracy", "eval/synthetic/etd_accuracy",
            "accuracy"} <= set(metrics)
    saved = _saved_steps(tmp_path)
    best = max(logged.values())
    assert 6 in saved and len(saved) <= 2  # the latest, and the best when it is another step
    assert all(logged[step] == best for step in saved if step != 6) and (len(saved) == 2 or logged[6] == best)
    for step in saved:  # each survivor carries the accuracy its eval logged
        stored = json.loads((tmp_path / "checkpoints" / str(step) / "metrics" / "metrics").read_text())
        assert abs(stored["accuracy"] - logged[step]) < 1e-4
    tags = _scalar_steps(tmp_path)
    assert tags["eval/synthetic/etd_accuracy"] == [2, 4, 6] and "loss" in tags


def test_keep_best_without_eval_at_checkpoints_is_a_config_error(tmp_path, training_data):
    result = train(tmp_path, training_data, "--config.train.steps=2", "--config.checkpoint.keep_best=1")
    assert result.returncode != 0
    assert "config.checkpoint.keep_best needs eval accuracy" in result.stderr.strip().splitlines()[-1]


def _leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(tree)]


@pytest.mark.parametrize(("overrides", "message"), [
    (["--config.model=t5-huge"], "config.model: unknown model 't5-huge'"),
    (["--config.mesh.shape=(3,1,1)"],
     "config.mesh.shape: mesh.shape {'data': 3, 'fsdp': 1, 'tensor': 1} needs 3 devices, there are 2"),
    (["--config.train.batch_size=3"], "is not divisible by the 2 data-parallel devices"),
    (["--config.train.grad_accum_steps=3"], "config.train.grad_accum_steps 3 does not divide config.train.steps 2"),
])
def test_bad_configs_fail_with_one_line_before_compiling(tmp_path, training_data, overrides, message):
    env = fake_devices(2)
    result = train(tmp_path, training_data, "--config.train.steps=2", *overrides, env=env)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert message in result.stderr.strip().splitlines()[-1]


def test_a_missing_training_data_is_named(tmp_path):
    result = train(tmp_path, tmp_path / "nowhere", "--config.train.steps=2")
    assert result.returncode != 0
    assert "nowhere does not exist" in result.stderr.strip().splitlines()[-1]


def _start_two_processes(workdir: Path, data_dir: Path, *overrides: str) -> list[subprocess.Popen]:
    """A run of 2 processes x 2 CPU devices (`runs.start_processes`), logging to <workdir>.<index>.log beside it."""
    return start_processes("eotd_jax.train", *train_flags(workdir, data_dir, "--config.mesh.shape=(2,2,1)", *overrides),
                           logs=workdir)


def _in_training_eval(every_steps: int, questions: int) -> list[str]:
    return [f"--config.eval.every_steps={every_steps}", f"--config.eval.limit={questions}",
            "--config.eval.max_new_tokens=32", "--config.eval.batch_size=2", "--config.eval.workers=1",
            "--config.eval.thoughts=eot"]


def test_two_processes_train_to_the_same_losses_as_one(tmp_path, training_data):
    """2 processes x 2 CPU devices vs 1 process x 4 devices, both with the in-training eval on."""
    steps = ["--config.train.steps=3", "--config.checkpoint.every_steps=100", *_in_training_eval(3, 4)]
    single = train(tmp_path / "one", training_data, "--config.mesh.shape=(2,2,1)", *steps,
                   env=fake_devices(4))
    assert single.returncode == 0, single.stderr[-3000:]
    outputs = finish(_start_two_processes(tmp_path / "two", training_data, *steps), tmp_path / "two")
    one = last_json_line(single.stdout)
    two = last_json_line(outputs[0])
    assert two["step"] == one["step"] == 3
    assert abs(two["loss"] - one["loss"]) < 1e-5 and abs(two["grad_norm"] - one["grad_norm"]) < 1e-4
    assert two["eval/synthetic/etd_accuracy"] == one["eval/synthetic/etd_accuracy"]
    assert all("step 3: held-out ETD accuracy" in output for output in outputs)


@pytest.mark.timeout(900)  # three 2-process runs; about a minute each on a loaded 2-core machine
def test_sigterm_to_one_of_two_processes_mid_eval_stops_both_at_one_step_and_resumes_bit_identically(
        tmp_path, training_data):
    """The preemption sync point: SIGTERM to process 1 during step 2's eval; both save step 2 and exit 0."""
    steps = ["--config.train.steps=4", "--config.checkpoint.every_steps=2", *_in_training_eval(2, 24),
             f"--config.compilation_cache_dir={tmp_path / 'cache'}"]  # off: each process compiles on each start
    finish(_start_two_processes(tmp_path / "full", training_data, *steps), tmp_path / "full")

    preempted = tmp_path / "preempted"
    processes = _start_two_processes(preempted, training_data, *steps)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and 2 not in _logged_steps(preempted):  # step 2 trained; its eval begins
        time.sleep(0.05)
    processes[1].send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    outputs = finish(processes, preempted, timeout=120)
    assert time.monotonic() - signalled < 60
    for output in outputs:
        assert "SIGTERM: saving step 2 before exiting" in output
        assert "step 2: held-out ETD accuracy" not in output  # the eval stopped part-way
    assert _saved_steps(preempted) == [2]
    assert not (preempted / "checkpoints" / "2" / "metrics").exists()  # no accuracy for an unfinished eval

    resumed = finish(_start_two_processes(preempted, training_data, *steps), preempted)
    assert all("resumed from step 2" in output and "compilation cache is off" in output for output in resumed)
    assert last_json_line(resumed[0])["step"] == 4
    for a, b in zip(_leaves(_params(tmp_path / "full", 4)), _leaves(_params(preempted, 4)), strict=True):
        np.testing.assert_array_equal(a, b)


def test_sigterm_saves_a_checkpoint_before_exiting(tmp_path, training_data):
    command = train_command(tmp_path, training_data, "--config.train.steps=100000",
                            "--config.checkpoint.every_steps=100000")
    process = subprocess.Popen(command, cwd=ROOT, env=cpu_env(),
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


def test_help_exits_0_and_lists_every_config_field_with_its_meaning():
    result = python_module("eotd_jax.train", "--help")
    assert result.returncode == 0, result.stderr[-3000:]
    for name, _, meaning in default.FIELDS:
        assert f"  {name} (" in result.stdout and meaning[:40] in result.stdout, name
    assert "--workdir" in result.stdout


@pytest.mark.parametrize("chips", [4, 8, 16, 32])
def test_the_paper_config_trains_one_global_batch_split_evenly_on_4_to_32_chips(chips):
    """The same optimisation on any slice: the paper config's global batch of 64 packed rows, split by the input
    pipeline over the TPU hosts (4 chips each) and by the batch sharding over their chips, is whole everywhere and
    is the batch one process would train on."""
    from jax.sharding import AbstractMesh

    from eotd_jax.input.packing import PackedBatches, TokenizedExample
    from eotd_jax.model.sharding import MESH_AXES, batch_sharding
    from eotd_jax.trainer import global_batch_size

    config = paper.get_config()
    shape = tuple(chips if size == -1 else size for size in config.mesh.shape)  # FSDP over every chip
    mesh = AbstractMesh(shape, MESH_AXES)
    batch = global_batch_size(config, mesh)
    assert batch == 64
    rows_per_chip = batch_sharding(mesh).shard_shape((batch, config.data.target_length))[0]
    hosts = chips // 4
    half = config.data.source_length // 2 + 1  # one example a row: every row is its own example
    examples = [TokenizedExample(np.full(half, i, np.int32), np.full(half, i, np.int32)) for i in range(2 * batch)]
    one = PackedBatches(examples, batch, config.data.source_length, config.data.target_length, 0).batch(0, 1)
    per_host = [PackedBatches(examples, batch, config.data.source_length, config.data.target_length, 0, host,
                              hosts).batch(0, 1) for host in range(hosts)]
    assert all(len(rows["inputs"]) == 4 * rows_per_chip for rows in per_host)  # each host feeds its 4 chips
    for name in one:
        np.testing.assert_array_equal(np.concatenate([rows[name] for rows in per_host]), one[name])
    assert len({int(row[0]) for rows in per_host for row in rows["inputs"]}) == batch  # no row twice


def test_sigterm_during_the_in_training_eval_stops_it_within_a_batch(tmp_path, training_data):
    """200 held-out questions take minutes to decode here; SIGTERM during them saves the step in seconds."""
    command = train_command(tmp_path, training_data, "--config.train.steps=4", "--config.checkpoint.every_steps=4",
                            *_in_training_eval(2, 200))
    process = subprocess.Popen(command, cwd=ROOT, env=cpu_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and 2 not in _logged_steps(tmp_path):  # step 2 trained; its eval begins
        time.sleep(0.05)
    time.sleep(1)
    process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    assert time.monotonic() - signalled < 30
    assert "SIGTERM: saving step 2 before exiting" in stderr and "held-out ETD accuracy" not in stderr
    assert _saved_steps(tmp_path) == [2]
