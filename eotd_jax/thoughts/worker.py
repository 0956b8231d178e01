"""Sandbox worker process: locks itself down, then runs PoT programs and EoT systems.

Started by `sandbox.SandboxPool` as `python -I -c ...` with a stripped
environment. Start-up order matters: import and warm up everything first, then
give up privileges (setuid nobody when started as root), set rlimits, and
install an audit hook that, from then on, allows only compiling/executing code
and reading Python's own files; opening other files (except the scratch dir),
processes, sockets, signals, ctypes, rlimit changes... raise `Violation`.

Protocol on private copies of fds 0/1 (the real 0/1/2 point at /dev/null):
frames of a 4-byte big-endian length and UTF-8 JSON. Requests
`{"kind": "pot"|"eot", "source": str, "cpu_seconds": float}`; replies
`{"value": str}` or `{"failure": str, "message": str, "recycle": bool}`.
"""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import struct
import sys
import tempfile

from eotd_jax.thoughts import eot, pot
from eotd_jax.thoughts.outcome import Failure

NOBODY = 65534
# Lazy imports inside sympy must keep working after the lockdown: "import" and
# "marshal.loads" (bytecode of a .pyc; `open` already limits which files) are
# allowed. Code that could reach marshal could already reach `exec`.
_ALLOWED_EVENTS = frozenset({"compile", "exec", "builtins.id", "import", "marshal.loads"})


class Violation(BaseException):
    """Raised by the audit hook; a BaseException so `except Exception` cannot swallow it."""


class CpuLimit(BaseException):
    """Raised by the SIGPROF timer when a task used its CPU seconds."""


class OutputLimit(BaseException):
    """Raised when a program prints more than allowed."""


class _Lockdown:
    """Audit-hook policy plus the record of what was refused during the current task."""

    def __init__(self, scratch: str):
        self.scratch = os.path.realpath(scratch) + os.sep
        self.python_dirs = tuple(
            os.path.realpath(p) + os.sep for p in {sys.prefix, sys.base_prefix, *sys.path} if p
        )
        self.violations: list[str] = []

    def hook(self, event: str, args: tuple) -> None:
        if event in _ALLOWED_EVENTS or (event == "open" and self._may_open(args)):
            return
        self.violations.append(event)
        raise Violation(f"operation {event!r} is not allowed in the sandbox")

    def _may_open(self, args: tuple) -> bool:
        path, mode = args[0], args[1]
        if not isinstance(path, (str, bytes)):
            return False  # an fd: never allowed
        path = os.path.realpath(os.fsdecode(path))
        if (path + os.sep).startswith(self.scratch):
            return True
        read_only = mode is None or (isinstance(mode, str) and set(mode) <= set("rb"))
        python_file = path.endswith((".py", ".pyc", ".so"))
        return read_only and python_file and path.startswith(self.python_dirs)


class _CappedPrint:
    """`print` for programs: output is discarded but counted against a cap."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0

    def __call__(self, *values, sep=" ", end="\n", **_):
        buffer = io.StringIO()
        for index, value in enumerate(values):
            buffer.write((sep if index else "") + str(value))
            if buffer.tell() + self.used > self.limit:
                raise OutputLimit(f"program printed more than {self.limit} characters")
        self.used += buffer.tell() + len(end)
        if self.used > self.limit:
            raise OutputLimit(f"program printed more than {self.limit} characters")


def _warm_up() -> None:
    """Triggers sympy's and the modules' lazy imports before the lockdown."""
    systems = (
        "2*x+3=11\nans=x",
        "x**2=16\nans=x",
        "x*y=6\nx+y=5\nans=x",
        "a = 12 - 10\nb = 40 - a\nc = b * a\nd = 120 / c\nans = d + 1",  # chained products / quotients
        "ans=2**0.5 + 7 % 3",
    )
    for system in systems:
        eot.solve_system(system)
    pot.run_program("import math, statistics\nans = statistics.mean([1, 2]) + math.sqrt(4)", _CappedPrint(100))


def _lock_down(scratch: str, memory_bytes: int, file_bytes: int) -> _Lockdown:
    address_space = _address_space()
    if os.geteuid() == 0:
        os.chown(scratch, NOBODY, NOBODY)
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    os.chdir(scratch)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))
    resource.setrlimit(resource.RLIMIT_AS, (address_space + memory_bytes,) * 2)
    lockdown = _Lockdown(scratch)
    sys.addaudithook(lockdown.hook)
    return lockdown


def _address_space() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("cannot read VmSize")


def _on_cpu_limit(signum, frame):
    raise CpuLimit("CPU time limit reached")


def _run_task(request: dict, print_limit: int, lockdown: _Lockdown) -> dict:
    lockdown.violations.clear()
    signal.setitimer(signal.ITIMER_PROF, float(request["cpu_seconds"]))
    try:
        if request["kind"] == "pot":
            reply = {"value": pot.run_program(request["source"], _CappedPrint(print_limit))}
        else:
            outcome = eot.solve_system(request["source"])
            if outcome.ok:
                reply = {"value": f"{outcome.value.numerator}/{outcome.value.denominator}"}
            else:
                reply = _failure(outcome.failure, outcome.message)
    except pot.ProgramFailure as error:  # found before or after running: the worker is intact
        reply = _failure(error.failure, str(error))
    except RecursionError:
        reply = _failure(Failure.ERROR, "RecursionError: maximum recursion depth exceeded")
    # Interrupted mid-run: the process may be in an unknown state, so it exits after replying.
    except CpuLimit as error:
        reply = _failure(Failure.TIMEOUT, str(error), recycle=True)
    except MemoryError:
        reply = _failure(Failure.MEMORY, "memory limit reached", recycle=True)
    except OutputLimit as error:
        reply = _failure(Failure.OUTPUT_LIMIT, str(error), recycle=True)
    except Violation as error:
        reply = _failure(Failure.FORBIDDEN, str(error), recycle=True)
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
    if lockdown.violations:  # refused even if the program caught the exception
        message = f"operation {lockdown.violations[0]!r} is not allowed in the sandbox"
        reply = _failure(Failure.FORBIDDEN, message, recycle=True)
    return reply


def _failure(failure: Failure, message: str, recycle: bool = False) -> dict:
    return {"failure": failure.value, "message": message[:500], "recycle": recycle}


def _read_exactly(fd: int, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def write_frame(fd: int, message: dict) -> None:
    body = json.dumps(message).encode()
    os.write(fd, struct.pack(">I", len(body)) + body)


def main(scratch_root: str, memory_bytes: int, file_bytes: int, print_limit: int) -> None:
    request_fd, reply_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    _warm_up()
    signal.signal(signal.SIGPROF, _on_cpu_limit)
    lockdown = _lock_down(tempfile.mkdtemp(dir=scratch_root), memory_bytes, file_bytes)
    write_frame(reply_fd, {"ready": True})
    while True:
        header = _read_exactly(request_fd, 4)
        if header is None:
            return  # the parent closed the pipe (or died): exit quietly
        request = json.loads(_read_exactly(request_fd, struct.unpack(">I", header)[0]))
        reply = _run_task(request, print_limit, lockdown)
        write_frame(reply_fd, reply)
        if reply.get("recycle"):
            return
