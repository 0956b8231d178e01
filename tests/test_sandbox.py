"""The sandbox is a security boundary: hostile programs fail closed, fast, with a
clear reason, and the main process and the pool survive and keep serving."""

from __future__ import annotations

import os
import signal
import threading
import time
from fractions import Fraction

import pytest

from eotd_jax.thoughts import sandbox, worker
from eotd_jax.thoughts.outcome import Failure
from eotd_jax.thoughts.sandbox import SandboxPool

HOSTILE_PROGRAMS = {
    "os.system": ("import os; os.system('touch /tmp/pwned')", {Failure.FORBIDDEN}),
    "open /etc/passwd": ("ans = len(open('/etc/passwd').read())", {Failure.FORBIDDEN}),
    "__import__": ("ans = __import__('os').getpid()", {Failure.FORBIDDEN}),
    "subclass walk": ("ans = ().__class__.__base__.__subclasses__()", {Failure.FORBIDDEN}),
    "getattr walk": ("ans = getattr((), '__class__')", {Failure.FORBIDDEN}),
    "frame walk": ("def g():\n    yield 1\nans = g().gi_frame.f_back", {Failure.FORBIDDEN}),
    "module walk": ("import fractions\nans = fractions.sys.modules['os']", {Failure.ERROR}),
    "eval": ("ans = eval('1+1')", {Failure.FORBIDDEN}),
    "exec": ("exec('ans = 1')", {Failure.FORBIDDEN}),
    "fork": ("import os\nos.fork()", {Failure.FORBIDDEN}),
    "subprocess": ("import subprocess\nsubprocess.run(['id'])", {Failure.FORBIDDEN}),
    "multiprocessing": ("import multiprocessing", {Failure.FORBIDDEN}),
    "socket": ("import socket\nsocket.create_connection(('127.0.0.1', 80))", {Failure.FORBIDDEN}),
    "ctypes": ("import ctypes", {Failure.FORBIDDEN}),
    "relative import": ("from . import worker", {Failure.FORBIDDEN}),
    "infinite loop": ("while True:\n    pass", {Failure.TIMEOUT}),
    "loop swallowing the timer": (
        "while True:\n    try:\n        while True: pass\n    except:\n        pass",
        {Failure.TIMEOUT},
    ),
    "string bomb": ("x = 'a' * 10**10", {Failure.MEMORY}),
    "list bomb": ("x = [0] * 10**9", {Failure.MEMORY}),
    "huge exponent": ("ans = 2**10**10", {Failure.TIMEOUT, Failure.MEMORY}),
    "output bomb": ("while True:\n    print('x' * 1000)", {Failure.OUTPUT_LIMIT}),
    "one huge print": ("print('x' * 10**7)", {Failure.OUTPUT_LIMIT}),
    "deep recursion": ("def f(n):\n    return f(n + 1)\nans = f(0)", {Failure.ERROR}),
    "very long program": ("ans = 1\n" * 50_000, {Failure.TOO_LARGE}),
    "deeply nested": ("ans = " + "(" * 5_000 + "1" + ")" * 5_000, {Failure.SYNTAX}),
    "deeply nested calls": ("ans = " + "abs(" * 3_000 + "1" + ")" * 3_000, {Failure.SYNTAX, Failure.ERROR}),
}


@pytest.mark.parametrize("name", HOSTILE_PROGRAMS)
def test_hostile_program_fails_closed_and_pool_keeps_serving(pool, name):
    source, expected = HOSTILE_PROGRAMS[name]
    start = time.monotonic()
    outcome = pool.run_program(source)
    elapsed = time.monotonic() - start
    assert outcome.failure in expected, outcome
    assert outcome.message
    assert elapsed < pool.limits["pot"].wall_seconds + 1.0
    assert pool.run_program("ans = 6 * 7").value == 42  # the pool still serves
    assert not os.path.exists("/tmp/pwned")


@pytest.mark.parametrize(
    "source, expected",
    [
        ("ans = 6 * 7", 42),
        ("def solution():\n    return 48 + 48 / 2\n", 72),
        ("ans = 0.1 + 0.2", Fraction(3, 10)),
        ("from fractions import Fraction\nans = Fraction(1, 3)", Fraction(1, 3)),
        ("import math\nans = math.floor(7.9) + math.sqrt(4)", 9),
        ("import statistics\nans = statistics.mean([1, 2, 3])", 2),
        ("ans = '1,234'", 1234),
        ("total = 0\nfor _ in range(10):\n    total += 2\nans = total", 20),
        ("if __name__ == '__main__':\n    print('hi')\n    ans = -3", -3),
        ("class Box:\n    def __init__(self, n):\n        self.n = n\nans = Box(4).n", 4),
    ],
)
def test_programs_compute_answers(pool, source, expected):
    outcome = pool.run_program(source)
    assert outcome.ok, outcome
    assert abs(outcome.value - expected) < 1e-9


@pytest.mark.parametrize(
    "source, failure",
    [
        ("x = 1", Failure.NO_ANS),
        ("ans = [1, 2]", Failure.AMBIGUOUS),
        ("ans = []", Failure.NOT_A_NUMBER),
        ("ans = {'a': 1, 'b': 2}", Failure.AMBIGUOUS),
        ("ans = 'many'", Failure.NOT_A_NUMBER),
        ("ans = float('nan')", Failure.NOT_A_NUMBER),
        ("ans = True", Failure.NOT_A_NUMBER),
        ("ans = 10**100", Failure.TOO_LARGE),
        ("ans = 1 / 0", Failure.ERROR),
        ("ans = (", Failure.SYNTAX),
    ],
)
def test_program_failures_are_typed(pool, source, failure):
    outcome = pool.run_program(source)
    assert outcome.failure is failure, outcome


def test_equations_run_in_the_pool(pool):
    assert pool.solve_equations("2 * x + 3 = 11\nans = x * 2").value == 8
    assert pool.solve_equations("ans = 9**9**9").failure is Failure.TOO_LARGE
    assert pool.solve_equations("ans = __import__('os').system('id')").failure is Failure.FORBIDDEN


def test_long_nonlinear_chains_solve_in_the_locked_down_worker(pool):
    """Regression: sympy's lazy imports on the nonlinear path used to be refused as `forbidden`."""
    systems = {
        "step1 = 8*3\nstep2 = 120/step1\nans = step2": 5,
        "s1 = 12-10\ns2 = 40*5/100\ns3 = 40-s1\ns4 = s3*s1\ns5 = 40*10\ns6 = s5+s4\nans = s6": 476,
        "p = q * r\nq = 3\nr = p / 2 - 1\nans = p + q + r": 11,  # p = 3r, r = 3r/2 - 1: r = 2, p = 6
        "w * h = 48\nw = h + 2\nans = w": 8,
    }
    for system, expected in systems.items():
        outcome = pool.solve_equations(system)
        assert outcome.ok, (system, outcome)
        assert outcome.value == expected


def test_map_runs_everything_in_order(pool):
    programs = [f"ans = {i} * 3" for i in range(300)] + ["while True: pass"] + ["ans = 1"]
    outcomes = pool.map("pot", programs)
    assert [o.value for o in outcomes[:300]] == [3 * i for i in range(300)]
    assert outcomes[300].failure is Failure.TIMEOUT
    assert outcomes[301].value == 1


def test_the_progress_bar_draws_on_a_terminal_only(pool, capsys):
    """A log file (a pipeline's stderr, a SLURM log) gets no carriage-return bars."""
    assert [o.value for o in pool.map("pot", ["ans = 2"] * 3, progress=True)] == [2] * 3
    assert "verifying pot" not in capsys.readouterr().err


def test_killed_zygotes_are_replaced():
    with SandboxPool(num_workers=2) as pool:
        for zygote in list(pool._all):
            os.kill(zygote.process.pid, signal.SIGKILL)
            zygote.process.wait()
        assert [pool.run_program(f"ans = {i}").value for i in range(4)] == [0, 1, 2, 3]
        assert [pool.solve_equations(f"2 * x = {2 * i}\nans = x").value for i in range(3)] == [0, 1, 2]
        assert len(pool._all) == 4


def test_a_zygote_dying_mid_task_is_crashed_and_replaced():
    with SandboxPool(num_workers=1, cpu_seconds=5) as pool:
        (zygote,) = [z for z in pool._all if z.flavour == "plain"]
        killer = threading.Timer(0.5, os.kill, (zygote.process.pid, signal.SIGKILL))
        killer.start()
        outcome = pool.run_program("while True:\n    pass")
        killer.join()
        assert outcome.failure is Failure.CRASHED and "exited" in outcome.message, outcome
        assert pool.run_program("ans = 2").value == 2


def test_closing_during_tasks_leaves_no_process():
    pool = SandboxPool(num_workers=2, cpu_seconds=5)
    pids = {zygote.process.pid for zygote in pool._all}
    closer = threading.Timer(0.5, pool.close)
    closer.start()
    outcomes = pool.map("pot", ["while True:\n    pass"] * 2)
    closer.join()
    assert {o.failure for o in outcomes} <= {Failure.CRASHED, Failure.TIMEOUT}
    assert not pool._all
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read()


def test_the_pool_states_its_layers():
    with SandboxPool(num_workers=1) as pool:
        assert pool.layers.startswith("sandbox layers: process per task on;")
        for layer in ("landlock", "seccomp", "namespaces", "uid drop"):
            assert f"; {layer} " in pool.layers
        if os.geteuid() == 0:
            assert "namespaces on" in pool.layers and "uid drop on" in pool.layers


def test_wall_clock_limit_kills_the_worker():
    with SandboxPool(num_workers=1, cpu_seconds=30, wall_seconds=1.0) as pool:
        start = time.monotonic()
        outcome = pool.run_program("while True:\n    pass")
        assert outcome.failure is Failure.TIMEOUT and "killed" in outcome.message
        assert time.monotonic() - start < 3.0
        assert pool.run_program("ans = 5").value == 5


def test_bad_kind_and_closed_pool_are_clear_errors():
    pool = SandboxPool(num_workers=1)
    with pytest.raises(ValueError, match="kind"):
        pool.run("sql", "select 1")
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.run_program("ans = 1")


def test_a_worker_that_cannot_start_is_a_clear_error(monkeypatch):
    monkeypatch.setattr("eotd_jax.thoughts.sandbox._PACKAGE_ROOT", "/nonexistent")
    monkeypatch.setattr("sys.executable", "/bin/false")
    with pytest.raises(RuntimeError, match="sandbox worker failed to start: zygote exited with code 1"):
        SandboxPool(num_workers=2)


@pytest.mark.parametrize(
    "missing, stated",
    [
        ("landlock", "landlock unavailable (the `landlock` package is not installed)"),
        ("pyseccomp", "seccomp unavailable ("),
    ],
)
def test_a_missing_layer_is_stated_and_the_rest_holds(monkeypatch, caplog, missing, stated):
    bootstrap = f"import sys; sys.modules[{missing!r}] = None\n" + sandbox._BOOTSTRAP
    monkeypatch.setattr(sandbox, "_BOOTSTRAP", bootstrap)
    with SandboxPool(num_workers=1) as pool:
        assert stated in pool.layers
        assert any(stated in record.getMessage() and record.levelname == "WARNING" for record in caplog.records)
        if missing == "landlock":
            assert "every open for writing refused (no Landlock)" in pool.layers
        assert pool.run_program("ans = 6 * 7").value == 42
        assert pool.solve_equations("2 * x = 8\nans = x").value == 4
        assert pool.run_program("import os\nans = 1").failure is Failure.FORBIDDEN


def test_every_warm_up_input_answers():
    """A warm-up input that failed would leave its lazy paths cold: children could not take them fast, or at
    all where a dropped uid cannot read the interpreter's files."""
    for flavour, kinds in worker._WARM_INPUTS.items():
        tasks = worker.make_tasks(flavour, 65_536)
        for kind, inputs in kinds.items():
            for source in inputs:
                reply = tasks[kind](source)()  # an answer, or a verdict reached at the end (`ambiguous`)
                assert "value" in reply or reply["failure"] in ("ambiguous", "underdetermined"), (source, reply)
