"""The OpenAI-compatible teacher against a real HTTP server on 127.0.0.1 (data_gen.teachers.fake_server)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data_gen.teachers.base import TeacherError
from data_gen.teachers.fake_server import FakeChatServer
from data_gen.teachers.gold import gold_rationales
from data_gen.teachers.journal import Journal
from data_gen.teachers.openai_api import ApiSettings, OpenAITeacher
from eotd_jax.benchmarks.synthetic import synthetic_problems

ROOT = Path(__file__).resolve().parents[1]


def _answers(problems):
    return {p.question: gold_rationales(p) for p in problems}


def _teacher(server, journal, **overrides):
    settings = dict(model="fake-teacher", base_url=server.url, max_retries=3, timeout_seconds=1.0,
                    backoff_seconds=0.01, concurrency=8)
    return OpenAITeacher(ApiSettings(**{**settings, **overrides}), str(journal), progress=False)


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")


def test_canned_answers_come_back_as_candidates(tmp_path, api_key):
    problems = synthetic_problems(6)
    with FakeChatServer(_answers(problems)) as server:
        teacher = _teacher(server, tmp_path / "journal.jsonl", samples_per_request=2, price_prompt_per_million=1.0)
        candidates = teacher.generate(problems, ["pot", "eot"], samples=3)
    assert len(candidates) == 6 * 2 * 3
    assert server.total_requests == 6 * 2 * 2  # n=2 then n=1 per problem and thought
    by_key = {(c.problem_id, c.thought, c.sample_index): c for c in candidates}
    assert by_key[problems[0].id, "pot", 2].rationale == gold_rationales(problems[0])["pot"]
    assert teacher.usage.prompt_tokens > 0 and teacher.usage.cost_usd > 0


def test_faults_are_retried_or_recorded_and_never_crash_the_run(tmp_path, api_key):
    problems = synthetic_problems(7)
    q = [p.question for p in problems]
    faults = {q[0]: ["429", "500", "ok"], q[1]: ["timeout", "ok"], q[2]: ["malformed", "ok"], q[3]: ["length"],
              q[4]: ["empty"], q[5]: ["500"] * 10}
    journal = tmp_path / "journal.jsonl"
    with FakeChatServer(_answers(problems), faults=faults) as server:
        candidates = {c.problem_id: c for c in _teacher(server, journal).generate(problems, ["pot"], 1)}
        assert [candidates[p.id].rationale is not None for p in problems[:3]] == [True] * 3
        assert candidates[problems[3].id].failure == "truncated"
        assert candidates[problems[4].id].failure == "empty"
        assert candidates[problems[5].id].failure == "api_error"
        assert candidates[problems[6].id].rationale is not None
        assert server.attempts[q[0], "pot"] == 3 and server.attempts[q[5], "pot"] == 4
        # Truncated and empty answers were paid for, so they are journaled; the failed request is not.
        assert len(Journal(str(journal)).entries) == 6
        before = server.total_requests
        server.faults = {}
        again = {c.problem_id: c for c in _teacher(server, journal).generate(problems, ["pot"], 1)}
        assert server.total_requests == before + 1  # only the request that never got an answer
        assert again[problems[5].id].rationale is not None and again[problems[3].id].failure == "truncated"


def test_a_bad_api_key_stops_the_run_with_one_line_and_keeps_the_journal(tmp_path, monkeypatch):
    problems = synthetic_problems(3)
    journal = tmp_path / "journal.jsonl"
    journal.write_text('{"key": "earlier", "choices": []}\n')
    monkeypatch.setenv("OPENAI_API_KEY", "wrong")
    with FakeChatServer(_answers(problems)) as server, pytest.raises(TeacherError, match="HTTP 401") as error:
        _teacher(server, journal).generate(problems, ["cot"], 1)
    assert "\n" not in str(error.value)
    assert "earlier" in Journal(str(journal))
    monkeypatch.delenv("OPENAI_API_KEY")
    with FakeChatServer(_answers(problems)) as server, pytest.raises(TeacherError, match="OPENAI_API_KEY"):
        _teacher(server, journal).generate(problems, ["cot"], 1)


def _build(server, out: Path, count: int, concurrency: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "data_gen.build", "--teacher=openai", f"--base_url={server.url}",
               "--model=fake-teacher", "--dataset=synthetic", f"--synthetic_count={count}", f"--out={out}",
               f"--concurrency={concurrency}", "--workers=1", "--num_shards=3", "--progress=false", "--backoff=0.01"]
    env = {**os.environ, "OPENAI_API_KEY": "test-key", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _journal_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_a_killed_build_resumes_to_identical_shards_without_resending_answers(tmp_path):
    problems = synthetic_problems(40)
    total = 40 * 3
    with FakeChatServer(_answers(problems), latency=0.05) as server:
        reference = _build(server, tmp_path / "reference", 40, concurrency=16)
        assert reference.wait(timeout=240) == 0, reference.stdout.read().decode()[-2000:]

    with FakeChatServer(_answers(problems), latency=0.05) as server:
        out = tmp_path / "killed"
        victim = _build(server, out, 40, concurrency=2)
        deadline = time.monotonic() + 120
        while _journal_lines(out / "journal.jsonl") < total // 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        answered = len(Journal(str(out / "journal.jsonl")).entries)
        sent_before = server.total_requests
        assert 0 < answered < total
        resumed = _build(server, out, 40, concurrency=16)
        assert resumed.wait(timeout=240) == 0, resumed.stdout.read().decode()[-2000:]
        assert server.total_requests - sent_before == total - answered

    manifests = [json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("reference", "killed")]
    assert manifests[0]["shards"] == manifests[1]["shards"]
    assert manifests[0]["counts"] == manifests[1]["counts"]
    assert manifests[0]["counts"]["eot"]["kept"] == 40
