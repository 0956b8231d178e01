"""The OpenAI-compatible teacher against a real HTTP server on 127.0.0.1 (tests/fakes/openai_server.py), one test
per fault the server can produce."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from absl import flags
from fakes.openai_server import FakeChatServer

from data_gen.teachers.base import TeacherError
from data_gen.teachers.gold import gold_rationales
from data_gen.teachers.journal import Journal
from data_gen.teachers.openai_api import OpenAITeacher, token_estimate
from data_gen.teachers.retries import retry_after
from data_gen.teachers.settings import ApiSettings
from eotd_jax.benchmarks.synthetic import synthetic_problems

ROOT = Path(__file__).resolve().parents[1]


def _answers(problems):
    return {p.question: gold_rationales(p) for p in problems}


def _by_key(candidates):
    return {(c.problem_id, c.thought, c.sample_index): c for c in candidates}


def _teacher(server, journal, **overrides):
    settings = dict(model="fake-teacher", base_url=server.url, max_retries=3, timeout=1.0, backoff=0.01,
                    concurrency=8)
    return OpenAITeacher(ApiSettings(**{**settings, **overrides}), str(journal), progress=False)


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")


def test_canned_answers_come_back_as_candidates(tmp_path, api_key):
    problems = synthetic_problems(6)
    with FakeChatServer(_answers(problems)) as server:
        teacher = _teacher(server, tmp_path / "journal.jsonl", n_per_request=2, price_prompt=1.0)
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


def test_the_teacher_flags_are_generated_from_the_settings_dataclass():
    flag_values = flags.FlagValues()
    ApiSettings.define_flags(flag_values)
    flag_values(["build", "--model=m", "--rpm=120", "--batch_api", "--max_retries=0", "--base_url=http://h/v1"])
    assert ApiSettings.from_flags(flag_values) == ApiSettings(model="m", rpm=120.0, batch_api=True, max_retries=0,
                                                              base_url="http://h/v1")
    for field in dataclasses.fields(ApiSettings):
        assert flag_values[field.name].default == field.default
        assert flag_values[field.name].help == field.metadata["help"]
    for bad in ("--rpm=-1", "--top_p=1.5", "--n_per_request=0", "--timeout=0"):
        with pytest.raises(flags.IllegalFlagValueError):
            flag_values(["build", bad])


@pytest.mark.parametrize(("headers", "seconds"), [
    ({"retry-after": "2"}, 2.0), ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
    ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0), ({"retry-after": "soon"}, None),
    ({"retry-after": "nan"}, None), ({"retry-after": "1e9"}, 300.0), ({}, None)])
def test_retry_after_is_read_as_seconds_milliseconds_or_an_http_date(headers, seconds):
    assert retry_after(headers) == seconds


def test_retry_after_as_an_http_date_is_waited_for(tmp_path, api_key):
    problems = synthetic_problems(3)
    q = [p.question for p in problems]
    with FakeChatServer(_answers(problems), faults={q[0]: ["429_date"], q[1]: ["429_date", "429_date"]}) as server:
        candidates = _teacher(server, tmp_path / "journal.jsonl").generate(problems, ["pot"], 1)
    assert all(c.rationale for c in candidates)
    assert server.early == 0  # the server refuses a request before its date again, and counts it
    assert server.attempts[q[0], "pot"] == 2 and server.attempts[q[1], "pot"] == 3


def test_a_short_reply_asks_again_for_the_samples_it_left_out(tmp_path, api_key):
    problems = synthetic_problems(3)
    q = [p.question for p in problems]
    journal = tmp_path / "journal.jsonl"
    faults = {q[0]: ["short"], q[1]: ["short", "short"], q[2]: ["short", "500", "500", "500", "500"]}
    with FakeChatServer(_answers(problems), faults=faults) as server:
        candidates = _by_key(_teacher(server, journal, n_per_request=3).generate(problems, ["pot"], samples=3))
        assert len(candidates) == 9 and "empty" not in {c.failure for c in candidates.values()}
        assert [server.attempts[question, "pot"] for question in q] == [2, 3, 5]  # n=3, then n=2 (then n=1)
        assert all(candidates[p.id, "pot", i].rationale for p in problems[:2] for i in range(3))
        assert candidates[problems[2].id, "pot", 0].rationale
        assert [candidates[problems[2].id, "pot", i].failure for i in (1, 2)] == ["api_error"] * 2
        # A re-run asks only for the two samples the failed request left out, in one request.
        server.faults = {}
        before = server.total_requests
        again = _by_key(_teacher(server, journal, n_per_request=3).generate(problems, ["pot"], samples=3))
        assert server.total_requests == before + 1 and all(c.rationale for c in again.values())
        assert {k: c.rationale for k, c in again.items() if k[0] != problems[2].id} == {
            k: c.rationale for k, c in candidates.items() if k[0] != problems[2].id}


def test_a_lone_surrogate_in_a_reply_is_journaled_and_the_run_goes_on(tmp_path, api_key):
    problems = synthetic_problems(3)
    journal = tmp_path / "journal.jsonl"
    with FakeChatServer(_answers(problems), faults={problems[0].question: ["surrogate"]}) as server:
        candidates = _by_key(_teacher(server, journal).generate(problems, ["cot"], 1))
        expected = gold_rationales(problems[0])["cot"]
        assert candidates[problems[0].id, "cot", 0].rationale == "\ufffd" + expected
        assert all(candidates[p.id, "cot", 0].rationale == gold_rationales(p)["cot"] for p in problems[1:])
        assert len(Journal(str(journal)).entries) == 3
        sent = server.total_requests
        assert _by_key(_teacher(server, journal).generate(problems, ["cot"], 1)) == candidates
        assert server.total_requests == sent


@pytest.mark.parametrize("limit", ["rpm", "tpm"])
def test_rate_limits_hold_for_retries_through_bursts_of_errors(tmp_path, api_key, limit):
    problems = synthetic_problems(16)
    faults = {p.question: ["500", "500", "429"] for p in problems}  # four attempts each
    per_second = 20  # requests; for tpm, requests of the average size
    with FakeChatServer(_answers(problems), faults=faults) as server:
        teacher = _teacher(server, tmp_path / "journal.jsonl", backoff=0.001, concurrency=16)
        tokens = {(p.question, r.thought): token_estimate(r)
                  for p, r in zip(problems, teacher.requests(problems, ["pot"], 1), strict=True)}
        weight = (lambda key: 1.0) if limit == "rpm" else tokens.__getitem__
        allowed_per_second = per_second * (sum(map(weight, tokens)) / len(tokens))
        teacher = _teacher(server, tmp_path / "journal.jsonl", backoff=0.001, concurrency=16,
                           **{limit: 60 * allowed_per_second})
        candidates = teacher.generate(problems, ["pot"], 1)
    assert all(c.rationale for c in candidates) and len(server.arrivals) == 4 * 16
    arrivals = sorted((time, weight((question, thought))) for time, question, thought in server.arrivals)
    busiest = max(sum(w for t, w in arrivals[i:] if t < start + 1.0) for i, (start, _) in enumerate(arrivals))
    # A bucket holding one second's worth lets through at most two seconds' worth in any second.
    assert busiest <= 2 * allowed_per_second + 3 * max(map(weight, tokens))


def test_a_run_where_every_request_failed_stops_with_one_line(tmp_path, api_key):
    problems = synthetic_problems(3)
    with FakeChatServer(_answers(problems), faults={p.question: ["500"] * 10 for p in problems}) as server:
        with pytest.raises(TeacherError, match=r"no answer to any of the 3 requests \(last error: http_500\)") as error:
            _teacher(server, tmp_path / "journal.jsonl", max_retries=1).generate(problems, ["pot"], 1)
    assert "\n" not in str(error.value)


def test_an_unreachable_server_stops_the_run_at_its_deadline(tmp_path, api_key):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    settings = ApiSettings(model="fake-teacher", base_url=url, max_retries=1000, backoff=0.05, unreachable_seconds=1.5)
    start = time.monotonic()
    with pytest.raises(TeacherError, match=r"unreachable: no reply for \d+ s \(APIConnectionError\)") as error:
        OpenAITeacher(settings, str(tmp_path / "journal.jsonl"), progress=False).generate(
            synthetic_problems(3), ["pot"], 1)
    assert 1.5 <= time.monotonic() - start < 10 and "\n" not in str(error.value)


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
