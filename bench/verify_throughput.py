"""Verification throughput: the sandbox pool (a fresh confined process per task, forked from a
warmed zygote) against a fresh interpreter per item, measured in the same process.

The reference is the design the zygote replaces: per item, a fresh `python -I` that
imports the worker code, prepares and applies the same confinement and runs the task
(no warm-up beyond what the task itself loads). As a floor, PoT is also timed with a bare,
unsandboxed `python -I -c <program>` per item. Inputs are realistic PoT programs and EoT
systems generated with a fixed seed; every side uses all workers. Prints items/s, the
ratios, and CPU milliseconds per task (parent + zygote + child), which a loaded machine
does not inflate the way it does wall time. Targets: PoT >= 300/s on 2 cores
and >= 10x a fresh interpreter per item.

    python bench/verify_throughput.py [--items 2000] [--fresh_items 40] [--workers N]
"""

from __future__ import annotations

import os
import random
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from absl import app, flags

from eotd_jax.thoughts.sandbox import SandboxPool

_ITEMS = flags.DEFINE_integer("items", 2000, "items per kind through the pool")
_FRESH_ITEMS = flags.DEFINE_integer("fresh_items", 40, "items per kind with a fresh interpreter each (slow)")
_WORKERS = flags.DEFINE_integer("workers", os.cpu_count(), "tasks in parallel, both sides")
_ROOT = str(Path(__file__).resolve().parents[1])
_FLAVOURS = {"pot": "plain", "eot": "sympy"}  # the zygotes that serve the benchmark's inputs


def make_program(rng: random.Random) -> str:
    """A GSM8K-like PoT program: a few named quantities, arithmetic, `ans`."""
    a, b, c, d = (rng.randint(2, 90) for _ in range(4))
    return (
        f"eggs_per_day = {a}\neaten = {b % a}\nbaked = {c % 7}\nprice = {d} / 4\n"
        "remaining = eggs_per_day - eaten - baked\n"
        "total = 0\nfor day in range(7):\n    total += remaining * price\n"
        "ans = round(total / 7, 2)\n"
    )


def make_system(rng: random.Random) -> str:
    """An EoT system: implicit, out of order, two unknowns plus `ans`."""
    a, b, c = (rng.randint(2, 60) for _ in range(3))
    return f"ans = apples + pears - {c}\napples + pears = {a + b}\napples - pears = {a - b}\n"


_ONE_SHOT = """
import os, sys, tempfile
sys.path.insert(0, {root!r})
from eotd_jax.thoughts import worker
from eotd_jax.thoughts.confine import Confinement, Limits
dirs = tuple(sorted({{p for p in sys.path if p and os.path.isdir(p)}}))
confinement = Confinement(Limits(1 << 30, 1 << 20, 2.0), dirs, tempfile.mkdtemp())
confinement.prepare()
tasks = worker.make_tasks({flavour!r}, 65536)
pid = os.fork()  # confinement applies to a child of the process that prepared it
if pid == 0:
    confinement.apply()
    reply = worker._run_task(tasks, {{"kind": {kind!r}, "source": {source!r}, "cpu_seconds": 2.0}}, [])
    os._exit("value" not in reply)
sys.exit(os.waitpid(pid, 0)[1])
"""


def fresh_interpreter(kind: str, source: str) -> None:
    """The same task and confinement in a fresh interpreter of its own."""
    code = _ONE_SHOT.format(root=_ROOT, flavour=_FLAVOURS[kind], kind=kind, source=source)
    subprocess.run([sys.executable, "-I", "-c", code], check=True)


def bare_interpreter(kind: str, source: str) -> None:
    """The floor: the program alone in a fresh interpreter, no sandbox at all."""
    del kind
    subprocess.run([sys.executable, "-I", "-c", source], check=True)


def process_cpu_seconds(pids: list[int]) -> float:
    """User + system time of these processes and of their reaped children (the task processes)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += sum(int(field) for field in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pool_rate(pool: SandboxPool, kind: str, items: list[str]) -> tuple[float, float]:
    """Items/s and CPU ms per item (parent, zygotes and their children together)."""
    zygotes = [zygote.process.pid for zygote in pool._all if zygote.flavour == _FLAVOURS[kind]]
    cpu_before = own_cpu_seconds() + process_cpu_seconds(zygotes)
    start = time.perf_counter()
    outcomes = pool.map(kind, items)
    elapsed = time.perf_counter() - start
    cpu = own_cpu_seconds() + process_cpu_seconds(zygotes) - cpu_before
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise SystemExit(f"benchmark inputs failed to verify: {failed[:3]}")
    return len(items) / elapsed, 1000 * cpu / len(items)


def fresh_rate(run_one, kind: str, items: list[str], workers: int) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as executor:
        list(executor.map(lambda source: run_one(kind, source), items))
    return len(items) / (time.perf_counter() - start)


def main(argv):
    del argv
    rng = random.Random(0)
    inputs = {
        "pot": [make_program(rng) for _ in range(_ITEMS.value)],
        "eot": [make_system(rng) for _ in range(_ITEMS.value)],
    }
    print(f"{_WORKERS.value} workers on {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    with SandboxPool(num_workers=_WORKERS.value) as pool:
        print(pool.layers)
        print(f"{'kind':5} {'pool items/s':>13} {'CPU ms/item':>12} {'fresh sandboxed python/s':>25} {'ratio':>7}")
        for kind, items in inputs.items():
            pool.map(kind, items[:50])  # first forks fault in the zygotes' pages
            pooled, cpu_ms = pool_rate(pool, kind, items)
            fresh = fresh_rate(fresh_interpreter, kind, items[: _FRESH_ITEMS.value], _WORKERS.value)
            print(f"{kind:5} {pooled:13.1f} {cpu_ms:12.2f} {fresh:25.2f} {pooled / fresh:6.1f}x")
            if kind == "pot":
                bare = fresh_rate(bare_interpreter, kind, items[: 2 * _FRESH_ITEMS.value], _WORKERS.value)
                print(f"{'':5} floor: bare `python -I -c <program>` {bare:.1f}/s; pool / bare = {pooled / bare:.1f}x")


if __name__ == "__main__":
    app.run(main)
