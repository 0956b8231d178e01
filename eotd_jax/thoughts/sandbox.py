"""A pool of pre-started, locked-down worker processes that run PoT and EoT.

Untrusted programs and equation systems never run in the main process. Each
worker (see `worker.py`) handles one task at a time; the parent enforces a
wall-clock limit, kills a worker that overruns, dies or misbehaves, and starts
a replacement, so one hostile input costs one task and never the pool.

    with SandboxPool() as pool:
        pool.run_program("ans = 6 * 7")          # Outcome(value=Fraction(42, 1))
        pool.solve_equations("2 * x = 10\\nans = x + 1")
        pool.map("pot", programs)                # all workers in parallel
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from eotd_jax.thoughts.answers import parse_number
from eotd_jax.thoughts.outcome import Failure, Outcome

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_MAX_REPLY_BYTES = 1 << 20
_STARTUP_SECONDS = 60.0
_KINDS = ("pot", "eot")


class _WorkerGone(Exception):
    """The worker died, overran its time or broke the protocol."""


class _Worker:
    """One sandbox process and its two pipes."""

    def __init__(self, scratch_root: str, memory_bytes: int, file_bytes: int, print_limit: int):
        bootstrap = (
            f"import sys; sys.path.insert(0, {_PACKAGE_ROOT!r}); "
            "from eotd_jax.thoughts.worker import main; "
            f"main({scratch_root!r}, {memory_bytes}, {file_bytes}, {print_limit})"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-c", bootstrap],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            start_new_session=True,
        )
        self.ready = False

    def wait_ready(self) -> None:
        """Waits for the worker's start-up frame (imports, warm-up, lockdown done)."""
        if not self.ready:
            try:
                self._read_frame(time.monotonic() + _STARTUP_SECONDS)
            except TimeoutError:
                raise _WorkerGone(f"worker did not start within {_STARTUP_SECONDS:g} s") from None
            self.ready = True

    def call(self, request: dict, wall_seconds: float) -> dict:
        self.wait_ready()
        body = json.dumps(request).encode()
        try:
            self.process.stdin.write(struct.pack(">I", len(body)) + body)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as error:
            raise _WorkerGone(f"worker exited ({error})") from None
        return self._read_frame(time.monotonic() + wall_seconds)

    def _read_frame(self, deadline: float) -> dict:
        header = self._read(4, deadline)
        (size,) = struct.unpack(">I", header)
        if size > _MAX_REPLY_BYTES:
            raise _WorkerGone(f"worker sent an oversized reply ({size} bytes)")
        try:
            return json.loads(self._read(size, deadline))
        except ValueError:
            raise _WorkerGone("worker sent a malformed reply") from None

    def _read(self, size: int, deadline: float) -> bytes:
        fd, data = self.process.stdout.fileno(), b""
        while len(data) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError
            chunk = os.read(fd, size - len(data))
            if not chunk:
                code = self.process.wait()
                raise _WorkerGone(f"worker exited with code {code}")
            data += chunk
        return data

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):  # unflushed bytes to a dead process
                pipe.close()


class SandboxPool:
    """Pre-started sandbox workers; thread-safe; use as a context manager.

    Args:
      num_workers: processes (default: the CPU count).
      cpu_seconds: CPU time one task may use (a SIGPROF timer in the worker).
      wall_seconds: wall-clock limit per task, enforced by killing the worker
        (default: cpu_seconds + 2; it catches work that never returns to Python).
      memory_mb: address space a worker may add to what it holds at start.
      max_output_chars: how much a program may print.
      max_file_bytes: largest file a program may write in its scratch dir.
    """

    def __init__(
        self,
        num_workers: int | None = None,
        cpu_seconds: float = 2.0,
        wall_seconds: float | None = None,
        memory_mb: int = 1024,
        max_output_chars: int = 65_536,
        max_file_bytes: int = 1 << 20,
    ):
        self.num_workers = num_workers or os.cpu_count() or 1
        self.cpu_seconds = cpu_seconds
        self.wall_seconds = wall_seconds or cpu_seconds + 2.0
        self._scratch_root = tempfile.mkdtemp(prefix="eotd-sandbox-")
        os.chmod(self._scratch_root, 0o711)  # workers that dropped to `nobody` can enter their dirs
        self._worker_args = (self._scratch_root, memory_mb << 20, max_file_bytes, max_output_chars)
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        workers = [self._spawn() for _ in range(self.num_workers)]
        try:
            for worker in workers:  # they start in parallel; fail here, not in the first task
                worker.wait_ready()
                self._idle.put(worker)
        except _WorkerGone as error:
            self.close()
            raise RuntimeError(f"sandbox worker failed to start: {error}") from None

    def _spawn(self) -> _Worker:
        worker = _Worker(*self._worker_args)
        with self._lock:
            self._all.add(worker)
        return worker

    def _replace(self, worker: _Worker) -> _Worker:
        worker.kill()
        with self._lock:
            self._all.discard(worker)
        return self._spawn()

    def run(self, kind: str, source: str) -> Outcome:
        """Runs one PoT program (`kind="pot"`) or solves one EoT system (`"eot"`)."""
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
        if self._closed:
            raise RuntimeError("the sandbox pool is closed")
        worker = self._idle.get()
        try:
            reply = worker.call({"kind": kind, "source": source, "cpu_seconds": self.cpu_seconds}, self.wall_seconds)
            if reply.get("recycle"):  # the worker exits after a dangerous task
                worker = self._replace(worker)
            return _reply_to_outcome(reply)
        except TimeoutError:
            worker = self._replace(worker)
            return Outcome.fail(Failure.TIMEOUT, f"no result within {self.wall_seconds:g} s (worker killed)")
        except _WorkerGone as error:
            worker = self._replace(worker)
            return Outcome.fail(Failure.CRASHED, str(error))
        finally:
            self._idle.put(worker)

    def run_program(self, source: str) -> Outcome:
        return self.run("pot", source)

    def solve_equations(self, text: str) -> Outcome:
        return self.run("eot", text)

    def map(self, kind: str, sources: Sequence[str], progress: bool = False) -> list[Outcome]:
        """Runs many tasks on all workers at once; results in input order."""
        with ThreadPoolExecutor(self.num_workers) as executor:
            results: Iterable[Outcome] = executor.map(lambda source: self.run(kind, source), sources)
            if progress:
                results = tqdm(results, total=len(sources), desc=f"verifying {kind}", unit="item")
            return list(results)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            workers, self._all = list(self._all), set()
        for worker in workers:
            worker.kill()
        shutil.rmtree(self._scratch_root, ignore_errors=True)

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _reply_to_outcome(reply: dict) -> Outcome:
    if "value" in reply:
        value = parse_number(str(reply["value"]))
        if value is None:
            return Outcome.fail(Failure.NOT_A_NUMBER, f"`ans` = {str(reply['value'])[:80]!r} is not a number")
        return Outcome(value=value)
    try:
        failure = Failure(reply.get("failure"))
    except ValueError:
        failure = Failure.CRASHED
    return Outcome.fail(failure, str(reply.get("message", "")))
