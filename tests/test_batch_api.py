"""The API teacher's Batch API mode against the fake server's real files and batches endpoints on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes.openai_server import FakeChatServer

from data_gen.teachers.base import TeacherError
from data_gen.teachers.gold import gold_rationales
from data_gen.teachers.journal import Journal
from data_gen.teachers.openai_api import OpenAITeacher
from data_gen.teachers.settings import ApiSettings
from eotd_jax.benchmarks.synthetic import synthetic_problems

ROOT = Path(__file__).resolve().parents[1]


def _answers(problems):
    return {p.question: gold_rationales(p) for p in problems}


def _teacher(server, journal: Path, batch: bool = True, **overrides):
    settings = ApiSettings(model="fake-teacher", base_url=server.url, max_retries=2, timeout=5.0, backoff=0.01,
                           price_prompt=2.0, price_completion=8.0, batch_api=batch, batch_poll_seconds=0.01,
                           **overrides)
    return OpenAITeacher(settings, str(journal), progress=False)


def _by_key(candidates):
    return {(c.problem_id, c.thought, c.sample_index): c for c in candidates}


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")


def test_batches_answer_like_live_requests_at_half_the_price(tmp_path):
    problems = synthetic_problems(6)
    with FakeChatServer(_answers(problems)) as server:
        live = _teacher(server, tmp_path / "live" / "journal.jsonl", batch=False)
        expected = _by_key(live.generate(problems, ["pot", "eot"], samples=2))
        live_requests = server.total_requests
        server.batch_step = 5
        teacher = _teacher(server, tmp_path / "batch" / "journal.jsonl", batch_max_requests=10)
        got = _by_key(teacher.generate(problems, ["pot", "eot"], samples=2))
        assert server.total_requests == live_requests  # nothing went to the live endpoint
    assert got == expected and all(c.rationale for c in got.values())
    keys = {r.key for r in teacher.requests(problems, ["pot", "eot"], 2)}
    assert set(server.submitted) == keys and set(server.submitted.values()) == {1}
    # 10 + 10 + 4 requests, 5 answered a poll after the first (validating): polled until each was done.
    assert [server.polls[b] for b in sorted(server.batches)] == [3, 3, 2]
    inputs = sorted((tmp_path / "batch" / "batch_api").glob("input-*.jsonl"))
    lines = [json.loads(line) for path in inputs for line in path.read_text().splitlines()]
    assert {line["custom_id"] for line in lines} == keys  # the journal's keys are the custom_ids
    assert all(line["url"] == "/v1/chat/completions" and line["body"]["model"] == "fake-teacher" for line in lines)
    assert set(Journal(str(tmp_path / "batch" / "journal.jsonl")).entries) == keys
    assert teacher.usage.cost_usd == pytest.approx(live.usage.cost_usd / 2) and teacher.usage.cost_usd > 0


def test_expired_partially_failed_and_cancelled_batches(tmp_path):
    problems = synthetic_problems(8)
    failing = {problems[1].question: ["batch_error"], problems[6].question: ["batch_error"]}
    journal = tmp_path / "journal.jsonl"
    with FakeChatServer(_answers(problems), faults=failing) as server:
        keys = [r.key for r in _teacher(server, journal).requests(problems, ["pot"], 1)]
        # The first batch expires halfway: its answers are kept and the rest goes in a new batch. Two lines fail.
        server.batch_faults = ["expired"]
        candidates = _by_key(_teacher(server, journal).generate(problems, ["pot"], 1))
        assert len(server.batches) == 2
        assert server.batches["batch-1"]["request_counts"]["total"] == 4
        failed = {pid for (pid, _, _), c in candidates.items() if c.failure}
        assert failed == {problems[1].id, problems[6].id}
        assert {c.failure for c in candidates.values() if c.failure} == {"api_error"}
        assert len(Journal(str(journal)).entries) == 6
        assert [server.submitted[k] for k in keys] == [1, 1, 1, 1, 2, 2, 2, 2]  # the unanswered half, again

        # A re-run sends exactly the two failed requests.
        server.faults = {}
        again = _by_key(_teacher(server, journal).generate(problems, ["pot"], 1))
        assert all(c.rationale for c in again.values())
        assert [server.submitted[k] for k in keys] == [1, 2, 1, 1, 2, 2, 3, 2]

        # A cancelled batch: its answers are kept, the rest is reported and left for a re-run.
        server.batch_faults = [*server.batch_faults, "ok", "ok", "cancelled"]
        cancelled = _by_key(_teacher(server, journal).generate(problems, ["eot"], 1))
        assert sum(c.failure == "batch_cancelled" for c in cancelled.values()) == 4
        assert sum(c.rationale is not None for c in cancelled.values()) == 4
        _teacher(server, journal).generate(problems, ["eot"], 1)
        eot_keys = {r.key for r in _teacher(server, journal).requests(problems, ["eot"], 1)}
        assert sorted(server.submitted[k] for k in eot_keys) == [1] * 4 + [2] * 4

        # A batch rejected at validation stops the run with one line.
        server.batch_faults = [*server.batch_faults, "ok", "failed"]
        with pytest.raises(TeacherError, match="failed validation: the model is not available") as error:
            _teacher(server, journal).generate(problems, ["cot"], 1)
        assert "\n" not in str(error.value)


def test_a_malformed_line_in_a_batch_output_file_costs_only_its_own_request(tmp_path, capsys):
    problems = synthetic_problems(4)
    journal = tmp_path / "journal.jsonl"
    with FakeChatServer(_answers(problems)) as server:
        server.batch_faults = ["malformed_line"]
        candidates = _by_key(_teacher(server, journal).generate(problems, ["pot"], 1))
        assert "batch batch-0: line 1 of file file-1 is not a result line; skipped" in capsys.readouterr().out
        failed = [key for key, c in candidates.items() if c.failure]
        assert len(failed) == 1 and candidates[failed[0]].failure == "batch_no_answer"
        assert sum(c.rationale is not None for c in candidates.values()) == 3
        assert len(Journal(str(journal)).entries) == 3
        # The run finished: its batch is read back, and a re-run submits only the request the bad line held.
        again = _by_key(_teacher(server, journal).generate(problems, ["pot"], 1))
        assert all(c.rationale for c in again.values())
        keys = [r.key for r in _teacher(server, journal).requests(problems, ["pot"], 1)]
        assert sorted(server.submitted[k] for k in keys) == [1, 1, 1, 2]


def test_a_batch_created_but_not_recorded_before_a_kill_is_found_again(tmp_path):
    problems = synthetic_problems(4)
    journal = tmp_path / "journal.jsonl"
    with FakeChatServer(_answers(problems)) as server:
        _teacher(server, journal).generate(problems, ["pot"], 1)
        # As if killed between creating the batch and recording it: only the upload is on record.
        state = tmp_path / "batch_api" / "batches.jsonl"
        entry = json.loads(state.read_text().splitlines()[0])
        assert "batch_id" not in entry and "file_id" in entry
        state.write_text(json.dumps(entry) + "\n")
        journal.unlink()
        with pytest.raises(TeacherError, match="1 batches submitted by an earlier --batch_api run are unfinished"):
            _teacher(server, journal, batch=False).generate(problems, ["pot"], 1)
        assert server.total_requests == 0
        again = _teacher(server, journal).generate(problems, ["pot"], 1)
        assert all(c.rationale for c in again) and len(server.batches) == 1 and set(server.submitted.values()) == {1}


def _build(server, out: Path, *flags: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "data_gen.build", "--teacher=openai", f"--base_url={server.url}",
               "--model=fake-teacher", "--dataset=synthetic", "--synthetic_count=40", f"--out={out}", "--workers=1",
               "--num_shards=3", "--progress=false", "--backoff=0.01", *flags]
    env = {**os.environ, "OPENAI_API_KEY": "test-key", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _finish(process: subprocess.Popen) -> str:
    output = process.communicate(timeout=240)[0].decode()
    assert process.returncode == 0, output[-3000:]
    return output


def test_a_build_killed_mid_poll_resumes_without_submitting_anything_again(tmp_path):
    problems = synthetic_problems(40)
    with FakeChatServer(_answers(problems)) as server:
        _finish(_build(server, tmp_path / "live"))

    batch_flags = ["--batch_api", "--batch_poll_seconds=0.05", "--batch_max_requests=50"]
    with FakeChatServer(_answers(problems)) as server:
        server.batch_step, server.batch_faults = 10, ["stall", "ok", "stall"]  # 120 requests: 50 + 50 + 20
        out = tmp_path / "batch"
        victim = _build(server, out, *batch_flags)
        state = out / "batch_api" / "batches.jsonl"
        deadline = time.monotonic() + 120
        while not (state.exists() and b'"finished"' in state.read_bytes() and server.polls["batch-0"] > 8):
            assert time.monotonic() < deadline and victim.poll() is None, "the build never got to polling"
            time.sleep(0.05)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        answered = set(Journal(str(out / "journal.jsonl")).entries)
        assert len(answered) == 50 and len(server.batches) == 3  # batch-1 read back, the stalled two in flight
        polls_before = dict(server.polls)
        server.stalled = False
        output = _finish(_build(server, out, *batch_flags))
        assert "resuming 2 batches submitted earlier (70 requests)" in output
        assert len(server.batches) == 3 and set(server.submitted.values()) == {1}
        assert all(server.polls[b] > polls_before[b] for b in ("batch-0", "batch-2"))
        assert len(Journal(str(out / "journal.jsonl")).entries) == 120

    manifests = {name: json.loads((tmp_path / name / "manifest.json").read_text()) for name in ("live", "batch")}
    assert manifests["batch"]["shards"] == manifests["live"]["shards"]
    assert manifests["batch"]["counts"] == manifests["live"]["counts"]
    assert manifests["batch"]["settings"]["batch_api"] is True
