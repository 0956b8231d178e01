"""The launch scripts run as a user runs them, against fake `gcloud` / `sbatch` / `srun` executables (tests/fakes)
that start 2 local CPU processes with their platform's environment: a TPU VM worker's metadata server, or the
variables srun sets per task. Each process must join the same jax.distributed run with its own index, and the
arguments must arrive intact (`--config.mesh.shape=(2,2,1)`, a workdir with a space)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_metadata import metadata_server, tpu_worker_attributes
from runs import ROOT, cpu_env, fake_devices, train_flags

FAKES = Path(__file__).resolve().parent / "fakes"
SCRIPTS = [str(ROOT / ".ci" / "run"), *sorted(str(p) for p in (ROOT / "launch").iterdir()
                                              if p.suffix in (".sh", ".sbatch"))]


def _free_port(low: int = 0, high: int = 0) -> int:
    for port in range(low, high) if low else [0]:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise RuntimeError(f"no free port in [{low}, {high})")


def _fake_bin(directory: Path) -> Path:
    directory.mkdir()
    for tool in ("gcloud", "sbatch", "srun"):
        (directory / tool).write_text(f'#!/bin/sh\nexec {sys.executable} {FAKES / tool}.py "$@"\n')
        (directory / tool).chmod(0o755)
    return directory


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _run(script: str, *args: str, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "launch" / script), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@contextlib.contextmanager
def _tpu_workers(tmp_path: Path, slices: int, workers_per_slice: int):
    """(cloud, env) of TPU VM workers holding the checkout as `setup` leaves it, one metadata server each; with
    several slices, their metadata's tpu-env holds the Multislice settings the runtime gives a queued resource."""
    cloud = tmp_path / "cloud"
    count = slices * workers_per_slice
    for worker in range(count):
        checkout = cloud / f"worker-{worker}" / "eotd_jax"
        (checkout / ".venv" / "bin").mkdir(parents=True)
        for part in ("eotd_jax", "data_gen", "launch"):
            (checkout / part).symlink_to(ROOT / part)
        python = checkout / ".venv" / "bin" / "python"
        python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
        python.chmod(0o755)
    hosts = ["127.0.0.1"] * workers_per_slice
    multislice = ("MEGASCALE_NUM_SLICES: '{slices}'\nMEGASCALE_SLICE_ID: '{slice}'\n"
                  "MEGASCALE_COORDINATOR_ADDRESS: '127.0.0.1'\n") if slices > 1 else ""
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(metadata_server(tpu_worker_attributes(
            i % workers_per_slice, hosts, multislice.format(slices=slices, slice=i // workers_per_slice))))
            for i in range(count)]
        env = cpu_env({"PATH": f"{_fake_bin(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}",
                       "FAKE_CLOUD": str(cloud), "FAKE_METADATA": ",".join(servers), "FAKE_SLICES": str(slices),
                       "SLICES": str(slices), "JAX_COORDINATOR_PORT": str(_free_port()), "TPU": "etd-test",
                       "ZONE": "us-west4-a", **fake_devices(2, processes=count)})
        try:
            yield cloud, env
        finally:
            for worker in range(count):  # a detached trainer the test left running
                pid_file = cloud / f"worker-{worker}" / "eotd_jax" / "logs" / "train.pid"
                if pid_file.exists():
                    try:
                        os.kill(int(pid_file.read_text()), signal.SIGKILL)
                    except ProcessLookupError:
                        pass


@pytest.fixture
def slice_of_two(tmp_path):
    """One slice of 2 workers."""
    with _tpu_workers(tmp_path, slices=1, workers_per_slice=2) as (cloud, env):
        yield cloud, env


@pytest.fixture
def two_slices(tmp_path):
    """Two slices of one worker each, as one Multislice queued resource."""
    with _tpu_workers(tmp_path, slices=2, workers_per_slice=1) as (cloud, env):
        yield cloud, env


def test_tpu_pod_check_every_worker_joins_the_slice(slice_of_two):
    _, env = slice_of_two
    result = _run("tpu_pod.sh", "check", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = sorted(_json_lines(result.stdout), key=lambda s: s["process_index"])
    assert [s["process_index"] for s in seen] == [0, 1]
    for view in seen:
        assert view["environment"] == "gce_tpu" and view["process_count"] == 2 and view["device_count"] == 4
        assert view["all_process_indices"] == [0, 1] and len(view["local_devices"]) == 2
    assert not set(seen[0]["local_devices"]) & set(seen[1]["local_devices"])


def test_tpu_pod_create_picks_the_runtime_version_of_each_type(slice_of_two):
    cloud, env = slice_of_two
    for accelerator, version in [("v4-32", "tpu-ubuntu2204-base"), ("v5litepod-16", "v2-alpha-tpuv5-lite"),
                                 ("v5p-32", "v2-alpha-tpuv5")]:
        assert _run("tpu_pod.sh", "create", env={**env, "TYPE": accelerator}).returncode == 0
        call = json.loads((cloud / "calls.jsonl").read_text().splitlines()[-1])
        assert f"--accelerator-type={accelerator}" in call and f"--version={version}" in call
    unknown = _run("tpu_pod.sh", "create", env={**env, "TYPE": "v9-8"})
    assert unknown.returncode != 0 and "unknown TPU type 'v9-8'" in unknown.stderr


def test_tpu_pod_train_runs_detached_on_every_worker_with_logs_on_gcs(slice_of_two, training_data, tmp_path):
    cloud, env = slice_of_two
    env = {**env, "LOGS": "gs://bucket/etd/logs", "LOG_SYNC_SECONDS": "1"}
    workdir = tmp_path / "run dir"  # every worker writes it, as a gs:// workdir on a real slice
    flags = train_flags(workdir, training_data, "--config.mesh.shape=(2,2,1)", "--config.train.steps=2",
                        "--config.eval.every_steps=2", "--config.checkpoint.every_steps=2",
                        "--config.checkpoint.keep_best=1", "--config.eval.limit=4", "--config.eval.max_new_tokens=8",
                        "--config.eval.workers=1", "--config.eval.batch_size=4")
    started = _run("tpu_pod.sh", "train", *flags, env=env, timeout=60)
    assert started.returncode == 0, started.stderr[-3000:]
    pid_files = [cloud / f"worker-{w}" / "eotd_jax" / "logs" / "train.pid" for w in range(2)]
    while not all(p.exists() for p in pid_files):
        time.sleep(0.1)
    again = _run("tpu_pod.sh", "train", *flags, env=env, timeout=60)
    assert again.returncode != 0 and "error: a job is running" in again.stderr
    texts = _wait_for_exit_status([cloud / "gcs" / "bucket" / "etd" / "logs" / f"worker-{w}.log" for w in range(2)])
    assert all(t.rstrip().endswith("exit status 0") for t in texts), texts[0][-3000:] + texts[1][-3000:]
    assert "joining a gce_tpu run: process 1 of 2" in texts[1]
    assert _json_lines(texts[0])[-1]["step"] == 2 and "step 2: held-out ETD accuracy" in texts[0]
    assert (workdir / "checkpoints" / "2").is_dir()

    status = _run("tpu_pod.sh", "status", env=env)
    assert status.returncode == 0 and status.stdout.count(": stopped") == 2
    collected = _run("tpu_pod.sh", "logs", env={**env, "OUT": str(tmp_path / "collected")})
    assert collected.returncode == 0, collected.stderr
    assert sorted(p.name for p in (tmp_path / "collected").iterdir()) == ["worker-0.log", "worker-1.log"]


def _wait_for_exit_status(logs: list[Path], seconds: float = 240) -> list[str]:
    deadline = time.monotonic() + seconds  # inside pytest.ini's 300 s
    while time.monotonic() < deadline and not all(p.exists() and "exit status" in p.read_text() for p in logs):
        time.sleep(1)
    return [p.read_text() if p.exists() else "" for p in logs]


def test_tpu_pod_eval_on_every_worker_writes_one_processs_predictions_and_export_runs_on_worker_0(
        slice_of_two, training_data, tmp_path):
    cloud, env = slice_of_two
    env = {**env, "LOGS": "gs://bucket/etd/logs", "LOG_SYNC_SECONDS": "1"}
    workdir = tmp_path / "run dir"
    trained = subprocess.run([sys.executable, "-m", "eotd_jax.train", *train_flags(
        workdir, training_data, "--config.train.steps=2", "--config.checkpoint.every_steps=2")], cwd=ROOT,
        env=cpu_env(), capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr[-3000:]
    flags = [f"--workdir={workdir}", "--datasets=synthetic", "--limit=5", "--strategies=eot,etd",
             "--max_new_tokens=8", "--batch_size=2", "--workers=1"]
    one = subprocess.run([sys.executable, "-m", "eotd_jax.eval", *flags, f"--eval_dir={tmp_path / 'one'}"],
                         cwd=ROOT, env=cpu_env(fake_devices(4)),
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]

    started = _run("tpu_pod.sh", "eval", *flags, f"--eval_dir={tmp_path / 'slice'}", env=env, timeout=60)
    assert started.returncode == 0, started.stderr[-3000:]
    texts = _wait_for_exit_status([cloud / "gcs" / "bucket" / "etd" / "logs" / f"worker-{w}.log" for w in range(2)])
    assert all(t.rstrip().endswith("exit status 0") for t in texts), texts[0][-3000:] + texts[1][-3000:]
    assert "joining a gce_tpu run: process 1 of 2" in texts[1]
    predictions = [(tmp_path / name / "predictions.jsonl").read_text() for name in ("slice", "one")]
    assert predictions[0] == predictions[1] and predictions[0].count("\n") == 5

    exported = _run("tpu_pod.sh", "export", f"--workdir={workdir}", f"--out={tmp_path / 'export'}", env=env)
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert f"step 2 of {workdir}" in exported.stdout and (tmp_path / "export" / "README.md").is_file()
    assert "--worker=0" in json.loads((cloud / "calls.jsonl").read_text().splitlines()[-1])


def test_tpu_pod_multislice_queues_the_slices_as_one_resource_and_reaches_every_worker(two_slices):
    cloud, env = two_slices
    created = _run("tpu_pod.sh", "create", env={**env, "TYPE": "v5litepod-16"})
    assert created.returncode == 0, created.stderr
    call = json.loads((cloud / "calls.jsonl").read_text().splitlines()[-1])
    assert call[:4] == ["compute", "tpus", "queued-resources", "create"] and call[4] == "etd-test"
    assert {"--node-count=2", "--node-prefix=etd-test", "--runtime-version=v2-alpha-tpuv5-lite",
            "--accelerator-type=v5litepod-16"} <= set(call)

    checked = _run("tpu_pod.sh", "check", env=env)
    assert checked.returncode == 0, checked.stderr[-3000:]
    seen = sorted(_json_lines(checked.stdout), key=lambda s: s["process_index"])
    assert [(s["process_index"], s["process_count"], s["device_count"]) for s in seen] == [(0, 2, 4), (1, 2, 4)]

    assert _run("tpu_pod.sh", "delete", env=env).returncode == 0
    call = json.loads((cloud / "calls.jsonl").read_text().splitlines()[-1])
    assert call[:5] == ["compute", "tpus", "queued-resources", "delete", "etd-test"] and "--force" in call
    bad = _run("tpu_pod.sh", "check", env={**env, "SLICES": "two"})
    assert bad.returncode != 0 and "SLICES must be a positive whole number" in bad.stderr


def test_tpu_pod_multislice_train_logs_each_slices_worker_apart(two_slices, training_data, tmp_path):
    cloud, env = two_slices
    env = {**env, "LOGS": "gs://bucket/etd/logs", "LOG_SYNC_SECONDS": "1"}
    flags = train_flags(tmp_path / "run", training_data, "--config.mesh.shape=(2,2,1)", "--config.train.steps=1",
                        "--config.eval.every_steps=0")
    started = _run("tpu_pod.sh", "train", *flags, env=env, timeout=60)
    assert started.returncode == 0, started.stderr[-3000:]
    logs = cloud / "gcs" / "bucket" / "etd" / "logs"
    texts = _wait_for_exit_status([logs / "slice-0-worker-0.log", logs / "slice-1-worker-0.log"])
    assert all(t.rstrip().endswith("exit status 0") for t in texts), texts[0][-3000:] + texts[1][-3000:]
    assert "joining a gce_tpu run: process 1 of 2" in texts[1] and _json_lines(texts[0])[-1]["step"] == 1
    status = _run("tpu_pod.sh", "status", env=env)
    assert status.returncode == 0 and status.stdout.count(": stopped") == 2


def test_tpu_pod_setup_installs_the_checkout_with_uv_on_every_worker(slice_of_two, tmp_path):
    """With a fake `uv` on PATH (the real one downloads Python and wheels): the archive of HEAD unpacked on each
    worker, a Python 3.12 venv, the tpu and hf extras."""
    cloud, env = slice_of_two
    uv = tmp_path / "bin" / "uv"
    uv.write_text('#!/bin/sh\necho "$PWD $*" >> "$FAKE_CLOUD/uv.log"\n')
    uv.chmod(0o755)
    for worker in range(2):
        shutil.rmtree(cloud / f"worker-{worker}" / "eotd_jax")
    result = _run("tpu_pod.sh", "setup", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    for worker in range(2):
        assert (cloud / f"worker-{worker}" / "eotd_jax" / "eotd_jax" / "distributed.py").is_file()
    calls = (cloud / "uv.log").read_text().splitlines()
    assert sorted(c.split(" ", 1)[1].split(" ")[0:4] for c in calls) == [
        ["pip", "install", "--quiet", "--python"]] * 2 + [["venv", "--quiet", "--python", "3.12"]] * 2
    assert all("-e .[tpu,hf]" in c for c in calls if " pip " in c)


@pytest.mark.parametrize("uv_installs", [True, False])
def test_install_venv_installs_with_uv_and_with_pip_where_uv_cannot(tmp_path, uv_installs):
    """On a fresh machine, with fake `python3`, `pip` and `uv` that log their calls: a venv, uv from PyPI, then uv
    installs the checkout with the extras asked for; where uv fails, pip installs them instead, saying so."""
    checkout, fakes, log = tmp_path / "checkout", tmp_path / "fakes", tmp_path / "calls.log"
    (checkout / "launch").mkdir(parents=True)
    shutil.copy(ROOT / "launch" / "install_venv.sh", checkout / "launch")
    fakes.mkdir()
    venv = 'mkdir -p .venv/bin && cp "$FAKES/pip" .venv/bin/pip && cp "$FAKES/pip" .venv/bin/python'
    scripts = {"python3": venv,
               "pip": 'if [ "$*" = "install -q uv" ]; then cp "$FAKES/uv" .venv/bin/uv; fi',
               "uv": f"exit {0 if uv_installs else 1}"}
    for name, body in scripts.items():
        (fakes / name).write_text(f'#!/bin/sh\necho "{name} $*" >> "$LOG"\n{body}\n')
        (fakes / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{fakes}{os.pathsep}{os.environ['PATH']}", "FAKES": str(fakes), "LOG": str(log)}
    result = subprocess.run(["bash", str(checkout / "launch" / "install_venv.sh"), "cuda12"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    uv = ["python3 -m venv .venv", "pip install -q uv",
          "uv pip install -q --compile-bytecode --python .venv/bin/python -e .[cuda12]"]
    pip = ["pip install -q --upgrade pip", "pip install -q -e .[cuda12]"]
    assert log.read_text().splitlines() == (uv if uv_installs else uv + pip)
    assert ("installing it with pip" in result.stderr) is not uv_installs


def test_tpu_pod_run_runs_a_command_in_every_workers_checkout(slice_of_two):
    _, env = slice_of_two
    result = _run("tpu_pod.sh", "run", 'echo "$(basename "$PWD") on worker $HOME"', env=env)
    assert result.returncode == 0 and sorted(result.stdout.split("\n"))[1:] == [
        f"eotd_jax on worker {env['FAKE_CLOUD']}/worker-{w}" for w in range(2)]


def test_tpu_pod_train_needs_a_gcs_log_dir(slice_of_two):
    _, env = slice_of_two
    result = _run("tpu_pod.sh", "train", "--config=quickstart", env=env)
    assert result.returncode != 0 and "set LOGS=gs://" in result.stderr


@pytest.mark.parametrize(("nodes", "gpus_per_node"), [(1, 2), (2, 1)])
def test_slurm_check_runs_one_process_per_gpu(tmp_path, nodes, gpus_per_node):
    port = _free_port(61440, 65536)  # JAX's SLURM coordinator port is 61440 + job id % 4096
    env = cpu_env({"PATH": f"{_fake_bin(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}",
                   "FAKE_SLURM_JOB_ID": str(port - 61440 + 4096), "NODES": str(nodes),
                   "GPUS_PER_NODE": str(gpus_per_node), "LOG_DIR": str(tmp_path / "new" / "logs"),
                   "PYTHON": sys.executable, **fake_devices(2, processes=nodes * gpus_per_node)})
    result = _run("slurm.sh", "check", env=env)
    output = tmp_path / "new" / "logs" / f"eotd-train-{port - 61440 + 4096}.out"
    text = output.read_text() if output.exists() else ""
    assert result.returncode == 0, result.stderr[-2000:] + text[-3000:]
    seen = sorted(_json_lines(text), key=lambda s: s["process_index"])
    assert [s["process_index"] for s in seen] == [0, 1], text[-3000:]
    for index, view in enumerate(seen):
        assert view["environment"] == "slurm" and view["process_count"] == 2 and view["all_process_indices"] == [0, 1]
        # One GPU each: the one of its local id where both tasks share a node, every GPU of its node otherwise.
        assert view["local_device_ids"] == ([index] if gpus_per_node > 1 else [])
        # The batch job's 12 CPUs a task reach each task (srun >= 22.05 does not pass them on by itself): all of
        # this host's, where it has fewer; one without SRUN_CPUS_PER_TASK.
        assert view["usable_cpus"] == min(12, len(os.sched_getaffinity(0))) > 1, view


def test_fake_srun_passes_on_each_tasks_output_in_whole_lines_as_srun_does(tmp_path):
    """Gloo writes its lines in pieces; tasks sharing the job's log file could split each other's lines (CI saw a
    check's JSON glued into one), where srun's output arrives a line at a time."""
    task = ("import os, sys, time\nif os.environ['SLURM_PROCID'] == '0':\n    os.write(1, b'[Gloo] Rank 0')\n"
            "    time.sleep(1)\n    os.write(1, b' is connected\\n')\nelse:\n    time.sleep(0.3)\n"
            "    os.write(1, b'{}\\n')\n")
    env = {**os.environ, "SLURM_JOB_NUM_NODES": "1", "SLURM_NTASKS_PER_NODE": "2", "SLURM_GPUS_PER_NODE": "2",
           "SLURM_JOB_NODELIST": "127.0.0.1"}
    result = subprocess.run([sys.executable, str(FAKES / "srun.py"), sys.executable, "-c", task], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and sorted(result.stdout.splitlines()) == ["[Gloo] Rank 0 is connected", "{}"]


def test_launch_scripts_are_shellcheck_clean():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run(["shellcheck", *SCRIPTS], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_every_xla_flag_the_gpu_launch_sets_is_one_the_installed_jaxlib_parses():
    """The flags come from eotd_jax.gpu_flags, filtered by the jaxlib's own parser (which aborts a process on an
    unknown flag); the launch files set none of their own. The memory fraction is the planner's."""
    import shlex

    from eotd_jax import gpu_flags
    from eotd_jax.planning import slices

    literal = [flag for path in (ROOT / "launch").iterdir() for flag in re.findall(r"--xla_\w+", path.read_text())]
    assert literal == [], literal
    result = subprocess.run([sys.executable, "-m", "eotd_jax.gpu_flags"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, env=cpu_env(fake_devices(2)))
    assert result.returncode == 0, result.stderr
    exported = dict(shlex.split(line)[1].split("=", 1) for line in result.stdout.splitlines())
    flags = exported["XLA_FLAGS"].split()
    assert flags[0] == "--xla_force_host_platform_device_count=2"  # the caller's come first
    assert "--xla_gpu_enable_while_loop_double_buffering=true" in flags
    assert "--xla_gpu_enable_latency_hiding_scheduler=true" in flags
    parsed = subprocess.run([sys.executable, "-c", "import jax; jax.devices()"], capture_output=True, text=True,
                            timeout=300, env=cpu_env({"XLA_FLAGS": " ".join(flags)}))
    assert parsed.returncode == 0, parsed.stderr[-2000:]
    assert float(exported["XLA_PYTHON_CLIENT_MEM_FRACTION"]) == slices.GPU_MEMORY_FRACTION
    assert slices.CHIPS["h100"].hbm_bytes == int(slices.GPU_MEMORY_FRACTION * 84929347584)
    bogus = "--xla_gpu_enable_pipelined_everything=true"
    assert gpu_flags.known([bogus, flags[1]]) == ([flags[1]], [bogus])
