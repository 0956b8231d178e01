"""Verification throughput: the warm sandbox pool vs one fresh sandbox process per item.

Both sides run the same worker code on the same inputs (realistic PoT programs
and EoT systems, generated with a fixed seed), using all cores. Prints items/s
and the pool / fresh ratio. Targets (issue 2): ratio >= 10, PoT >= 300/s on 2 cores.
As a floor, it also times the cheapest fresh process imaginable (`python -I -c`
running the program bare, no sandbox, no sympy): the pool must beat even that.

    python bench/verify_throughput.py [--items 2000] [--fresh_items 40]
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

from absl import app, flags

from eotd_jax.thoughts.outcome import Outcome
from eotd_jax.thoughts.sandbox import SandboxPool

_ITEMS = flags.DEFINE_integer("items", 2000, "items per kind through the warm pool")
_FRESH_ITEMS = flags.DEFINE_integer("fresh_items", 40, "items per kind with a fresh process each (slow)")
_WORKERS = flags.DEFINE_integer("workers", os.cpu_count(), "sandbox processes / parallel fresh processes")


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


def rate(run, items: list[str]) -> float:
    start = time.perf_counter()
    outcomes = run(items)
    elapsed = time.perf_counter() - start
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise SystemExit(f"benchmark inputs failed to verify: {failed[:3]}")
    return len(items) / elapsed


def fresh_each(kind: str, workers: int):
    def run_one(source: str):
        with SandboxPool(num_workers=1) as pool:
            return pool.run(kind, source)

    def run(items):
        with ThreadPoolExecutor(workers) as executor:
            return list(executor.map(run_one, items))

    return run


def bare_python_each(workers: int):
    """Per item: a bare interpreter runs the program, unsandboxed. Programs only (it has no sympy solver)."""

    def run_one(source: str):
        subprocess.run([sys.executable, "-I", "-c", source], check=True)
        return Outcome(value=Fraction(0))

    def run(items):
        with ThreadPoolExecutor(workers) as executor:
            return list(executor.map(run_one, items))

    return run


def main(argv):
    del argv
    rng = random.Random(0)
    inputs = {
        "pot": [make_program(rng) for _ in range(_ITEMS.value)],
        "eot": [make_system(rng) for _ in range(_ITEMS.value)],
    }
    print(f"{_WORKERS.value} workers on {os.cpu_count()} CPUs")
    print(f"{'kind':5} {'pool items/s':>13} {'fresh items/s':>14} {'ratio':>8}")
    with SandboxPool(num_workers=_WORKERS.value) as pool:
        for kind, items in inputs.items():
            pooled = rate(lambda batch, kind=kind: pool.map(kind, batch), items)
            fresh = rate(fresh_each(kind, _WORKERS.value), items[: _FRESH_ITEMS.value])
            print(f"{kind:5} {pooled:13.1f} {fresh:14.2f} {pooled / fresh:7.1f}x")
            if kind == "pot":
                bare = rate(bare_python_each(_WORKERS.value), items[: 4 * _FRESH_ITEMS.value])
                print(f"{'':5} floor: bare `python -I -c` per program {bare:.1f}/s; pool / bare = {pooled / bare:.1f}x")


if __name__ == "__main__":
    app.run(main)
