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
error are reported failed (a re-run submits them), and so are the requests a
finished batch gives no readable answer for (a malformed line in its output
file is named and skipped; the rest of the batch is kept); a batch that fails
validation stops the run with one line. Every API call is retried as
data_gen/teachers/retries.py says.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable

import openai
from openai.types.chat import ChatCompletion
from tqdm import tqdm

from data_gen.teachers.base import TeacherError
from data_gen.teachers.retries import Reachability, backoff, retry_after, retryable
from data_gen.teachers.settings import ApiSettings
from eotd_jax.journal import Journal

ENDPOINT = "/v1/chat/completions"
_FINISHED = {"completed", "expired", "cancelled", "failed"}
_STATE = "batches.jsonl"  # every upload and batch, recorded as soon as it exists
_NOT_RUN = {"batch_expired", "batch_cancelled"}  # error codes of lines a stopped batch never ran
_MAX_BYTES = 190_000_000  # per batch file; the API allows 200 MB
_MAX_ROUNDS = 3  # submissions of what expired batches left unanswered


def run_batches(client: openai.OpenAI, bodies: dict[str, dict], directory: str, settings: ApiSettings,
                on_answer: Callable[[str, ChatCompletion], None], progress: bool = True) -> dict[str, str]:
    """Answers `bodies` ({custom_id: chat request body}) through batches; calls `on_answer` for each answer.

    Returns {custom_id: reason} for the requests left unanswered ("api_error", "batch_cancelled",
    "batch_expired", "batch_no_answer"). Requests already in a batch recorded in `directory` are polled, not
    submitted again.
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
    def __init__(self, client, state: Journal, directory: str, settings: ApiSettings, on_answer, progress: bool):
        self.client, self.state, self.directory, self.settings = client, state, directory, settings
        self.on_answer, self.progress = on_answer, progress
        self.reachability = Reachability(settings.unreachable_seconds, settings.server)
        self.failed: dict[str, str] = {}

    def run(self, bodies: dict[str, dict]) -> dict[str, str]:
        earlier = [e for e in self.state.entries.values() if not e.get("finished")]
        in_flight = {custom_id for entry in earlier for custom_id in entry["custom_ids"]}
        if earlier:
            tqdm.write(f"resuming {len(earlier)} batches submitted earlier ({len(in_flight)} requests)")
        batches = [self._resume(entry) for entry in earlier]
        batches += self._submit({k: v for k, v in bodies.items() if k not in in_flight})
        for round_number in range(_MAX_ROUNDS + 1):
            expired = self._poll(batches)
            if not expired:
                break
            if round_number == _MAX_ROUNDS:
                self.failed.update(dict.fromkeys(expired, "batch_expired"))
                break
            tqdm.write(f"{len(expired)} requests expired unanswered; submitting them again")
            batches = self._submit({k: bodies[k] for k in expired if k in bodies})
        return self.failed

    def _submit(self, bodies: dict[str, dict]) -> list[dict]:
        """Writes, uploads and creates batches of `bodies`; each recorded as soon as it exists."""
        batches = []
        for chunk in _chunks(bodies, self.settings.batch_max_requests, _MAX_BYTES):
            name = f"input-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}.jsonl"
            path = os.path.join(self.directory, name)
            with open(path, "wb") as file:
                file.write(b"".join(chunk.values()))
            with open(path, "rb") as file:
                uploaded = self._call(lambda file=file: self.client.files.create(file=file, purpose="batch"))
            entry = {"input": name, "file_id": uploaded.id, "custom_ids": list(chunk)}
            self.state.append(entry)
            batches.append(self._create(entry))
        return batches

    def _resume(self, entry: dict) -> dict:
        """An earlier run's batch; one created just before a kill, so not recorded, is found by its input file."""
        if "batch_id" in entry:
            return entry
        found = next((b for b in self._call(self.client.batches.list) if b.input_file_id == entry["file_id"]), None)
        return self._record(entry, found.id) if found else self._create(entry)

    def _create(self, entry: dict) -> dict:
        batch = self._call(lambda: self.client.batches.create(
            input_file_id=entry["file_id"], endpoint=ENDPOINT, completion_window=self.settings.batch_window))
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
                    batch = self._call(lambda entry=entry: self.client.batches.retrieve(entry["batch_id"]))
                    if batch.status in _FINISHED:
                        expired += self._read_back(entry, batch)
                        waiting.remove(entry)
                        finished += len(entry["custom_ids"])
                    elif batch.request_counts:
                        in_progress += batch.request_counts.completed + batch.request_counts.failed
                bar.n = finished + in_progress
                bar.set_postfix(batches_left=len(waiting))
                if waiting:
                    time.sleep(self.settings.batch_poll_seconds)
        return expired

    def _read_back(self, entry: dict, batch) -> list[str]:
        """Answers into the journal (through `on_answer`), errors into `failed`; the batch is then finished.

        Returns the requests an expired batch left unanswered, to submit again.
        """
        if batch.status == "failed":
            reasons = "; ".join(e.message or e.code or "" for e in (batch.errors.data if batch.errors else []) or [])
            self.state.append({**entry, "finished": "failed"})
            raise TeacherError(f"batch {batch.id} failed validation: {reasons or 'no reason given'} (fix what it "
                               "names, then re-run the same command)")
        answered = set()
        for file_id in (batch.output_file_id, batch.error_file_id):
            for number, line in self._lines(file_id):
                if line is None or not isinstance(line.get("custom_id"), str):
                    tqdm.write(f"batch {batch.id}: line {number} of file {file_id} is not a result line; skipped "
                               "(a re-run asks for its request again)")
                    continue
                custom_id = line["custom_id"]
                try:
                    if (line.get("error") or {}).get("code") in _NOT_RUN:
                        continue  # never ran: expired or cancelled with its batch, handled below
                    response = line.get("response") or {}
                    if response.get("status_code") != 200:
                        raise ValueError(f"HTTP {response.get('status_code')}")
                    completion = ChatCompletion.model_validate(response["body"])
                    if not completion.choices:
                        raise ValueError("no choices")
                except (ValueError, KeyError, TypeError, AttributeError):
                    self.failed[custom_id] = "api_error"
                    continue
                self.on_answer(custom_id, completion)
                answered.add(custom_id)
        unanswered = [c for c in entry["custom_ids"] if c not in answered and c not in self.failed]
        self.state.append({**entry, "finished": batch.status})
        if batch.status == "expired":
            return unanswered
        self.failed.update(dict.fromkeys(unanswered, "batch_cancelled" if batch.status == "cancelled"
                                         else "batch_no_answer"))
        return []

    def _lines(self, file_id: str | None) -> list[tuple[int, dict | None]]:
        """(line number, the line's JSON object, or None where it holds none) of a batch's result file."""
        if not file_id:
            return []
        text = self._call(lambda: self.client.files.content(file_id)).text
        return [(number, _json_object(line)) for number, line in enumerate(text.split("\n"), 1) if line.strip()]

    def _call(self, function: Callable):
        """One API call, retried on connection errors, timeouts, 429 and 5xx; other errors stop the run."""
        s = self.settings
        for attempt in range(s.max_retries + 1):
            asked, connection_failed = None, False
            try:
                result = function()
                self.reachability.replied()
                return result
            except openai.APIStatusError as error:
                self.reachability.replied()
                if not retryable(error.status_code):
                    raise TeacherError(f"Batch API: HTTP {error.status_code}: {str(error.message)[:200]} (check "
                                       "--model, --base_url and the API key)") from None
                reason, asked = f"HTTP {error.status_code}", retry_after(error.response.headers)
            except openai.APIConnectionError as error:  # timeouts too
                reason, connection_failed = type(error).__name__, True
            wait = 0.0 if attempt == s.max_retries else asked if asked is not None else backoff(attempt, s.backoff)
            if connection_failed:
                wait = self.reachability.after_connection_failure(reason, wait)
            time.sleep(wait)
        raise TeacherError(f"Batch API: gave up after {s.max_retries + 1} tries: {reason} (re-run the same command "
                           "to resume: submitted batches are recorded and polled, not submitted again)")


def _json_object(line: str) -> dict | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


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
