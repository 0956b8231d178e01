"""Sandbox zygote: warms up once, then forks one confined child per task.

Started by `sandbox.SandboxPool` as `python -I -c ...` with a stripped
environment and one SOCK_SEQPACKET control socket. The zygote itself never runs
untrusted code. Each zygote has a flavour (`FLAVOURS`): "plain" zygotes run PoT
programs that use no sympy and never load it, so they fork faster; "sympy"
zygotes solve EoT systems and run the PoT programs that import sympy.
Start-up: /dev/null on fds 0-2, imports and warm-up of every lazy path, then
`confine.Confinement.prepare()` (Landlock rules, the seccomp filter,
namespaces, scratch), `gc.freeze()` so children share the warmed heap
copy-on-write. Per task:

    parent -> zygote   {"kind": "pot"|"eot", "source": str, "cpu_seconds": float, "wall_seconds": float}
                       (one SOCK_SEQPACKET message of at most MAX_CONTROL_BYTES)
    (ahead of the request, the zygote has forked a child with a fresh request pipe and
    result pipe; it has confined itself (`confine.py`), closed every other fd and waits)
    zygote -> child    the request; the child reads and compiles the input (none of its code
                       runs), adds the audit hook, runs it, writes one frame (`frames.py`), exits
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
FLAVOURS = ("plain", "sympy")
# Audit events a correct program or a lazy import raises; everything else is refused
# (a defence in depth: the kernel layers hold without it). Bound here, in the hook's
# closure, not read from module state at each event. For PoT, "compile" is checked apart.
_ALLOWED_EVENTS = frozenset(
    {"compile", "exec", "builtins.id", "import", "marshal.loads", "sys._getframe", "array.__new__"}
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
    "ans = ['1,234']",
)
_WARM_SYMPY_PROGRAMS = (
    "from sympy import symbols, Eq, solve, Rational\nx, y = symbols('x y')\n"
    "ans = solve([Eq(x + y, 10), Eq(x - y, Rational(1, 2))], [x, y])[x]",
    "from sympy import symbols, solve, sqrt, simplify, expand, factor\nx = symbols('x')\n"
    "ans = solve(x**2 - 2, x)[1] + simplify(sqrt(8)) + len(str(expand((x + 1)**2) - factor(x**2 - 1)))",
    "import sympy as sp\nx = sp.Symbol('x', positive=True)\nans = sp.nsolve(x**3 - x - 1, x, 1.3) "
    "+ sp.N(sp.pi, 10) + sp.linsolve([x - 3], [x]).args[0][0]",
    "from sympy import isprime, factorint, binomial, Matrix, divisors\n"
    "ans = isprime(97) + len(factorint(360)) + binomial(5, 2) + Matrix([[1, 2], [3, 4]]).det() + len(divisors(12))",
    "from sympy import symbols, solve\nx = symbols('x')\nans = solve(x * 2 - 10)",
    "from sympy import symbols, integrate, diff, limit, series, summation, simplify, sin, exp, oo, gamma\n"
    "x, n = symbols('x n')\nans = integrate(x**2 * exp(x), (x, 0, 1)) + integrate(sin(x)**2, x).subs(x, 0) "
    "+ limit(sin(x) / x, x, 0) + series(exp(x), x, 0, 3).removeO().subs(x, 1) + diff(x**3, x).subs(x, 2) "
    "+ summation(1 / n**2, (n, 1, oo)) + simplify(gamma(x + 1) / gamma(x)).subs(x, 2)",
    "from sympy import primerange, factorint, nextprime, totient, Point, Triangle, solveset, S, symbols\n"
    "x = symbols('x')\nans = len(list(primerange(1, 1000))) + len(factorint(nextprime(10**9) * 7)) + totient(36) "
    "+ Triangle(Point(0, 0), Point(4, 0), Point(0, 3)).area + len(solveset(x**2 - 4, x, S.Reals))",
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

# A task reads its input (parses, screens, compiles: none of the input's code runs) and returns
# what runs it; the child adds the audit hook between the two.
Task = Callable[[str], Callable[[], dict]]


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


def _audit_hook(scratch: str, python_dirs: tuple[str, ...], violations: list[str],
                screen: Callable[[str], object] | None = None):
    """The policy lives in this closure; module state changes nothing once it is installed.

    No object of the program runs here: every argument the checks read must be exactly a `str`,
    `bytes` or `int` (a subclass's `__getitem__` or `__eq__` would run inside the hook, where it
    could reach this closure), and paths are made plain `str` before any check. With `screen`
    (PoT), a string compiled while the program runs (`singledispatch` evaluating an annotation,
    `namedtuple`, sympy) must pass it, as the program did; the program itself was compiled before
    the hook was added.
    """
    allowed = _ALLOWED_EVENTS if screen is None else _ALLOWED_EVENTS - {"compile"}
    scratch = os.path.realpath(scratch) + os.sep
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    realpath, fsdecode, sep = os.path.realpath, os.fsdecode, os.sep
    screening = False

    def plain_path(path) -> str | None:
        if type(path) is bytes:
            return realpath(fsdecode(path))
        return realpath(path) if type(path) is str else None  # an fd, a PathLike, a subclass: never

    def may_open(path, mode, flags) -> bool:
        path = plain_path(path)
        if path is None or not (mode is None or type(mode) is str) or type(flags) is not int:
            return False
        if (path + sep).startswith(scratch):
            return True
        reads = (mode is None or set(mode) <= set("rb")) and not flags & write_flags
        return reads and path.endswith((".py", ".pyc", ".so")) and path.startswith(python_dirs)

    def may_compile(source, filename) -> bool:
        nonlocal screening
        if screening:
            return True  # the screen's own parse of the source it is checking
        path = plain_path(filename)
        if path is not None and path.endswith(".py") and path.startswith(python_dirs):
            return True  # a module's source, imported
        if type(source) is bytes:
            try:
                source = source.decode()
            except UnicodeDecodeError:
                return False
        if type(source) is not str:
            return False  # a syntax tree: only the program's own, compiled before this hook
        screening = True
        try:
            screen(source)
            return True
        except Exception:  # noqa: BLE001 - any reason the screen refuses (or fails) is a refusal
            return False
        finally:
            screening = False

    def hook(event: str, args: tuple) -> None:
        if event in allowed:
            return
        if len(args) == 3 and (
            (event == "open" and may_open(*args))
            or (event == "object.__setattr__" and type(args[1]) is str and args[1] == "__module__")
        ):  # namedtuple names its class's module
            return
        if event == "compile" and len(args) == 2 and may_compile(*args):
            return
        violations.append(event)
        raise Violation(f"operation {event!r} is not allowed in the sandbox")

    return hook


def _pot_task(print_limit: int, modules) -> Task:
    def read(source: str) -> Callable[[], dict]:
        code = pot.compile_program(source)
        return lambda: frames.value_reply(pot.run_compiled(code, capped_print(print_limit), modules))

    return read


def _eot_task() -> Task:
    eot = importlib.import_module("eotd_jax.thoughts.eot")  # sympy: only in sympy zygotes

    def solve(source: str) -> dict:
        outcome = eot.solve_system(source)
        if outcome.ok:
            return frames.value_reply(outcome.value)
        return frames.failure_reply(outcome.failure, outcome.message)

    return lambda source: lambda: solve(source)


def make_tasks(flavour: str, print_limit: int) -> dict[str, Task]:
    """The tasks a zygote of this flavour serves, by kind."""
    if flavour == "plain":
        return {"pot": _pot_task(print_limit, pot.MODULES)}
    return {"pot": _pot_task(print_limit, pot.sympy_modules()), "eot": _eot_task()}


_WARM_INPUTS = {"plain": {"pot": _WARM_PROGRAMS}, "sympy": {"pot": _WARM_SYMPY_PROGRAMS, "eot": _WARM_SYSTEMS}}


def _warm_up(tasks: dict[str, Task], flavour: str) -> None:
    """Runs every lazy import and first-use path before any child is confined.

    Children import what the zygote did not only from the dirs Landlock lets them read, and
    a dropped uid may not read the interpreter's files at all: warming up also keeps forks fast.
    """
    for kind, inputs in _WARM_INPUTS[flavour].items():
        for source in inputs:
            with contextlib.suppress(Exception):  # a failing input still warmed the paths it reached
                tasks[kind](source)()


def _on_cpu_limit(signum, frame):
    raise CpuLimit("CPU time limit reached")


def _run_task(tasks: dict[str, Task], request: dict, violations: list[str],
              add_audit_hook: Callable[[], None] | None = None) -> dict:
    """Reads the input, calls `add_audit_hook` (if given), runs the input, all under the request's CPU timer.

    The hook is made and added by `add_audit_hook`, so no frame the program can walk to holds it.
    """
    signal.setitimer(signal.ITIMER_PROF, float(request["cpu_seconds"]))
    try:
        run = tasks[request["kind"]](request["source"])
        if add_audit_hook is not None:
            add_audit_hook()
        reply = run()
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


def _child(tasks: dict[str, Task], request_fd: int, reply_fd: int, confinement: Confinement):
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
        screen = pot.screen if request["kind"] == "pot" else None
        add_hook = lambda: sys.addaudithook(  # noqa: E731 - the hook itself is never bound to a name here
            _audit_hook(confinement.scratch, confinement.read_dirs, violations, screen))
        reply = _run_task(tasks, request, violations, add_hook)
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


def _fork_spare(tasks: dict[str, Task], confinement: Confinement) -> _Spare:
    request_read, request_write = os.pipe()
    reply_read, reply_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        _child(tasks, request_read, reply_write, confinement)
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


def main(flavour: str, control_fd: int, scratch_root: str, memory_bytes: int, file_bytes: int, print_limit: int,
         cpu_seconds: float) -> None:
    """A zygote of one flavour (`FLAVOURS`); `cpu_seconds` is the most any of its tasks may use (the kernel's
    backstop; each request carries its own timer)."""
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
    tasks = make_tasks(flavour, print_limit)
    _warm_up(tasks, flavour)  # before the namespaces: a user namespace may lose read access
    confinement.prepare()
    signal.signal(signal.SIGPROF, _on_cpu_limit)
    gc.collect()
    gc.freeze()  # the warmed heap stays shared: collections in children skip it
    control.send(json.dumps({"ready": True, "layers": confinement.report()}).encode())
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    while True:
        child = _fork_spare(tasks, confinement)  # forks and confines while the parent is busy elsewhere
        message = control.recv(MAX_CONTROL_BYTES)
        if not message:
            return  # the parent closed the socket (or died); the spare dies with this process
        _serve_one(control, message, child, confinement)
