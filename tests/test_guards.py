"""A mistake costs one clear line, never a run: each guard of the binaries, as a user meets it, with the exit
status, the one line, and what is left on disk (nothing lost, nothing overwritten)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from runs import ROOT, cpu_env, python_module, train, train_command, train_flags

from eotd_jax import cli, paths, run_lock
from eotd_jax.input.records import read_records

TWO_CHECKPOINTS = ["--config.train.steps=4", "--config.checkpoint.every_steps=2"]


def _one_error_line(result, status: int | None = None) -> str:
    """The failing command's one `error:` line: the last on stderr, and no traceback or other error."""
    assert result.returncode != 0 if status is None else result.returncode == status, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert lines and lines[-1].startswith("error: "), result.stderr[-3000:]
    assert not [line for line in lines if line.startswith("E0000") or line.startswith("FATAL")]
    return lines[-1]


def _steps(workdir: Path) -> list[str]:
    directory = workdir / "checkpoints"
    return sorted((p.name for p in directory.iterdir()), key=lambda n: (len(n), n)) if directory.is_dir() else []


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.fixture(scope="module")
def trained(tmp_path_factory, training_data) -> tuple[Path, subprocess.CompletedProcess]:
    """A run of 4 steps with checkpoints at 2 and 4, started over a stale lock (its process is gone)."""
    workdir = tmp_path_factory.mktemp("trained")
    stale = run_lock.Holder(socket.gethostname(), _dead_pid(), "gone", time.time())
    (workdir / run_lock.LOCK_NAME).write_text(json.dumps(dataclasses.asdict(stale)))
    result = train(workdir, training_data, *TWO_CHECKPOINTS)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, result


def _copy(trained_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained_dir, copy)
    return copy


# The harmful cases.

def test_an_etd_config_on_an_eot_only_data_dir_names_the_missing_thoughts(tmp_path, training_data):
    line = _one_error_line(train(tmp_path, training_data, "--config.data.thoughts=cot,pot,eot"), 1)
    assert f"the config asks for cot,pot,eot rationales, but {training_data} holds eot" in line
    assert "no cot, pot to train on" in line and "--config.data.thoughts=eot" in line
    assert _steps(tmp_path) == []
    line = _one_error_line(train(tmp_path, training_data, "--config.data.thoughts=cot"), 1)
    assert "holds eot" in line and "no cot to train on" in line


def test_shards_without_a_manifest_are_checked_for_the_asked_thoughts_when_read(tmp_path, training_data):
    (tmp_path / "data").mkdir()
    for shard in training_data.glob("*-train.*"):
        shutil.copy(shard, tmp_path / "data")
    line = _one_error_line(train(tmp_path / "run", tmp_path / "data", "--config.data.thoughts=cot,eot"))
    assert f"data dir {tmp_path / 'data'} holds no cot rationales" in line


def test_a_second_trainer_on_a_workdir_refuses_naming_the_first(tmp_path, training_data):
    with run_lock.hold(str(tmp_path)):  # this test process is the first trainer
        held = (tmp_path / run_lock.LOCK_NAME).read_text()
        line = _one_error_line(train(tmp_path, training_data, *TWO_CHECKPOINTS), 1)
        assert (tmp_path / run_lock.LOCK_NAME).read_text() == held
    assert f"{tmp_path} is in use by the trainer with pid {os.getpid()} on host {socket.gethostname()}" in line
    assert _steps(tmp_path) == [] and not (tmp_path / run_lock.LOCK_NAME).exists()

    other = run_lock.Holder("another-host", 4242, "", time.time())
    (tmp_path / run_lock.LOCK_NAME).write_text(json.dumps(dataclasses.asdict(other)))
    line = _one_error_line(train(tmp_path, training_data, *TWO_CHECKPOINTS), 1)
    assert "in use by the trainer with pid 4242 on host another-host" in line and _steps(tmp_path) == []


def test_a_stale_lock_is_taken_over_and_released_at_the_end(trained):
    workdir, result = trained
    assert "taking over the stale lock of pid" in result.stderr
    assert not (workdir / run_lock.LOCK_NAME).exists()


def test_the_lock_holds_a_gs_workdir_too(gcs):
    workdir = f"{gcs}/locked-run"
    with run_lock.hold(workdir):
        with pytest.raises(run_lock.RunLocked, match=f"in use by the trainer with pid {os.getpid()}"):
            with run_lock.hold(workdir):
                pass
        assert paths.path(workdir, run_lock.LOCK_NAME).exists()
    assert not paths.path(workdir, run_lock.LOCK_NAME).exists()


def test_a_lock_is_stale_when_its_process_is_gone_or_it_was_not_renewed():
    me = run_lock.Holder.me()
    assert not me.is_stale()
    assert dataclasses.replace(me, pid=_dead_pid()).is_stale()
    assert dataclasses.replace(me, process="another boot:1").is_stale()  # the pid now names another process
    assert not dataclasses.replace(me, host="another-host", pid=1).is_stale()
    assert dataclasses.replace(me, host="another-host", renewed=time.time() - run_lock.STALE_SECONDS - 1).is_stale()


def test_a_learning_rate_typo_stops_before_saving_nan_and_names_the_last_good_checkpoint(tmp_path, training_data):
    result = train(tmp_path, training_data, "--config.train.steps=6", "--config.checkpoint.every_steps=1",
                   "--config.train.warmup_steps=2", "--config.train.learning_rate=3e3")
    line = _one_error_line(result, 1)
    assert "is nan at step 3, so training stopped without saving it" in line
    assert "the last good checkpoint is step 2" in line and "config.train.learning_rate, now 3000" in line
    assert _steps(tmp_path) == ["1", "2"] and result.stdout == ""
    for leaf in _params(tmp_path, 2):
        assert np.isfinite(leaf).all()


def test_keeping_no_checkpoint_and_other_out_of_range_fields_are_refused_together(tmp_path, training_data):
    result = train(tmp_path, training_data, "--config.checkpoint.keep=0", "--config.train.batch_size=0",
                   "--config.checkpoint.every_steps=0", "--config.train.steps=0", "--config.data.source_length=-5",
                   "--config.eval.every_steps=-1")
    _one_error_line(result, 1)
    lines = result.stderr.strip().splitlines()
    for expected in ("config.checkpoint.keep is 0; it must be at least 1: the latest checkpoint is always kept",
                     "config.train.batch_size is 0; it must be at least 1",
                     "config.checkpoint.every_steps is 0; it must be at least 1",
                     "config.train.steps is 0; it must be at least 1",
                     "config.data.source_length is -5; it must be at least 2",
                     "config.eval.every_steps is -1; it must be at least 0"):
        assert [line for line in lines if line.startswith(f"error: {expected}")], expected
    assert not (tmp_path / "checkpoints").exists()


def test_every_shipped_config_passes_the_validation():
    from eotd_jax import validation
    from eotd_jax.configs import default, paper, quickstart

    validation.check_fields(default.get_config())
    for method in default.METHODS:
        validation.check_fields(quickstart.get_config(method))
    for model in paper.MODELS:
        for method in default.METHODS:
            validation.check_fields(paper.get_config(f"{model},{method}"))


def test_train_tokenizer_refuses_an_out_that_is_a_file(tmp_path, training_data):
    (tmp_path / "tok").write_text("mine")
    line = _one_error_line(python_module("eotd_jax.train_tokenizer", f"--data={training_data}",
                                         f"--out={tmp_path / 'tok'}"))
    assert f"--out {tmp_path / 'tok'} is a file" in line
    assert (tmp_path / "tok").read_text() == "mine"


def test_the_final_metrics_line_is_strict_json(trained):
    _, result = trained
    metrics = json.loads(result.stdout.strip().splitlines()[-1], parse_constant=pytest.fail)
    assert metrics["step"] == 4
    assert json.loads(cli.json_line({"loss": math.nan, "mfu": [math.inf, 0.5], "step": 3}),
                      parse_constant=pytest.fail) == {"loss": None, "mfu": [None, 0.5], "step": 3}


# The confusing ones, by theme.

@pytest.mark.parametrize(("module", "flags", "expected"), [
    ("eotd_jax.train", ["--config=configs/nowhere.py", "--workdir=W"], "config file not found: 'configs/nowhere.py'"),
    ("eotd_jax.train", ["--config=default", "--workdir=W", "--config.train.stpes=3"],
     "no config field 'stpes' (Did you mean \"steps\" instead of \"stpes\"?"),
    ("eotd_jax.train", ["--config=default", "--workdir=W", "--config.train.steps=many"],
     "flag --config.train.steps=many: invalid literal for int()"),
    ("eotd_jax.eval", ["--workdir=W", "--limit=abc"], "flag --limit=abc: invalid literal for int()"),
    ("eotd_jax.export", ["--workdir=W", "--out=O", "--stpe=best"], "Unknown command line flag 'stpe'"),
    ("eotd_jax.aot", ["--config=configs/nowhere.py", "--topology=v4-8"], "config file not found"),
    ("eotd_jax.train_tokenizer", ["--data=D", "--out=O", "--vocab_size=big"], "flag --vocab_size=big"),
])
def test_command_line_mistakes_are_one_line_in_every_binary(tmp_path, module, flags, expected):
    flags = [flag.replace("=W", f"={tmp_path / 'w'}") for flag in flags]
    line = _one_error_line(python_module(module, *flags), cli.USAGE_ERROR)
    assert expected in line
    assert not (tmp_path / "w").exists()


def test_a_damaged_shard_is_named_with_the_digest_its_manifest_gives_it(tmp_path, training_data):
    data = tmp_path / "data"
    shutil.copytree(training_data, data)
    manifest = json.loads((data / "manifest.json").read_text())
    shard = data / manifest["shards"][0]["file"]
    shard.write_bytes(shard.read_bytes()[:-100])  # truncated
    line = _one_error_line(train(tmp_path / "run", data, *TWO_CHECKPOINTS))
    assert f"shard {shard} is damaged" in line and f"the manifest says {manifest['shards'][0]['sha256']}" in line
    assert _steps(tmp_path / "run") == []

    (data / "manifest.json").unlink()  # no digest to check: the read itself names the shard
    with pytest.raises(ValueError, match=f"shard {shard} is corrupt or truncated"):
        read_records(str(data))


def test_only_the_shards_the_manifest_lists_are_read(tmp_path, training_data):
    data = tmp_path / "data"
    shutil.copytree(training_data, data)
    listed = read_records(str(data))
    shutil.copy(next(data.glob("*-train.jsonl-*")), data / "other-train.jsonl-00000-of-00001")  # another run's
    assert read_records(str(data)) == listed


def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(trained, tmp_path, training_data):
    workdir = _copy(trained[0], tmp_path)
    for file in (workdir / "checkpoints" / "4" / "params").rglob("d/*"):
        file.write_bytes(file.read_bytes()[:5])
    result = train(workdir, training_data, "--config.train.steps=6", "--config.checkpoint.every_steps=2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "checkpoint step 4 is damaged" in result.stderr and "resumed from step 2" in result.stderr
    assert f"moved it to {workdir / 'checkpoints' / '4.damaged'}" in result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["step"] == 6
    assert _steps(workdir) == ["4", "6", "4.damaged"]  # the damaged step is kept aside, not deleted


def test_resuming_with_another_model_size_is_one_line(trained, tmp_path, training_data):
    workdir = _copy(trained[0], tmp_path)
    line = _one_error_line(train(workdir, training_data, *TWO_CHECKPOINTS, "--config.model=t5-quickstart"), 1)
    assert f"{workdir} was started with another model (d_model 64 -> 128" in line  # the run's model.json
    assert "strict=False" not in line
    assert _steps(workdir) == ["2", "4"]


def test_ctrl_c_saves_the_step_and_exits_like_sigterm(tmp_path, training_data):
    process = subprocess.Popen(train_command(tmp_path, training_data, "--config.train.steps=100000",
                                             "--config.checkpoint.every_steps=100000"),
                               cwd=ROOT, env=cpu_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    events = tmp_path / "tensorboard"
    while time.monotonic() < deadline and not (events.is_dir() and any(events.iterdir())):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    assert "Ctrl-C: stopping after this step and saving it" in stderr and "Traceback" not in stderr
    saved = _steps(tmp_path)
    assert len(saved) == 1 and f"SIGTERM: saving step {saved[0]} before exiting" in stderr


def _unshare_works() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-rm", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs unprivileged user and mount namespaces (unshare -rm) to "
                                                 "give the run a small file system")
def test_a_full_disk_stops_the_run_with_one_line_and_keeps_the_checkpoint_before(tmp_path, training_data):
    """The workdir on a 3 MB tmpfs: step 2 fits, the background save of step 4 fails."""
    disk = tmp_path / "disk"
    disk.mkdir()
    flags = train_flags(disk / "run", training_data, "--config.train.steps=8", "--config.checkpoint.every_steps=2",
                        "--config.checkpoint.asynchronous=true", "--config.compilation_cache_dir=")
    script = ('mount -t tmpfs -o size=3m tmpfs "$1" && shift && "$@"; status=$?; '
              f'ls {disk / "run" / "checkpoints"}; exit $status')
    result = subprocess.run(["unshare", "-rm", "bash", "-c", script, "-", str(disk), sys.executable, "-m",
                             "eotd_jax.train", *flags], cwd=ROOT, env=cpu_env(), capture_output=True, text=True,
                            timeout=600)
    line = _one_error_line(result, 1)
    # Beside the run's own log lines (absl's `W1207 12:00:00 ...`: the step log), that line alone: no traceback.
    assert [text for text in result.stderr.strip().splitlines() if not re.match(r"[IWE]\d{4} ", text)] == [line]
    assert f"saving a checkpoint to {disk / 'run' / 'checkpoints'} failed: no space left" in line
    assert "the run resumes from step 2" in line
    assert [name for name in result.stdout.split() if name.isdigit()] == ["2"]  # the steps left on its disk


def test_step_best_without_an_in_training_eval_says_it_takes_the_latest(trained, tmp_path):
    result = python_module("eotd_jax.export", f"--workdir={trained[0]}", "--step=best",
                           f"--out={tmp_path / 'hf'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "was scored by an in-training eval" in result.stderr and "--step=best takes the latest, step 4" in \
        result.stderr
    assert result.stdout.startswith("step 4 of")


def _cpu_host_with_libtpu() -> bool:
    from jax._src import hardware_utils

    return (importlib.util.find_spec("libtpu") is not None and not hardware_utils.has_visible_nvidia_gpu()
            and not hardware_utils.num_available_tpu_chips_and_device_id()[0])


@pytest.mark.skipif(not _cpu_host_with_libtpu(), reason="a host with accelerators, or without libtpu (then JAX "
                                                        "does not probe for TPUs)")
def test_a_cpu_host_with_libtpu_prints_no_tpu_errors(trained, tmp_path):
    env = {name: value for name, value in os.environ.items() if name != "JAX_PLATFORMS"}
    result = subprocess.run([sys.executable, "-m", "eotd_jax.export", f"--workdir={trained[0]}",
                             f"--out={tmp_path / 'hf'}"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "INVALID_ARGUMENT" not in result.stderr and "E0000" not in result.stderr
    assert "Failed to find host bounds" not in result.stderr


def _params(workdir: Path, step: int) -> list[np.ndarray]:
    import jax
    import orbax.checkpoint as ocp

    path = workdir / "checkpoints" / str(step) / "params"
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    with ocp.StandardCheckpointer() as checkpointer:
        target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                              checkpointer.metadata(path).item_metadata)
        return [np.asarray(x) for x in jax.tree.leaves(checkpointer.restore(path, target))]
