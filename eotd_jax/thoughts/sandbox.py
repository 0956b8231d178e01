"""A pool of sandbox zygotes: each task runs in a fresh, kernel-confined process.

Untrusted programs and equation systems never run in the main process. Each
zygote (see `worker.py`) is a warmed-up interpreter that forks one child per
task; the child confines itself (see `confine.py`) before the task runs and
exits after it, so no task can change another's result. The parent trusts
nothing a child sends: one frame per task, checked field by field
(`frames.py`); anything else is `crashed`. `run` and `map` never raise for a
reply: each becomes an outcome, and a zygote that misbehaves is replaced.
PoT programs that import sympy run in the zygotes that load it for EoT
(`worker.FLAVOURS`); the others in zygotes that never load it.

    with SandboxPool() as pool:
        pool.run_program("ans = 6 * 7")          # Outcome(value=Fraction(42, 1))
        pool.solve_equations("2 * x = 10\\nans = x + 1")
        pool.map("pot", programs)                # all zygotes in parallel
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import queue
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from eotd_jax.thoughts import frames
from eotd_jax.thoughts.outcome import Failure, Outcome
from eotd_jax.thoughts.worker import FLAVOURS, MAX_CONTROL_BYTES

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_BOOTSTRAP = "import sys; sys.path.insert(0, {root!r}); from eotd_jax.thoughts.worker import main; main{args!r}"
_STARTUP_SECONDS = 60.0
_ZYGOTE_SECONDS = 5.0  # slack for the zygote's own work (fork, reaping) on a loaded machine
_SIGNAL_FAILURES = {
    signal.SIGSYS: (Failure.FORBIDDEN, "a system call the sandbox forbids (killed by the seccomp filter)"),
    signal.SIGXCPU: (Failure.TIMEOUT, "CPU time limit reached (killed by the kernel)"),
}


@dataclasses.dataclass(frozen=True)
class TaskLimits:
    """The CPU seconds one task may use (a timer in the child, the kernel's RLIMIT_CPU behind it) and its
    wall-clock limit, enforced by killing the child (it catches work that never returns to Python)."""

    cpu_seconds: float
    wall_seconds: float


def _flavour(kind: str, source: str) -> str:
    """The zygotes that serve this task: a PoT program that can import sympy (it names it) goes to them."""
    return "sympy" if kind == "eot" or "sympy" in source else "plain"


class _ZygoteGone(Exception):
    """The zygote died, overran its time or broke the protocol: it is replaced."""


class _Zygote:
    """One warmed-up zygote process of one flavour, and its control socket."""

    def __init__(self, flavour: str, args: tuple):
        self.flavour = flavour
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        bootstrap = _BOOTSTRAP.format(root=_PACKAGE_ROOT, args=(flavour, theirs.fileno(), *args))
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-c", bootstrap],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                start_new_session=True,
            )
        finally:
            theirs.close()
        self.control = ours
        self.layers = ""

    def wait_ready(self) -> None:
        """Waits for the start-up message (imports, warm-up, namespaces done)."""
        if not self.layers:
            try:
                ready = self._receive(time.monotonic() + _STARTUP_SECONDS)
            except TimeoutError:
                raise _ZygoteGone(f"zygote did not start within {_STARTUP_SECONDS:g} s") from None
            if set(ready) != {"ready", "layers"} or ready["ready"] is not True or not isinstance(ready["layers"], str):
                raise _ZygoteGone("zygote sent a malformed start-up message")
            self.layers = ready["layers"]

    def run(self, request: bytes, wall_seconds: float) -> Outcome:
        """One task in a fresh child; raises _ZygoteGone or TimeoutError only for the zygote's faults."""
        self.wait_ready()
        try:
            self.control.send(request)
        except OSError as error:
            raise _ZygoteGone(f"zygote exited ({error})") from None
        done, fds = self._receive(time.monotonic() + wall_seconds + _ZYGOTE_SECONDS, with_fds=True)
        try:
            if (
                set(done) != {"status", "timed_out"}
                or type(done["status"]) is not int
                or not 0 <= done["status"] < 1 << 16
                or not isinstance(done["timed_out"], bool)
                or len(fds) != 1
            ):
                raise _ZygoteGone("zygote sent a malformed end message")
            # the child has exited: its bytes are all in the pipe
            data = _read_to_end(fds[0], frames.MAX_FRAME_BYTES + 4, time.monotonic() + _ZYGOTE_SECONDS)
        finally:
            for fd in fds:
                os.close(fd)
        if done["timed_out"]:
            return Outcome.fail(Failure.TIMEOUT, f"no result within {wall_seconds:g} s (killed)")
        return _outcome(done["status"], data)

    def _receive(self, deadline: float, with_fds: bool = False):
        if not select.select([self.control], [], [], max(0.0, deadline - time.monotonic()))[0]:
            raise TimeoutError
        try:
            if with_fds:
                message, fds, flags, _ = socket.recv_fds(self.control, MAX_CONTROL_BYTES, 4)
            else:
                message, fds, flags = self.control.recv(MAX_CONTROL_BYTES), [], 0
        except OSError as error:
            raise _ZygoteGone(f"zygote exited ({error})") from None
        if not message:
            for fd in fds:
                os.close(fd)
            raise _ZygoteGone(f"zygote exited with code {self.process.wait()}")
        try:
            decoded = json.loads(message)
        except ValueError:
            decoded = None
        if not isinstance(decoded, dict) or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            for fd in fds:
                os.close(fd)
            raise _ZygoteGone("zygote sent a malformed message")
        return (decoded, fds) if with_fds else decoded

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # the zygote and a child it may be running
        self.process.wait()
        self.control.close()


def _read_to_end(fd: int, limit: int, deadline: float) -> bytes:
    """The child's bytes up to EOF, or `limit` + 1 of them (then `frames.decode` refuses them)."""
    data = b""
    while len(data) <= limit:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError
        chunk = os.read(fd, limit + 1 - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _outcome(status: int, data: bytes) -> Outcome:
    """The task's outcome from the child's wait status and the bytes it wrote; trusts neither, never raises."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        failure, message = _SIGNAL_FAILURES.get(number, (Failure.CRASHED, f"killed by signal {number}"))
        return Outcome.fail(failure, message)
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        return Outcome.fail(Failure.CRASHED, f"the task's process exited with code {os.WEXITSTATUS(status)}")
    try:
        return frames.decode(data)
    except frames.FrameError as error:
        return Outcome.fail(Failure.CRASHED, f"malformed reply: {error}")


class SandboxPool:
    """Warmed-up sandbox zygotes, one fresh confined process per task; thread-safe; a context manager.

    Args:
      num_workers: tasks in parallel (default: the CPU count); there are this many zygotes per flavour.
      cpu_seconds: CPU time one task may use (a timer in the child; the kernel's RLIMIT_CPU behind it).
      pot_cpu_seconds: CPU time one PoT program may use (default: cpu_seconds); a brute-force search may
        need more than an equation system.
      wall_seconds: wall-clock limit per task, enforced by killing the child
        (default: the task's CPU seconds + 2; it catches work that never returns to Python).
      memory_mb: address space a task may add to what the zygote holds.
      max_output_chars: how much a program may print.
      max_file_bytes: largest file a program may write in its scratch dir.

    `layers` states in one line which confinement layers are active (also logged at start);
    `limits` the TaskLimits of each kind of task.
    """

    def __init__(
        self,
        num_workers: int | None = None,
        cpu_seconds: float = 2.0,
        pot_cpu_seconds: float | None = None,
        wall_seconds: float | None = None,
        memory_mb: int = 1024,
        max_output_chars: int = 65_536,
        max_file_bytes: int = 1 << 20,
    ):
        self.num_workers = num_workers or len(os.sched_getaffinity(0))  # the CPUs this process may use, not the host's
        cpus = {"pot": cpu_seconds if pot_cpu_seconds is None else pot_cpu_seconds, "eot": cpu_seconds}
        if not min(cpus.values()) > 0 or not (wall_seconds is None or wall_seconds > 0):
            raise ValueError(f"CPU and wall-clock seconds must be positive, got {cpus} and {wall_seconds}")
        self.limits = {kind: TaskLimits(cpu, cpu + 2.0 if wall_seconds is None else wall_seconds)
                       for kind, cpu in cpus.items()}
        self._scratch_root = tempfile.mkdtemp(prefix="eotd-sandbox-")
        os.chmod(self._scratch_root, 0o711)  # children that dropped their uid can enter their own dirs
        flavour_cpu = {"plain": cpus["pot"], "sympy": max(cpus.values())}  # the kernel's backstop per zygote
        self._zygote_args = {
            flavour: (self._scratch_root, memory_mb << 20, max_file_bytes, max_output_chars, flavour_cpu[flavour])
            for flavour in FLAVOURS
        }
        self._idle: dict[str, queue.SimpleQueue[_Zygote]] = {flavour: queue.SimpleQueue() for flavour in FLAVOURS}
        self._all: set[_Zygote] = set()
        self._lock = threading.Lock()
        self._closed = False
        zygotes = [self._spawn(flavour) for flavour in FLAVOURS for _ in range(self.num_workers)]
        try:
            for zygote in zygotes:  # they start in parallel; fail here, not in the first task
                zygote.wait_ready()
                self._idle[zygote.flavour].put(zygote)
        except _ZygoteGone as error:
            self.close()
            raise RuntimeError(f"sandbox worker failed to start: {error}") from None
        self.layers = zygotes[0].layers
        complete = all(f"{layer} on" in self.layers for layer in ("landlock", "seccomp"))
        (logging.info if complete else logging.warning)("%s", self.layers)

    def _spawn(self, flavour: str) -> _Zygote:
        zygote = _Zygote(flavour, self._zygote_args[flavour])
        with self._lock:
            if not self._closed:
                self._all.add(zygote)
                return zygote
        zygote.kill()  # the pool closed meanwhile: nothing may outlive close()
        return zygote

    def _replace(self, zygote: _Zygote) -> _Zygote:
        zygote.kill()
        with self._lock:
            self._all.discard(zygote)
        return self._spawn(zygote.flavour)

    def run(self, kind: str, source: str) -> Outcome:
        """Runs one PoT program (`kind="pot"`) or solves one EoT system (`"eot"`) in a fresh process.

        Every reply of the child, and every way it or its zygote can fail, is an Outcome; only a bad
        `kind` or a closed pool raise.
        """
        if kind not in self.limits:
            raise ValueError(f"kind must be one of {tuple(self.limits)}, got {kind!r}")
        if self._closed:
            raise RuntimeError("the sandbox pool is closed")
        source, limits = str(source), self.limits[kind]
        request = json.dumps(
            {"kind": kind, "source": source, "cpu_seconds": limits.cpu_seconds, "wall_seconds": limits.wall_seconds}
        ).encode()
        if len(request) > MAX_CONTROL_BYTES:
            return Outcome.fail(Failure.TOO_LARGE, f"input longer than {MAX_CONTROL_BYTES} bytes")
        idle = self._idle[_flavour(kind, source)]
        zygote = idle.get()
        try:
            if zygote.process.poll() is not None:  # died while idle (OOM killer, an operator): no task lost
                zygote = self._replace(zygote)
            return zygote.run(request, limits.wall_seconds)
        except TimeoutError:
            zygote = self._replace(zygote)
            return Outcome.fail(Failure.TIMEOUT, f"no result within {limits.wall_seconds:g} s (zygote killed)")
        except _ZygoteGone as error:
            zygote = self._replace(zygote)
            return Outcome.fail(Failure.CRASHED, str(error))
        finally:
            idle.put(zygote)

    def run_program(self, source: str) -> Outcome:
        return self.run("pot", source)

    def solve_equations(self, text: str) -> Outcome:
        return self.run("eot", text)

    def map(self, kind: str, sources: Sequence[str], progress: bool = False) -> list[Outcome]:
        """Runs many tasks on all zygotes at once; results in input order; `progress`: a bar, on a terminal only."""
        with ThreadPoolExecutor(self.num_workers) as executor:
            results: Iterable[Outcome] = executor.map(lambda source: self.run(kind, source), sources)
            if progress and sys.stderr.isatty():
                results = tqdm(results, total=len(sources), desc=f"verifying {kind}", unit="item")
            return list(results)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            zygotes, self._all = list(self._all), set()
        for zygote in zygotes:
            zygote.kill()
        shutil.rmtree(self._scratch_root, ignore_errors=True)

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
