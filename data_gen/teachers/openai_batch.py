"""The OpenAI Batch API: the same chat requests at half the price, answered within the completion window.

Requests are written as JSONL batch files (`custom_id` = the request's journal
key) in a work directory, uploaded (files endpoint, purpose "batch") and
submitted as batches, then polled with a progress bar. Each upload and each
batch is recorded in `<directory>/batches.jsonl` the moment it exists, so a
killed run resumes by polling what it had submitted, never submitting it again
(a batch created just before the kill and not yet recorded is found again by
its input file). Faults: an expired batch keeps what it answered and the rest
is submitted again (at most `max_rounds` times); a cancelled batch keeps what
it answered and the rest is reported failed; lines the batch answers with an
error are reported failed (a re-run submits them); a batch that fails
validation stops the run with one line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import uuid
from collections.abc import Callable

import openai
from openai.types.chat import ChatCompletion
from tqdm import tqdm

from data_gen.teachers.base import TeacherError
from eotd_jax.journal import Journal

ENDPOINT = "/v1/chat/completions"
_FINISHED = {"completed", "expired", "cancelled", "failed"}
_STATE = "batches.jsonl"  # every upload and batch, recorded as soon as it exists
_NOT_RUN = {"batch_expired", "batch_cancelled"}  # error codes of lines a stopped batch never ran


@dataclasses.dataclass(frozen=True)
class BatchSettings:
    poll_seconds: float = 30.0
    max_requests: int = 50_000  # the API's limits per batch: 50,000 requests, 200 MB
    max_bytes: int = 190_000_000
    completion_window: str = "24h"
    max_rounds: int = 3  # submissions of what expired batches left unanswered


def run_batches(client: openai.OpenAI, bodies: dict[str, dict], directory: str, settings: BatchSettings,
                on_answer: Callable[[str, ChatCompletion], None], progress: bool = True) -> dict[str, str]:
    """Answers `bodies` ({custom_id: chat request body}) through batches; calls `on_answer` for each answer.

    Returns {custom_id: reason} for the requests left unanswered ("api_error", "batch_cancelled",
    "batch_expired"). Requests already in a batch recorded in `directory` are polled, not submitted again.
    """
    state = Journal(os.path.join(directory, _STATE), key=lambda entry: entry["input"])
    try:
        return _Batches(client, state, directory, settings, on_answer, progress).run(bodies)
    finally:
        state.close()


def unfinished_batches(directory: str) -> int:
    """Batches recorded in `directory` and not yet read back (a killed Batch API run)."""
    path = os.path.join(directory, _STATE)
    if not os.path.exists(path):
        return 0
    state = Journal(path, key=lambda entry: entry["input"])
    state.close()
    return sum(not entry.get("finished") for entry in state.entries.values())


class _Batches:
    def __init__(self, client, state: Journal, directory: str, settings: BatchSettings, on_answer, progress: bool):
        self.client, self.state, self.directory, self.settings = client, state, directory, settings
        self.on_answer, self.progress = on_answer, progress
        self.failed: dict[str, str] = {}

    def run(self, bodies: dict[str, dict]) -> dict[str, str]:
        earlier = [e for e in self.state.entries.values() if not e.get("finished")]
        in_flight = {custom_id for entry in earlier for custom_id in entry["custom_ids"]}
        if earlier:
            tqdm.write(f"resuming {len(earlier)} batches submitted earlier ({len(in_flight)} requests)")
        batches = [self._resume(entry) for entry in earlier]
        batches += self._submit({k: v for k, v in bodies.items() if k not in in_flight})
        for round_number in range(self.settings.max_rounds + 1):
            expired = self._poll(batches)
            if not expired:
                break
            if round_number == self.settings.max_rounds:
                self.failed.update(dict.fromkeys(expired, "batch_expired"))
                break
            tqdm.write(f"{len(expired)} requests expired unanswered; submitting them again")
            batches = self._submit({k: bodies[k] for k in expired if k in bodies})
        return self.failed

    def _submit(self, bodies: dict[str, dict]) -> list[dict]:
        """Writes, uploads and creates batches of `bodies`; each recorded as soon as it exists."""
        batches = []
        for chunk in _chunks(bodies, self.settings.max_requests, self.settings.max_bytes):
            name = f"input-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}.jsonl"
            path = os.path.join(self.directory, name)
            with open(path, "wb") as file:
                file.write(b"".join(chunk.values()))
            with open(path, "rb") as file:
                uploaded = _call(lambda file=file: self.client.files.create(file=file, purpose="batch"))
            entry = {"input": name, "file_id": uploaded.id, "custom_ids": list(chunk)}
            self.state.append(entry)
            batches.append(self._create(entry))
        return batches

    def _resume(self, entry: dict) -> dict:
        """An earlier run's batch; one created just before a kill, so not recorded, is found by its input file."""
        if "batch_id" in entry:
            return entry
        found = next((b for b in _call(self.client.batches.list) if b.input_file_id == entry["file_id"]), None)
        return self._record(entry, found.id) if found else self._create(entry)

    def _create(self, entry: dict) -> dict:
        batch = _call(lambda: self.client.batches.create(
            input_file_id=entry["file_id"], endpoint=ENDPOINT, completion_window=self.settings.completion_window))
        return self._record(entry, batch.id)

    def _record(self, entry: dict, batch_id: str) -> dict:
        entry = {**entry, "batch_id": batch_id}
        self.state.append(entry)
        return entry

    def _poll(self, batches: list[dict]) -> list[str]:
        """Polls until every batch is finished and read back; returns the custom_ids that expired unanswered."""
        expired: list[str] = []
        waiting, finished = list(batches), 0
        with tqdm(total=sum(len(b["custom_ids"]) for b in batches), desc="batches", unit="req",
                  disable=not self.progress) as bar:
            while waiting:
                in_progress = 0
                for entry in list(waiting):
                    batch = _call(lambda entry=entry: self.client.batches.retrieve(entry["batch_id"]))
                    if batch.status in _FINISHED:
                        expired += self._read_back(entry, batch)
                        waiting.remove(entry)
                        finished += len(entry["custom_ids"])
                    elif batch.request_counts:
                        in_progress += batch.request_counts.completed + batch.request_counts.failed
                bar.n = finished + in_progress
                bar.set_postfix(batches_left=len(waiting))
                if waiting:
                    time.sleep(self.settings.poll_seconds)
        return expired

    def _read_back(self, entry: dict, batch) -> list[str]:
        """Answers into the journal (through `on_answer`), errors into `failed`; the batch is then finished."""
        if batch.status == "failed":
            reasons = "; ".join(e.message or e.code or "" for e in (batch.errors.data if batch.errors else []) or [])
            self.state.append({**entry, "finished": "failed"})
            raise TeacherError(f"batch {batch.id} failed validation: {reasons or 'no reason given'}")
        answered = set()
        for line in self._lines(batch.output_file_id) + self._lines(batch.error_file_id):
            custom_id, response = line.get("custom_id"), line.get("response") or {}
            if (line.get("error") or {}).get("code") in _NOT_RUN:
                continue  # never ran: expired or cancelled with its batch, handled below
            try:
                if response.get("status_code") != 200:
                    raise ValueError(f"HTTP {response.get('status_code')}")
                completion = ChatCompletion.model_validate(response["body"])
                if not completion.choices:
                    raise ValueError("no choices")
            except (ValueError, KeyError, TypeError):
                self.failed[custom_id] = "api_error"
                continue
            self.on_answer(custom_id, completion)
            answered.add(custom_id)
        unanswered = [c for c in entry["custom_ids"] if c not in answered and c not in self.failed]
        self.state.append({**entry, "finished": batch.status})
        if batch.status == "cancelled":
            self.failed.update(dict.fromkeys(unanswered, "batch_cancelled"))
            return []
        return unanswered

    def _lines(self, file_id: str | None) -> list[dict]:
        if not file_id:
            return []
        text = _call(lambda: self.client.files.content(file_id)).text
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def request_line(custom_id: str, body: dict) -> bytes:
    return (json.dumps({"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body},
                       ensure_ascii=False) + "\n").encode()


def _chunks(bodies: dict[str, dict], max_requests: int, max_bytes: int) -> list[dict[str, bytes]]:
    chunks: list[dict[str, bytes]] = []
    size = 0
    for custom_id, body in bodies.items():
        line = request_line(custom_id, body)
        if not chunks or len(chunks[-1]) == max_requests or size + len(line) > max_bytes:
            chunks.append({})
            size = 0
        chunks[-1][custom_id] = line
        size += len(line)
    return chunks


def _call(function: Callable, attempts: int = 6, backoff: float = 1.0):
    """One API call, retried on connection errors, timeouts, 429 and 5xx; other errors stop the run."""
    for attempt in range(attempts):
        try:
            return function()
        except openai.APIStatusError as error:
            if error.status_code != 429 and error.status_code < 500:
                raise TeacherError(f"Batch API: HTTP {error.status_code}: {str(error.message)[:200]}") from None
            reason = f"HTTP {error.status_code}"
        except (openai.APITimeoutError, openai.APIConnectionError) as error:
            reason = type(error).__name__
        if attempt + 1 < attempts:
            time.sleep(backoff * 2**attempt)
    raise TeacherError(f"Batch API: gave up after {attempts} tries: {reason}")
