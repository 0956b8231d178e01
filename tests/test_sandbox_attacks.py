"""Known escapes and their relatives, tried as an attacker would: each fails closed with its reason,
within seconds; the pool then serves the next task correctly; nothing is written outside
scratch; the API key stays unread; the parent lives.

Two attackers:
- `pool`: a screened program (what a teacher or student can submit);
- `escaped`: a program that already beat the static screen and the restricted builtins
  (real `open`, `__import__`, `os`, `ctypes`...), with the child's audit hook on or off.
  It models the `match`-class escape and audit-policy replacement: only the
  kernel layers and the parent's checks stand. It is the real pool, started with a
  bootstrap that swaps `pot.run_program` for a bare `exec` in each zygote.

When run as root, `test_the_attacks_hold_as_an_ordinary_user` runs this module again as uid 65534.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import operator
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest

from eotd_jax.thoughts import pot, sandbox
from eotd_jax.thoughts.outcome import Failure
from eotd_jax.thoughts.sandbox import SandboxPool

ROOT = Path(__file__).resolve().parents[1]
SECRET = "sk-eotd-test-secret-4f9a"
ESCAPED_BOOTSTRAP = (
    "import sys; sys.path.insert(0, {root!r})\n"
    "from eotd_jax.thoughts import pot, worker\n"
    "from eotd_jax.thoughts.outcome import Failure\n"
    "def run_compiled(code, print_function, modules):\n"
    "    namespace = {{'__name__': '__main__'}}\n"
    "    try:\n"
    "        exec(code, namespace)\n"
    "    except Exception as error:\n"
    "        raise pot.ProgramFailure(Failure.ERROR, f'{{type(error).__name__}}: {{error}}') from None\n"
    "    return pot.answer_value(namespace['ans'])\n"
    "pot.compile_program = lambda source: compile(source, '<attack>', 'exec')\n"
    "pot.run_compiled = run_compiled\n"
    "if HOOK_OFF: worker._audit_hook = lambda *_: (lambda event, args: None)\n"
    "worker.main{args!r}"
)
OPEN_FDS = (
    "import os, stat\n"
    "def open_fds():\n"
    "    found = {}\n"
    "    for fd in range(64):\n"
    "        try:\n"
    "            found[fd] = stat.S_IFMT(os.fstat(fd).st_mode)\n"
    "        except OSError:\n"
    "            pass\n"
    "    return found\n"
    "reply_fds = [fd for fd, kind in open_fds().items() if fd > 2 and kind == stat.S_IFIFO]\n"
)


LIBC = (
    "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
    "def check(result):\n"
    "    if result < 0:\n"
    "        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))\n"
)


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    """World-writable places outside scratch: only the sandbox, not file modes, keeps writes out.

    In /dev/shm when there is one: as root the children see a private /tmp, and a target
    there would test the mount namespace only, not Landlock.
    """
    base = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else tmp_path_factory.getbasetemp()
    directory = Path(tempfile.mkdtemp(prefix="sandbox-targets-", dir=base))
    directory.chmod(0o777)
    module = directory / "victim.py"
    module.write_text("VALUE = 1\n")
    module.chmod(0o666)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module", params=["hook on", "hook off"])
def escaped(request):
    bootstrap = ESCAPED_BOOTSTRAP.replace("HOOK_OFF", str(request.param == "hook off"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_API_KEY", SECRET)  # in the parent's environment, as in data_gen
        patch.setattr(sandbox, "_BOOTSTRAP", bootstrap)
        with SandboxPool(num_workers=1, cpu_seconds=1.0) as pool:
            yield pool


@pytest.fixture(scope="module")
def sequential_pool():
    with SandboxPool(num_workers=1) as pool:
        yield pool


def requires(pool: SandboxPool, layer: str) -> None:
    """Skips, saying why, where this kernel or machine lacks a layer (the pool warns about it too)."""
    if f"{layer} on" not in pool.layers:
        pytest.skip(f"{layer} is not active here ({pool.layers}); what it stops is not confined")


def serves_correctly(pool: SandboxPool) -> None:
    assert pool.run_program("ans = 6 * 7").value == 42
    assert pool.solve_equations("2 * x + 3 = 11\nans = x").value == 4


def zygote_pids(pool: SandboxPool) -> set[int]:
    return {zygote.process.pid for zygote in pool._all}


def run_attack(pool: SandboxPool, source: str, expected: set[Failure], budget: float = 8.0):
    pids = zygote_pids(pool)
    start = time.monotonic()
    outcome = pool.run_program(source)
    assert time.monotonic() - start < budget, outcome
    assert outcome.failure in expected, outcome
    assert outcome.message
    serves_correctly(pool)
    assert zygote_pids(pool) == pids  # the attack cost one child, not a zygote
    return outcome


# --- the screen: known escapes and their relatives are refused before anything runs ----------------

SCREENED = {
    "match class __globals__": (
        "import functools, statistics\no = list(functools.singledispatch(lambda x: 0).registry)[0]\n"
        "match statistics.mean:\n    case o(__globals__=g):\n        ans = 1\n"
    ),
    "match class frame attribute": "def g():\n    yield 1\nmatch g():\n    case object(gi_frame=f):\n        ans = 1\n",
    "format field path": "ans = '{0.__class__.__mro__}'.format(1)",
    "format nested spec": "ans = '{0:{1.__class__}}'.format(1, 2)",
    "format computed template": "t = '{0.' + '__class__}'\nans = t.format(1)",
    "format_map": "ans = '{x}'.format_map({'x': 1})",
    "dunder del": "class A:\n    def __del__(self):\n        pass\nans = 1",
    "dunder getattr": "class A:\n    def __getattr__(self, name):\n        return 1\nans = A().x",
    "init_subclass": "class A:\n    def __init_subclass__(cls):\n        pass\nans = 1",
    "generator frame": "def g():\n    yield 1\nans = g().gi_frame",
    "coroutine frame": "async def c():\n    pass\nans = c().cr_frame",
    "subclasses": "ans = len(int.__subclasses__())",
    "gc": "import gc\nans = len(gc.get_objects())",
    "ctypes": "import ctypes\nans = 1",
    "signal": "import signal\nans = 1",
    "resource": "import resource\nans = 1",
    "os.fork": "import os\nos.fork()\nans = 1",
    "threads": "import threading\nans = 1",
    "private import": "from fractions import _gcd\nans = 1",
    # attributes named in strings, as a class: functions that take attribute names, uncalled or
    # indirect `.format`, `__getattribute__`, `__match_args__`
    "update_wrapper names __globals__": (
        "import functools, statistics\ndef w():\n    pass\n"
        "functools.update_wrapper(w, statistics.mean, assigned=(), updated=('__globals__',))\nans = len(sys.modules)"
    ),
    "wraps names __globals__": (
        "import functools, statistics\n@functools.wraps(statistics.mean, assigned=(), updated=('__globals__',))\n"
        "def w():\n    pass\nans = 1"
    ),
    "update_wrapper imported": "from functools import update_wrapper\nans = 1",
    "wraps imported": "from functools import wraps as w\nans = 1",
    "update_wrapper in a partial": (
        "import functools\np = functools.partial(functools.update_wrapper, updated=('__globals__',))\nans = 1"
    ),
    "format bound, called later": "f = '{0.__class__.__base__}'.format\nans = len(f(1))",
    "format mapped": "ans = len(list(map('{0.__class__}'.format, [1])))",
    "str.format": "ans = len(str.format('{0.__class__}', 1))",
    "format of a format": "ans = len('{0}'.format.__call__('x'))",
    "__getattribute__": "import statistics\nans = statistics.mean.__getattribute__('__globals__')",
    "object.__getattribute__": "ans = object.__getattribute__(1, '__class__')",
    "__match_args__": "class P:\n    __match_args__ = ('__globals__',)\nmatch len:\n    case P(g):\n        ans = 1\n",
    "operator.attrgetter": "from operator import attrgetter\nans = attrgetter('__class__')(1)",
    "operator.methodcaller": "import operator\nans = operator.methodcaller('__reduce_ex__', 2)(1)",
    "sympy beyond its offer": "from sympy import lambdify\nans = 1",
    "sympy attribute beyond its offer": "import sympy\nans = sympy.lambdify",
}


@pytest.mark.parametrize("name", SCREENED)
def test_the_screen_refuses(pool, name):
    outcome = run_attack(pool, SCREENED[name], {Failure.FORBIDDEN})
    assert "not allowed" in outcome.message


# Strings compiled while a program runs pass the same screen as the program (the audit hook checks them).
COMPILED_AT_RUN_TIME = {
    "singledispatch annotation": (
        "import functools\n@functools.singledispatch\ndef g(x):\n    return 0\n"
        "def h(x: 'int if ().__class__.__base__.__subclasses__() else int'):\n    return 1\ng.register(h)\nans = 1"
    ),
    "singledispatch annotation, caught": (
        "import functools\n@functools.singledispatch\ndef g(x):\n    return 0\n"
        "def h(x: '__import__(\"os\").getpid() and int'):\n    return 1\n"
        "try:\n    g.register(h)\nexcept BaseException:\n    pass\nans = 1"
    ),
    "sympify of a dunder walk": "import sympy\nans = sympy.sympify('().__class__.__base__')",
    "sympy given a string": "from sympy import solve\nans = solve('__import__(\"os\").getpid()')",
}


@pytest.mark.parametrize("name", COMPILED_AT_RUN_TIME)
def test_strings_compiled_at_run_time_pass_the_screen(pool, name):
    outcome = run_attack(pool, COMPILED_AT_RUN_TIME[name], {Failure.FORBIDDEN})
    assert "'compile' is not allowed" in outcome.message


def test_a_star_import_binds_no_withheld_name(pool):
    outcome = pool.run_program("from functools import *\nans = update_wrapper")
    assert outcome.failure is Failure.ERROR and "NameError" in outcome.message, outcome
    assert pool.run_program("from functools import *\nans = reduce(lambda a, b: a + b, [1, 2])").value == 3


def test_no_offered_function_reaches_attributes_named_by_its_arguments():
    """The class guard: every pure-Python function and method a program can reach through the module
    proxies is scanned for attribute access by a computed name and for strings turned into code; each one
    found is withheld or reviewed (`pot.WITHHELD` says which and why)."""
    reviewed = {"functools.total_ordering", "functools.lru_cache", "functools.singledispatchmethod",
                "functools.singledispatch", "collections.namedtuple", "statistics.namedtuple", "functools.namedtuple"}
    dynamic = {"getattr", "setattr", "delattr", "hasattr"}
    by_name = {"attrgetter", "methodcaller", "eval", "exec", "compile", "get_type_hints", "__import__",
               *(name for names in pot.WITHHELD.values() for name in names)}

    def reaches_by_name(function) -> bool:
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
        except (OSError, TypeError):
            return False  # C code: reviewed with its module
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in by_name:
                return True
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in dynamic:
                if len(node.args) < 2 or not isinstance(node.args[1], ast.Constant):
                    return True
        return False

    found = set()
    for module_name, proxy in pot.MODULES.items():
        assert not set(vars(proxy)) & pot.WITHHELD.get(module_name, set())
        for name, value in vars(proxy).items():
            members = [(name, value)]
            if isinstance(value, type):
                members += [(f"{name}.{k}", v) for k, v in vars(value).items()]
            for member, function in members:
                function = getattr(function, "__func__", getattr(function, "fget", function))
                if inspect.isfunction(function) and reaches_by_name(function):
                    found.add(f"{module_name}.{member.split('.')[0]}")
            assert value not in (getattr, setattr, delattr, eval, exec, compile, open, vars, globals, type, object)
            assert type(value) not in (operator.attrgetter, operator.methodcaller)
    assert found == reviewed


def test_the_screen_still_accepts_correct_programs(pool):
    programs = {
        "class Box:\n    def __init__(self, n):\n        self.n = n\n    def __add__(self, o):\n"
        "        return Box(self.n + o.n)\nans = (Box(2) + Box(3)).n": 5,
        "ans = float('{:.2f}'.format(2.345))": 2.35,
        "ans = int('{0}{1}'.format(4, 2))": 42,
        "match (1, 2):\n    case (a, b):\n        ans = a + b": 3,
        "from fractions import Fraction\nmatch Fraction(3, 4):\n    case Fraction(numerator=n):\n        ans = n": 3,
        "import functools\n@functools.singledispatch\ndef g(x):\n    return 0\n"
        "def h(x: 'int'):\n    return 1\ng.register(h)\nans = g(5) + 1": 2,
        "from sympy import sympify\nans = sympify('2 + 3') * 2": 10,
        "import functools\n@functools.total_ordering\nclass V:\n    def __init__(self, n):\n        self.n = n\n"
        "    def __eq__(self, o):\n        return self.n == o.n\n"
        "    def __lt__(self, o):\n        return self.n < o.n\n"
        "ans = int(V(3) >= V(2))": 1,
    }
    for source, expected in programs.items():
        outcome = pool.run_program(source)
        assert outcome.ok and float(outcome.value) == pytest.approx(expected), (source, outcome)


# --- correct work passes in the confined child ----------------------------------------------------

CORRECT = {
    "namedtuple": ("from collections import namedtuple\nP = namedtuple('P', 'x y')\nans = P(1, 2).y", 2),
    "Counter.most_common": ("from collections import Counter\nans = Counter('abcab').most_common(1)[0][1]", 2),
    "statistics.mode": ("import statistics\nans = statistics.mode([1, 2, 2, 3])", 2),
    "statistics.median": ("import statistics\nans = statistics.median([5, 1, 3])", 3),
    "strptime": ("from datetime import datetime\nans = datetime.strptime('2024-03-07', '%Y-%m-%d').day", 7),
    "strftime": ("from datetime import date\nans = int(date(2024, 3, 7).strftime('%d'))", 7),
    "heapq via nsmallest": ("from collections import Counter\nans = len(Counter([1, 1, 2]).most_common())", 2),
    "decimal quantize": (
        "from decimal import Decimal, ROUND_HALF_UP\nans = Decimal('37.45').quantize(Decimal('0.1'), ROUND_HALF_UP)",
        37.5,
    ),
    "random": ("import random\nrandom.seed(3)\nans = 1 <= random.randint(1, 6) <= 6", None),
}


@pytest.mark.parametrize("name", CORRECT)
def test_correct_programs_pass_in_the_confined_child(pool, name):
    source, expected = CORRECT[name]
    outcome = pool.run_program(source)
    if expected is None:
        assert outcome.failure is Failure.NOT_A_NUMBER  # a bool: ran, and was refused only as an answer
    else:
        assert outcome.ok and float(outcome.value) == pytest.approx(expected), outcome


def test_equations_needing_lazy_sympy_paths_solve(pool):
    assert pool.solve_equations("x ** (1/3) = 2\nans = x").value == 8
    assert pool.solve_equations("ans ** 3 = 27").value == 3


# --- no task can change a later one's result --------------------------------------------------------

MUTATIONS = [
    "import math\nmath.sqrt = lambda x: 5\nans = 1",
    "import fractions\nfractions.Fraction.numerator = 42\nans = 1",
    "from decimal import getcontext\ngetcontext().prec = 2\nans = 1",
    "print.limit = 10**12\nans = 1",
    "import statistics\nstatistics.mean = lambda data: 99\nans = 1",
    "import random\nrandom.seed(0)\nans = random.randint(1, 1000)",
    "import functools\nfunctools.reduce = None\nans = 1",
]
PROBES = [
    "import math\nans = math.sqrt(16)",
    "from fractions import Fraction\nans = Fraction(1, 3) + Fraction(1, 6)",
    "from decimal import Decimal\nans = Decimal(75) / Decimal(2)",
    "import statistics\nans = statistics.mean([1, 2, 3, 4])",
    "import random\nrandom.seed(5)\nans = random.randint(1, 10**6)",
    "import functools\nans = functools.reduce(lambda a, b: a * b, [1, 2, 3, 4])",
]


def test_no_task_changes_a_later_ones_result(sequential_pool):
    before = [sequential_pool.run_program(p) for p in PROBES]
    eot_before = sequential_pool.solve_equations("x / 3 = 12.5\nans = x")
    assert all(o.ok for o in before) and eot_before.value == 37.5
    for mutation in MUTATIONS:
        assert sequential_pool.run_program(mutation).ok, mutation
    assert [sequential_pool.run_program(p) for p in PROBES] == before
    assert sequential_pool.solve_equations("x / 3 = 12.5\nans = x") == eot_before
    printing = "for _ in range(100):\n    print('x' * 1000)\nans = 1"
    assert sequential_pool.run_program("print.limit = 10**12\n" + printing).failure is Failure.OUTPUT_LIMIT


def test_a_del_in_a_cycle_cannot_reach_the_next_task(escaped):
    cycle = "class A:\n    def __del__(self):\n        while True:\n            pass\na = A()\na.me = a\nans = 1"
    assert escaped.run_program(cycle).value == 1
    start = time.monotonic()
    assert escaped.run_program("ans = 2").value == 2
    assert time.monotonic() - start < 2.0


# --- the escaped attacker: only the kernel layers and the parent's checks stand -------------------


def test_forged_replies_cannot_reach_other_tasks(escaped):
    forged = frame(b'{"value": "99"}')
    source = OPEN_FDS + f"for fd in range(3, 64):\n    try:\n        os.write(fd, {forged!r})\n    except OSError:\n" \
        "        pass\nans = 1"
    outcome = run_attack(escaped, source, {Failure.CRASHED})  # two frames: not one reply
    assert "malformed reply" in outcome.message
    for _ in range(3):
        assert escaped.run_program("ans = 5").value == 5


def test_the_child_holds_no_protocol_fd(escaped):
    source = OPEN_FDS + "ans = len([fd for fd in open_fds() if fd > 2]) * 100 + len(reply_fds)"
    assert escaped.run_program(source).value == 101  # its own result pipe, nothing else
    reading = "import os\nwhile True:\n    os.read(0, 4096)\n"  # the old request-fd takeover loop
    run_attack(escaped, reading, {Failure.TIMEOUT})


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"\0\0\0\x02[]", "not an object"),
        (frame(b'{"value": 42}'), "unexpected keys"),
        (frame(b'{"value": "1"}') + b"x", "announced"),
        (b"\xff\xff\xff\xff", "oversized"),
        (frame(b'{"value": "1", "extra": 1}'), "unexpected keys"),
        (frame(b'{"failure": "crashed", "message": ""}'), "unexpected keys"),
        (frame(b"not json"), "not JSON"),
        (b"\0\0", "no reply"),
    ],
)
def test_malformed_frames_are_crashed_and_never_raise(escaped, payload, reason):
    source = OPEN_FDS + f"os.write(reply_fds[0], {payload!r})\nos._exit(0)\n"
    outcomes = escaped.map("pot", [source, "ans = 3"])
    assert outcomes[0].failure is Failure.CRASHED and reason in outcomes[0].message, outcomes[0]
    assert outcomes[1].value == 3
    serves_correctly(escaped)


def test_writes_outside_scratch_fail(escaped, targets):
    victim = targets / "victim.py"
    digest = hashlib.sha256(victim.read_bytes()).hexdigest()
    checkout_file = ROOT / "eotd_jax" / "thoughts" / "pot.py"
    checkout_digest = hashlib.sha256(checkout_file.read_bytes()).hexdigest()
    attacks = [
        f"import os\nos.open({str(targets / 'new')!r}, os.O_WRONLY | os.O_CREAT, 0o666)\nans = 1",
        f"import os\nos.open({str(victim)!r}, os.O_WRONLY | os.O_TRUNC)\nans = 1",
        f"open({str(victim)!r}, 'w').write('import os; os.system(\"id\")')\nans = 1",
        f"open({str(checkout_file)!r}, 'a').write('# pwned')\nans = 1",
        f"import os\nos.rename({str(victim)!r}, {str(targets / 'moved.py')!r})\nans = 1",
        f"import os\nos.unlink({str(victim)!r})\nans = 1",
        f"import os\nos.mkdir({str(targets / 'dir')!r})\nans = 1",
    ]
    for source in attacks:
        outcome = run_attack(escaped, source, {Failure.FORBIDDEN, Failure.ERROR})
        assert "denied" in outcome.message or "not permitted" in outcome.message or "not allowed" in outcome.message
    assert sorted(p.name for p in targets.iterdir()) == ["victim.py"]
    assert hashlib.sha256(victim.read_bytes()).hexdigest() == digest
    assert hashlib.sha256(checkout_file.read_bytes()).hexdigest() == checkout_digest


@pytest.mark.parametrize(
    "name, source",
    [
        ("mknod outside", "import os, stat\nos.mknod(TARGETS + '/node', 0o666 | stat.S_IFIFO)\nans = 1"),
        ("mknod in scratch", "import os, stat\nos.mknod('node', 0o666 | stat.S_IFIFO)\nans = 1"),
        ("kill the parent", "import os\nos.kill(PARENT, 9)\nans = 1"),
        ("kill the zygote", "import os\nos.kill(os.getppid(), 9)\nans = 1"),
        ("ctypes kill", "import ctypes\nctypes.CDLL(None).kill(PARENT, 9)\nans = 1"),
        ("fork", "import os\nos.fork()\nans = 1"),
        ("exec", "import os\nos.execv('/bin/sh', ['sh', '-c', 'id'])\nans = 1"),
        ("thread", "import _thread\n_thread.start_new_thread(print, ())\nans = 1"),
        ("socket", "import socket\nsocket.socket().connect(('127.0.0.1', 22))\nans = 1"),
        ("raise rlimit", "import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))\nans = 1"),
        ("chmod", "import os\nos.chmod(TARGETS + '/victim.py', 0o777)\nans = 1"),
        ("symlink out", "import os\nos.symlink('/etc/passwd', 'link')\nans = 1"),
        ("SIGIO to the parent", LIBC + "check(libc.fcntl(1, 8, PARENT))\nans = 1"),  # F_SETOWN
        ("ioctl", LIBC + "check(libc.ioctl(0, 0x5412, ctypes.c_char_p(b'x')))\nans = 1"),  # TIOCSTI
        ("libc kill, signal 0", LIBC + "check(libc.kill(PARENT, 0))\nans = 1"),
        ("prctl", LIBC + "check(libc.prctl(4, 1, 0, 0, 0))\nans = 1"),  # PR_SET_DUMPABLE
    ],
)
def test_processes_signals_devices_and_sockets_are_refused(escaped, targets, name, source):
    requires(escaped, "seccomp")
    source = source.replace("PARENT", str(os.getpid())).replace("TARGETS", repr(str(targets)))
    outcome = run_attack(escaped, source, {Failure.FORBIDDEN, Failure.ERROR})
    assert outcome.failure is Failure.FORBIDDEN or "denied" in outcome.message or "not permitted" in outcome.message
    assert not (targets / "node").exists()
    assert os.stat(targets / "victim.py").st_mode & 0o777 == 0o666


@pytest.mark.parametrize(
    "name, source",
    [
        ("parent environ", "ans = int(SECRET in open(f'/proc/{PARENT}/environ').read())"),
        ("zygote's parent environ", "import os\nppid = open(f'/proc/{os.getppid()}/status').read()\nans = 0"),
        ("own memory", "f = open('/proc/self/mem', 'r+b')\nans = 1"),
        ("other tasks' scratch", "import os\nans = len(os.listdir('..'))"),
        ("private /tmp", "import os\nans = len(os.listdir('/tmp'))"),
        ("home", "import os\nans = len(os.listdir(os.path.expanduser('~')))"),
        ("etc", "ans = len(open('/etc/passwd').read())"),
        ("checkout config", f"import os\nans = len(os.listdir({str(ROOT)!r}))"),
    ],
)
def test_reads_outside_the_interpreter_fail(escaped, name, source):
    requires(escaped, "landlock")
    source = source.replace("PARENT", str(os.getpid())).replace("SECRET", repr(SECRET))
    outcome = run_attack(escaped, source, {Failure.FORBIDDEN, Failure.ERROR})
    assert SECRET not in outcome.message


# The hook reads no program object: a path, mode or name of another type than exactly str/bytes/int is
# refused before any of its code could run inside the hook. Each attack, if its code ran there, would
# reach the hook's closure cells and switch the open check off (`flip`); then /etc/passwd is opened.
FLIP = (
    "import os, sys\nran = []\n"
    "def inside_the_hook(frame):\n"
    "    while frame is not None and not {'event', 'args'} <= set(frame.f_locals):\n"
    "        frame = frame.f_back\n"
    "    return frame is not None\n"
    "def flip():\n"
    "    frame = sys._getframe(1)\n"
    "    if inside_the_hook(frame):\n"
    "        ran.append(1)\n"
    "    while frame is not None:\n"
    "        for value in list(frame.f_locals.values()):\n"
    "            for cell in getattr(value, '__closure__', None) or ():\n"
    "                try:\n"
    "                    contents = cell.cell_contents\n"
    "                except ValueError:\n"
    "                    continue\n"
    "                if type(contents) is str and contents.endswith('/') and len(contents) > 1:\n"
    "                    cell.cell_contents = '/'\n"
    "                if type(contents) is frozenset and 'import' in contents:\n"
    "                    cell.cell_contents = contents | {'open'}\n"
    "        frame = frame.f_back\n"
    "class Text(str):\n"
    "    def __getitem__(self, index):\n        flip()\n        return str.__getitem__(self, index)\n"
    "    def __eq__(self, other):\n        flip()\n        return str.__eq__(self, other)\n"
    "    __hash__ = str.__hash__\n"
    "    def startswith(self, *args):\n        flip()\n        return str.startswith(self, *args)\n"
    "    def endswith(self, *args):\n        flip()\n        return str.endswith(self, *args)\n"
    "    def __iter__(self):\n        flip()\n        return str.__iter__(self)\n"
    "class Data(bytes):\n"
    "    def __getitem__(self, index):\n        flip()\n        return bytes.__getitem__(self, index)\n"
    "    def decode(self, *args):\n        flip()\n        return bytes.decode(self, *args)\n"
    "class Place:\n"
    "    def __fspath__(self):\n        flip()\n        return '/etc/hostname'\n"
    "def attempt(action):\n"
    "    try:\n        action()\n    except BaseException:\n        pass\n"
)
HOOK_ATTACKS = {
    "str subclass to open": "attempt(lambda: open(Text('/etc/hostname')))",
    "str subclass mode": "attempt(lambda: open('/etc/hostname', Text('r')))",
    "bytes subclass to open": "attempt(lambda: open(Data(b'/etc/hostname')))",
    "path-like to open": "attempt(lambda: open(Place()))",
    "str subclass to os.open": "attempt(lambda: os.open(Text('/etc/hostname'), os.O_RDONLY))",
    "str subclass file name to compile": "attempt(lambda: compile('1', Text('/x.py'), 'eval'))",
    "str subclass as a class attribute name": "attempt(lambda: type.__setattr__(Place, Text('__module__'), 'x'))",
}


@pytest.mark.parametrize("escaped", ["hook on"], indirect=True)
@pytest.mark.parametrize("name", HOOK_ATTACKS)
def test_no_program_object_runs_inside_the_hook(escaped, name):
    source = FLIP + HOOK_ATTACKS[name] + "\nopen('/etc/passwd').read()\nans = len(ran)"
    outcome = run_attack(escaped, source, {Failure.FORBIDDEN})
    assert "is not allowed in the sandbox" in outcome.message
    alone = escaped.run_program(FLIP + HOOK_ATTACKS[name] + "\nans = len(ran) + 1")  # refused, or let through
    assert alone.failure is Failure.FORBIDDEN or alone.value == 1, alone  # without running the program's code


def test_the_child_reads_the_package_and_imports_from_it(escaped):
    """Wherever the checkout lives (under /tmp too): the child imports a package module the zygote never
    loaded and reads its source; writing to it is refused (`test_writes_outside_scratch_fail`). The module
    compiles no code when imported (a dataclass would: the hook refuses compiling while a program runs)."""
    source = ("import sys\nlazy = 'eotd_jax.configs' not in sys.modules\nimport eotd_jax.configs as shipped\n"
              "ans = int(lazy) * 10 + int('def ' in open(shipped.__file__).read())")
    outcome = escaped.run_program(source)
    assert outcome.value == 11, outcome


def test_the_policy_cannot_be_replaced(escaped):
    source = (
        "import sys\nworker = sys.modules['eotd_jax.thoughts.worker']\n"
        "worker._ALLOWED_EVENTS = frozenset({'open', 'os.kill', 'os.listdir', 'os.system'})\n"
        "ans = len(open('/etc/hostname').read())"
    )
    run_attack(escaped, source, {Failure.FORBIDDEN, Failure.ERROR})


def test_state_changed_in_the_zygotes_image_dies_with_the_child(escaped):
    source = (
        "import gc, sys\nfor o in gc.get_objects():\n    if type(o).__name__ == 'Confinement':\n"
        "        o._filter_program = None\n        o._ruleset = None\n"
        "sys.modules['eotd_jax.thoughts.pot'].answer_value = lambda value: 99\nans = 1"
    )
    outcome = escaped.run_program(source)  # the hook refuses gc.get_objects; without it, the program
    assert outcome.value == 99 or outcome.failure is Failure.FORBIDDEN  # controls its own answer, only that
    assert escaped.run_program("ans = 1").value == 1
    run_attack(escaped, f"import os\nos.kill({os.getpid()}, 9)\nans = 1", {Failure.FORBIDDEN})


def test_scratch_is_private_and_emptied(escaped):
    assert escaped.run_program("open('state.txt', 'w').write('7')\nans = 1").value == 1
    for source in ("import os\nos.mkdir('d')\nans = 1", "import os\nos.mkfifo('d')\nans = 1"):
        outcome = escaped.run_program(source)  # regular files only, even in scratch
        assert outcome.failure in {Failure.FORBIDDEN, Failure.ERROR}, outcome
    assert escaped.run_program("import os\nans = int(os.path.exists('state.txt') or os.path.exists('d'))").value == 0


@pytest.mark.parametrize(
    "name, source, expected",
    [
        ("huge allocation", "x = bytearray(8 << 30)\nans = 1", {Failure.MEMORY, Failure.ERROR}),
        ("deep recursion", "import sys\nsys.setrecursionlimit(10**6)\ndef f(n):\n    return f(n + 1)\nans = f(0)",
         {Failure.CRASHED, Failure.ERROR, Failure.MEMORY, Failure.TIMEOUT}),
        ("timer switched off", "import signal\nsignal.setitimer(signal.ITIMER_PROF, 0)\n"
         "signal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass", {Failure.TIMEOUT}),
        ("sleep", "import time\ntime.sleep(60)", {Failure.TIMEOUT}),
        ("fill the disk", "i = 0\nwhile True:\n    open(f'f{i}', 'wb').write(b'x' * (1 << 20))\n    i += 1",
         {Failure.ERROR, Failure.TIMEOUT}),
    ],
)
def test_resource_attacks_are_bounded(escaped, name, source, expected):
    run_attack(escaped, source, expected)


def test_zygotes_share_no_writable_memory_with_their_children(escaped):
    for zygote in escaped._all:
        with open(f"/proc/{zygote.process.pid}/maps") as maps:
            shared = [line for line in maps if line.split()[1][1] == "w" and line.split()[1][3] == "s"]
        assert not shared, shared


@pytest.mark.skipif(os.geteuid() != 0, reason="runs as root only: it starts the unprivileged run itself")
@pytest.mark.timeout(900)
def test_the_attacks_hold_as_an_ordinary_user():
    """This module again, as uid 65534 (not root: no namespaces, no uid drop; Landlock and seccomp hold).

    Where the interpreter lives under a directory that uid cannot read (a pyenv under /root),
    the run gets CAP_DAC_READ_SEARCH to start Python at all; the children drop it before a task.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    as_nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    spawns = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import pytest'], check=True)"
    if subprocess.run([*as_nobody, sys.executable, "-c", spawns], capture_output=True, cwd="/").returncode:
        as_nobody += ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    home = tempfile.mkdtemp(prefix="sandbox-unprivileged-")
    try:
        os.chmod(home, 0o777)
        report = f"{home}/report.xml"
        command = [
            *as_nobody, sys.executable, "-m", "pytest", str(Path(__file__)), "-q", "-x", "-p", "no:cacheprovider",
            f"--basetemp={home}/pytest", "-k", "not ordinary_user", f"--junitxml={report}",
        ]
        env = {"PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": home, "PYTHONPATH": str(ROOT)}
        result = subprocess.run(command, capture_output=True, text=True, cwd=home, env=env, timeout=600)
        outcomes = junit_outcomes(report)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    # every attack of this module ran as that user and passed: none skipped, none left out
    assert set(outcomes.values()) == {"passed"}, {name: o for name, o in outcomes.items() if o != "passed"}
    tests = {name for name in globals() if name.startswith("test_")} - {"test_the_attacks_hold_as_an_ordinary_user"}
    assert {name.split("[")[0] for name in outcomes} == tests


def junit_outcomes(report: str) -> dict[str, str]:
    """Test name -> "passed", "skipped", "failure" or "error", from a pytest --junitxml report (empty if none)."""
    if not os.path.exists(report):
        return {}
    return {
        case.get("name"): next((c.tag for c in case if c.tag in ("skipped", "failure", "error")), "passed")
        for case in ElementTree.parse(report).getroot().iter("testcase")
    }
