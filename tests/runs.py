"""Running the binaries as a user would: subprocesses of `python -m ...` from the project root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN = ["--config.model=t5-tiny", "--config.train.batch_size=4", "--config.data.source_length=256",
              "--config.data.target_length=96", "--config.log_every_steps=1", "--config.progress=false",
              "--config.checkpoint.asynchronous=false", "--config.eval.every_steps=0",
              "--config.checkpoint.keep_best=0"]


def python_module(module: str, *flags: str, env: dict | None = None, timeout: int = 600):
    return subprocess.run([sys.executable, "-m", module, *flags], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=cpu_env(env))


def train_flags(workdir: Path, data_dir: Path, *overrides: str) -> list[str]:
    """A tiny student (default) on `data_dir`, with the given config overrides."""
    return ["--config=default", f"--workdir={workdir}", f"--config.data.dir={data_dir}", *TINY_TRAIN,
            *overrides]


def train_command(workdir: Path, data_dir: Path, *overrides: str) -> list[str]:
    """For runs the test starts, signals or runs several of at once (`subprocess.Popen`)."""
    return [sys.executable, "-m", "eotd_jax.train", *train_flags(workdir, data_dir, *overrides)]


def train(workdir: Path, data_dir: Path, *overrides: str, env: dict | None = None):
    return python_module("eotd_jax.train", *train_flags(workdir, data_dir, *overrides), env=env)


def fake_devices(count: int, processes: int = 1) -> dict:
    """XLA_FLAGS for `count` CPU devices in each of `processes` processes.

    In one process, XLA:CPU's concurrency-optimized scheduler let the devices of a 4-device train step wait in
    different collectives of the same step (a 2-core host; 1 run in 3 to 6 in 8) until XLA's 40 s rendezvous
    timeout aborted the process; with the default scheduler none of 6 runs did. Across processes it is the other
    way round: with the default scheduler the processes' own compiles met in mismatched collectives (gloo:
    "collective mismatch"), so there the flag stays as it is."""
    flags = f"--xla_force_host_platform_device_count={count}"
    if processes == 1:
        flags += " --xla_cpu_enable_concurrency_optimized_scheduler=false"
    return {"XLA_FLAGS": flags}


def cpu_env(extra: dict | None = None) -> dict:
    return {**os.environ, "JAX_PLATFORMS": "cpu", **(extra or {})}


def last_json_line(output: str) -> dict:
    import json

    return json.loads(output.strip().splitlines()[-1])


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_processes(module: str, *flags: str, logs: Path, count: int = 2, devices: int = 2) -> list:
    """One run of `count` processes x `devices` CPU devices joined by jax.distributed on 127.0.0.1 (a stand-in for
    `count` hosts). Output goes to `<logs>.<index>.log`: a pipe nobody reads while another process is waited on
    fills up and blocks its writer, and then all of them (they meet in collectives)."""
    port = free_port()
    env = cpu_env(fake_devices(devices, processes=count))
    processes = []
    for index in range(count):
        with open(f"{logs}.{index}.log", "w") as log:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", module, *flags, f"--coordinator_address=127.0.0.1:{port}",
                 f"--num_processes={count}", f"--process_id={index}"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
    return processes


def finish(processes: list, logs: Path, timeout: float = 600) -> list[str]:
    """Each process's output, after checking that all exited 0."""
    for process in processes:
        process.wait(timeout=timeout)
    outputs = [Path(f"{logs}.{index}.log").read_text() for index in range(len(processes))]
    assert [p.returncode for p in processes] == [0] * len(processes), "".join(o[-3000:] for o in outputs)
    return outputs
