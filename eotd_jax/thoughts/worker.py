"""Sandbox zygote: warms up once, then forks one confined child per task.

Started by `sandbox.SandboxPool` as `python -I -c ...` with a stripped
environment and one SOCK_SEQPACKET control socket. The zygote itself never runs
untrusted code, and one zygote serves one kind of task (PoT zygotes never load
sympy, so they fork faster). Start-up: /dev/null on fds 0-2, imports and
warm-up of every lazy path, then `confine.Confinement.prepare()` (Landlock
rules, the seccomp filter, namespaces, scratch), `gc.freeze()` so children
share the warmed heap copy-on-write. Per task:

    parent -> zygote   {"kind": "pot"|"eot", "source": str, "cpu_seconds": float, "wall_seconds": float}
                       (one SOCK_SEQPACKET message of at most MAX_CONTROL_BYTES)
    (ahead of the request, the zygote has forked a child with a fresh request pipe and
    result pipe; it has confined itself (`confine.py`), closed every other fd and waits)
    zygote -> child    the request; the child adds the audit hook, runs the task,
                       writes one frame (`frames.py`), exits
    zygote             kills the child at the wall limit, reaps it, empties the scratch dir
    zygote -> parent   {"status": <wait status>, "timed_out": bool} with the result
                       pipe's read end (SCM_RIGHTS): the parent reads and checks the frame

So nothing a task does outlives it: no module, class, cache, decimal context
or pending `__del__` reaches the next task, and the child never holds the
parent's or the zygote's fds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import importlib
import io
import json
import math
import os
import select
import signal
import socket
import sys
from collections.abc import Callable

from eotd_jax.thoughts import frames, pot
from eotd_jax.thoughts.confine import Confinement, Limits
from eotd_jax.thoughts.outcome import Failure

MAX_CONTROL_BYTES = 1 << 16  # a request; PoT and EoT inputs are far shorter (pot.MAX_SOURCE_CHARS)
# Audit events a correct program or a lazy import raises; everything else is refused
# (a defence in depth: the kernel layers hold without it). Bound here, in the hook's
# closure, not read from module state at each event.
_ALLOWED_EVENTS = frozenset(
    {"compile", "exec", "builtins.id", "import", "marshal.loads", "sys._getframe"}
)
_WARM_PROGRAMS = (
    "import math, statistics\nans = statistics.mean([1, 2]) + math.sqrt(4) + statistics.mode([1, 1, 2])",
    "import statistics\nans = statistics.median([3, 1, 2]) + statistics.stdev([1, 2, 3])",
    "from collections import Counter, namedtuple, deque\nP = namedtuple('P', 'x y')\n"
    "ans = Counter('aab').most_common(1)[0][1] + P(1, 2).y + len(deque([1]))",
    "from datetime import datetime, timedelta\nd = datetime.strptime('2024-01-02 10:30', '%Y-%m-%d %H:%M')\n"
    "ans = len(d.strftime('%A %B %d %Y %H:%M')) + (d + timedelta(days=1)).day",
    "import itertools, functools\nans = sum(functools.reduce(lambda a, b: a * b, p) "
    "for p in itertools.permutations([1, 2, 3]))",
    "from fractions import Fraction\nfrom decimal import Decimal, ROUND_HALF_UP\n"
    "ans = Fraction(1, 3) + Fraction(str(Decimal('2.5').quantize(Decimal('1'), rounding=ROUND_HALF_UP)))",
    "import random\nrandom.seed(1)\nans = random.randint(1, 6) + len(random.sample(range(10), 3))",
    "ans = round(sum(sorted({3: 1, 1: 2}.values())) / 3, 2) + int('12') + float('1.5e3')\nprint(f'{ans:.2f}')",
)
_WARM_SYSTEMS = (
    "2*x+3=11\nans=x",
    "x**2=16\nans=x",
    "x*y=6\nx+y=5\nans=x",
    "a = 12 - 10\nb = 40 - a\nc = b * a\nd = 120 / c\nans = d + 1",
    "ans=2**0.5 + 7 % 3",
    "x ** (1/3) = 2\nans = x",
    "ans ** 3 = 27",
    "ans = x / y\nx = 3 * y\ny ** 2 = 4",
    "ans * 1.5 = 4.5",
)


class Violation(BaseException):
    """Raised by the audit hook; a BaseException so `except Exception` cannot swallow it."""


class CpuLimit(BaseException):
    """Raised by the SIGPROF timer when a task used its CPU seconds."""


class OutputLimit(BaseException):
    """Raised when a program prints more than allowed."""


def capped_print(limit: int):
    """`print` for programs: output is discarded but counted against a cap held in the closure."""
    used = 0

    def print_(*values, sep=" ", end="\n", **_):
        nonlocal used
        buffer = io.StringIO()
        for index, value in enumerate(values):
            buffer.write((sep if index else "") + str(value))
            if buffer.tell() + used > limit:
                raise OutputLimit(f"program printed more than {limit} characters")
        used += buffer.tell() + len(str(end))
        if used > limit:
            raise OutputLimit(f"program printed more than {limit} characters")

    return print_


def _audit_hook(scratch: str, python_dirs: tuple[str, ...], violations: list[str]):
    """The policy lives in this closure; module state changes nothing once it is installed."""
    allowed, scratch = _ALLOWED_EVENTS, os.path.realpath(scratch) + os.sep
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    realpath, fsdecode = os.path.realpath, os.fsdecode

    def may_open(path, mode, flags) -> bool:
        if not isinstance(path, (str, bytes)):
            return False  # an fd: never
        path = realpath(fsdecode(path))
        if (path + os.sep).startswith(scratch):
            return True
        reads = (mode is None or (isinstance(mode, str) and set(mode) <= set("rb"))) and not flags & write_flags
        return reads and path.endswith((".py", ".pyc", ".so")) and path.startswith(python_dirs)

    def hook(event: str, args: tuple) -> None:
        if event in allowed or (event == "open" and may_open(*args)):
            return
        if event == "object.__setattr__" and args[1] == "__module__":  # namedtuple names its class's module
            return
            return
        violations.append(event)
        raise Violation(f"operation {event!r} is not allowed in the sandbox")

    return hook


def _pot_task(print_limit: int) -> Callable[[str], dict]:
    return lambda source: frames.value_reply(pot.run_program(source, capped_print(print_limit)))


def _eot_task(print_limit: int) -> Callable[[str], dict]:
    eot = importlib.import_module("eotd_jax.thoughts.eot")  # sympy: only in EoT zygotes

    def solve(source: str) -> dict:
        outcome = eot.solve_system(source)
        if outcome.ok:
            return frames.value_reply(f"{outcome.value.numerator}/{outcome.value.denominator}")
        return frames.failure_reply(outcome.failure, outcome.message)

    return solve


TASKS = {"pot": (_pot_task, _WARM_PROGRAMS), "eot": (_eot_task, _WARM_SYSTEMS)}


def _warm_up(task: Callable[[str], dict], inputs: tuple[str, ...]) -> None:
    """Runs every lazy import and first-use path before any child is confined.

    Children cannot import what the zygote did not: Landlock limits reads, and
    the dropped uid may not read the interpreter's files at all.
    """
    for source in inputs:
        with contextlib.suppress(Exception):  # a failing input still warmed the paths it reached
            task(source)


def _on_cpu_limit(signum, frame):
    raise CpuLimit("CPU time limit reached")


def _run_task(task: Callable[[str], dict], request: dict, violations: list[str]) -> dict:
    signal.setitimer(signal.ITIMER_PROF, float(request["cpu_seconds"]))
    try:
        reply = task(request["source"])
    except pot.ProgramFailure as error:
        reply = frames.failure_reply(error.failure, str(error))
    except RecursionError:
        reply = frames.failure_reply(Failure.ERROR, "RecursionError: maximum recursion depth exceeded")
    except CpuLimit as error:
        reply = frames.failure_reply(Failure.TIMEOUT, str(error))
    except MemoryError:
        reply = frames.failure_reply(Failure.MEMORY, "memory limit reached")
    except OutputLimit as error:
        reply = frames.failure_reply(Failure.OUTPUT_LIMIT, str(error))
    except Violation as error:
        reply = frames.failure_reply(Failure.FORBIDDEN, str(error))
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
    if violations:  # refused even if the program caught the exception
        reply = frames.failure_reply(Failure.FORBIDDEN, f"operation {violations[0]!r} is not allowed in the sandbox")
    return reply


def _child(task: Callable[[str], dict], request_fd: int, reply_fd: int, confinement: Confinement):
    """Runs in the forked child: confines itself, then waits for its one request; never returns."""
    code = 70
    try:
        confinement.apply()
        keep = sorted((request_fd, reply_fd))
        os.closerange(3, keep[0])  # the control socket, the zygote's files, other children's pipes
        os.closerange(keep[0] + 1, keep[1])
        os.closerange(keep[1] + 1, 1 << 20)
        request = json.loads(_read_to_end(request_fd))
        os.close(request_fd)
        violations: list[str] = []
        sys.addaudithook(_audit_hook(confinement.scratch, confinement.read_dirs, violations))
        reply = _run_task(task, request, violations)
        os.write(reply_fd, frames.encode(reply))
        code = 0
    finally:
        os._exit(code)


def _read_to_end(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _empty(scratch: str) -> None:
    """Removes the files the task left in scratch (Landlock lets it create nothing else).

    A scratch dir that does not empty ends the zygote, so no task sees another's files.
    """
    for entry in os.scandir(scratch):
        os.unlink(entry.path)


@dataclasses.dataclass
class _Spare:
    """A child forked and confined ahead of its task, blocked reading its request."""

    pid: int
    pidfd: int
    request_fd: int
    reply_fd: int


def _fork_spare(task: Callable[[str], dict], confinement: Confinement) -> _Spare:
    request_read, request_write = os.pipe()
    reply_read, reply_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        _child(task, request_read, reply_write, confinement)
    os.close(request_read)
    os.close(reply_write)
    return _Spare(pid, os.pidfd_open(pid), request_write, reply_read)


def _serve_one(control: socket.socket, message: bytes, child: _Spare, confinement: Confinement) -> None:
    """Hands one request to the waiting child, watches its wall clock, reaps it, empties scratch.

    The child's result pipe goes to the parent with the exit status: the zygote never reads it.
    A reply fits the pipe's buffer (frames.MAX_FRAME_BYTES); a child writing more blocks until killed.
    """
    try:
        os.write(child.request_fd, message)  # at most MAX_CONTROL_BYTES: one pipe buffer
    except BrokenPipeError:
        pass  # the child failed to confine itself and exited: its status says so
    os.close(child.request_fd)
    request = json.loads(message)
    timed_out = not select.select([child.pidfd], [], [], float(request["wall_seconds"]))[0]
    if timed_out:
        signal.pidfd_send_signal(child.pidfd, signal.SIGKILL)
    _, status, usage = os.wait4(child.pid, 0)
    # The kernel's SIGKILL at the hard RLIMIT_CPU (a program that ignored SIGXCPU) is a timeout too, not a crash.
    cpu_killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL \
        and usage.ru_utime + usage.ru_stime >= math.ceil(float(request["cpu_seconds"])) + 1
    timed_out = timed_out or cpu_killed
    os.close(child.pidfd)
    _empty(confinement.scratch)
    try:
        socket.send_fds(control, [json.dumps({"status": status, "timed_out": timed_out}).encode()], [child.reply_fd])
    finally:
        os.close(child.reply_fd)


def main(kind: str, control_fd: int, scratch_root: str, memory_bytes: int, file_bytes: int, print_limit: int,
         cpu_seconds: float) -> None:
    """The zygote of one kind of task ("pot" or "eot"): PoT zygotes never load sympy, so they fork faster."""
    control = socket.socket(fileno=control_fd)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    sys.dont_write_bytecode = True
    package_dir = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    python_dirs = {os.path.realpath(p) for p in sys.path if p and os.path.isdir(p)}
    python_dirs -= {os.path.dirname(package_dir)}  # the checkout's root: only the package itself
    confinement = Confinement(
        Limits(memory_bytes, file_bytes, cpu_seconds),
        tuple(sorted(python_dirs | {package_dir})),
        os.path.join(scratch_root, f"zygote-{os.getpid()}"),
    )
    make_task, warm_inputs = TASKS[kind]
    task = make_task(print_limit)
    _warm_up(task, warm_inputs)  # before the namespaces: a user namespace may lose read access
    confinement.prepare()
    signal.signal(signal.SIGPROF, _on_cpu_limit)
    gc.collect()
    gc.freeze()  # the warmed heap stays shared: collections in children skip it
    control.send(json.dumps({"ready": True, "layers": confinement.report()}).encode())
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    while True:
        child = _fork_spare(task, confinement)  # forks and confines while the parent is busy elsewhere
        message = control.recv(MAX_CONTROL_BYTES)
        if not message:
            return  # the parent closed the socket (or died); the spare dies with this process
        _serve_one(control, message, child, confinement)
