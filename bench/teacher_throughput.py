"""API teacher throughput against the local fake server, and whether verification keeps up.

    python bench/teacher_throughput.py [--requests=1500] [--latency=0.05] [--concurrency=64]

The fake OpenAI-compatible server (tests/fakes/openai_server.py) runs in its
own process with a fixed latency per reply; the teacher sends `--requests`
distinct requests. Printed:
requests/s (and the ratio to the ideal concurrency / latency), then the
verification rate of the same answers through the sandbox pool, as a ratio to
the request rate: above 1 means verification is never the bottleneck.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import app, flags

from data_gen.teachers.gold import gold_rationales
from data_gen.teachers.openai_api import OpenAITeacher
from data_gen.teachers.settings import ApiSettings
from data_gen.verification import verify_candidates
from eotd_jax.benchmarks.synthetic import synthetic_problems
from eotd_jax.thoughts.sandbox import SandboxPool

ROOT = Path(__file__).resolve().parents[1]

_REQUESTS = flags.DEFINE_integer("requests", 1500, "requests to send (a multiple of 3: cot, pot, eot)")
_LATENCY = flags.DEFINE_float("latency", 0.05, "server-side seconds per reply")
_CONCURRENCY = flags.DEFINE_integer("concurrency", 64, "requests in flight")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("fake server did not start")


def main(argv):
    del argv
    problems = synthetic_problems(_REQUESTS.value // 3, seed=11)
    with tempfile.TemporaryDirectory() as scratch:
        answers = Path(scratch) / "answers.json"
        answers.write_text(json.dumps({p.question: gold_rationales(p) for p in problems}))
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "fakes" / "openai_server.py"), f"--answers={answers}",
             f"--port={port}", f"--latency={_LATENCY.value}"], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL)
        try:
            _wait_for(port)
            os.environ["BENCH_KEY"] = "test-key"
            settings = ApiSettings(model="fake", base_url=f"http://127.0.0.1:{port}/v1", api_key_env="BENCH_KEY",
                                   concurrency=_CONCURRENCY.value, timeout=30)
            teacher = OpenAITeacher(settings, str(Path(scratch) / "journal.jsonl"), progress=False)
            start = time.perf_counter()
            candidates = teacher.generate(problems, ["cot", "pot", "eot"], 1)
            request_seconds = time.perf_counter() - start
        finally:
            server.kill()
    requests = len(candidates)
    request_rate = requests / request_seconds
    ideal = _CONCURRENCY.value / _LATENCY.value
    with SandboxPool() as pool:
        start = time.perf_counter()
        kept, _ = verify_candidates(candidates, problems, pool, teacher.name)
        verify_seconds = time.perf_counter() - start
    verify_rate = requests / verify_seconds
    print(f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    print(f"requests: {requests} at concurrency {_CONCURRENCY.value}, server latency {_LATENCY.value * 1000:.0f} ms")
    print(f"teacher: {request_rate:,.0f} requests/s ({request_rate / ideal:.0%} of the ideal {ideal:,.0f}/s)")
    print(f"verification: {verify_rate:,.0f} rationales/s, {verify_rate / request_rate:.1f}x the request rate "
          f"({len(kept)}/{requests} kept)")


if __name__ == "__main__":
    app.run(main)
