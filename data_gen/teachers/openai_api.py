"""A teacher behind any OpenAI-compatible chat-completions server (OpenAI, vLLM, ...).

Requests run concurrently under a cap, every attempt (retries too) paced by
requests-per-minute and tokens-per-minute buckets, and are retried as
data_gen/teachers/retries.py says. Every answered request goes to the journal
first, so nothing paid for is lost and a restarted run sends only what is
missing. A reply with fewer choices than the `n` asked for is kept, and the
samples it left out are asked for in a further request. Errors no retry can
fix (bad key, unknown model, rejected request), an unreachable server, and a
run in which no request got an answer stop the run with one line. With
`ApiSettings.batch_api` the same requests go through the Batch API instead
(half the price; data_gen/teachers/openai_batch.py) into the same journal.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import os
import time
from collections.abc import Sequence

import openai
from openai.types.chat import ChatCompletion
from tqdm import tqdm

from data_gen.prompts import clean_response, load_prompt
from data_gen.teachers.base import Candidate, TeacherError, Usage
from data_gen.teachers.journal import Journal, request_key
from data_gen.teachers.openai_batch import run_batches, unfinished_batches
from data_gen.teachers.retries import Reachability, backoff, retry_after, retryable
from data_gen.teachers.settings import ApiSettings
from eotd_jax.benchmarks import Problem

_CONNECT_SECONDS = 10.0  # a server slower than this to accept a connection counts as unreachable
for _transport in ("httpx", "httpx2"):  # openai's HTTP client before 3.0, and from 3.0
    logging.getLogger(_transport).setLevel(logging.WARNING)  # absl's INFO default would log every request


@dataclasses.dataclass(frozen=True)
class _Request:
    key: str
    problem_id: str
    thought: str
    first_sample: int
    messages: list
    params: dict


def token_estimate(request: _Request) -> float:
    """The tokens a request may use, for the tokens-per-minute bucket: prompt characters / 4, plus the limit."""
    return sum(len(m["content"]) for m in request.messages) / 4 + request.params["max_tokens"] * request.params["n"]


class _RateLimiter:
    """A token bucket refilled at `per_minute` units a minute, holding up to one second's worth."""

    def __init__(self, per_minute: float):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.updated = time.monotonic()
        self.lock = asyncio.Lock()

    async def acquire(self, amount: float = 1.0) -> None:
        if self.rate <= 0:
            return
        async with self.lock:
            while True:
                now = time.monotonic()
                self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
                self.updated = now
                if self.level >= min(amount, self.capacity):
                    self.level -= amount
                    return
                await asyncio.sleep((min(amount, self.capacity) - self.level) / self.rate)


class OpenAITeacher:
    """Samples rationales from a chat model; see the module docstring for the guarantees."""

    def __init__(self, settings: ApiSettings, journal_path: str, prompt_style: str = "paper", progress: bool = True):
        self.settings = settings
        self.name = settings.model
        self.journal_path = journal_path
        self.prompt_style = prompt_style
        self.progress = progress
        self.usage = Usage()
        self.last_error = ""  # why the latest failed attempt failed, for the line that stops a run

    def requests(self, problems: Sequence[Problem], thoughts: Sequence[str], samples: int) -> list[_Request]:
        """The requests the run needs, before any short reply asks for more."""
        requests = []
        for thought in thoughts:
            prompt = load_prompt(thought, self.prompt_style)
            for problem in problems:
                messages = prompt.messages(problem.question)
                for first in range(0, samples, self.settings.n_per_request):
                    n = min(self.settings.n_per_request, samples - first)
                    requests.append(self._request(problem.id, thought, messages, first, n))
        return requests

    def _request(self, problem_id: str, thought: str, messages: list, first_sample: int, n: int) -> _Request:
        """A request for samples `first_sample` .. `first_sample + n - 1`; the key covers all that determines them."""
        s = self.settings
        params = {"temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_tokens, "n": n}
        key = request_key(model=s.model, messages=messages, params=params, first_sample=first_sample)
        return _Request(key, problem_id, thought, first_sample, messages, params)

    def _rest(self, request: _Request, entry: dict | None) -> _Request | None:
        """The request for the samples a short reply (fewer choices than `n`) left out; None when there are none."""
        answered = len(entry["choices"]) if entry else 0
        if not 0 < answered < request.params["n"]:
            return None
        return self._request(request.problem_id, request.thought, request.messages,
                             request.first_sample + answered, request.params["n"] - answered)

    def generate(self, problems: Sequence[Problem], thoughts: Sequence[str], samples: int) -> list[Candidate]:
        requests = self.requests(problems, thoughts, samples)
        journal = Journal(self.journal_path)
        failed: dict[str, str] = {}
        try:
            asking = requests
            while asking:  # each round asks for what the short replies of the one before left out
                pending = [r for r in asking if r.key not in journal]
                self.usage.cached += len(asking) - len(pending)
                if pending:
                    failed |= self._send(pending, journal)
                asking = [rest for r in asking if (rest := self._rest(r, journal.get(r.key)))]
        finally:
            journal.close()
        if requests and not any(r.key in journal for r in requests):
            why = self.last_error or _counts(failed.values())
            raise TeacherError(f"no answer to any of the {len(requests)} requests (last error: {why}) "
                               f"(check that {self.settings.server} is up and serves --model={self.settings.model}, "
                               "then re-run the same command)")
        if failed:
            tqdm.write(f"{len(failed)} requests got no answer ({_counts(failed.values())}); re-run the same command "
                       "to ask them again")
        return [candidate for request in requests for candidate in self._candidates(request, journal, failed)]

    def _candidates(self, request: _Request, journal: Journal, failed: dict[str, str]) -> list[Candidate]:
        """The request's samples: from its answer, and from the requests for what a short answer left out."""
        candidates = []
        while request is not None:
            n, entry = request.params["n"], journal.get(request.key)
            if entry is None:
                reason = failed.get(request.key, "api_error")
                return candidates + [Candidate(request.problem_id, request.thought, request.first_sample + i, None,
                                               reason) for i in range(n)]
            choices = entry["choices"][:n]
            candidates += [_candidate(request, request.first_sample + i, c) for i, c in enumerate(choices)]
            request = self._rest(request, entry)
        return candidates

    def _api_key(self) -> str:
        api_key = os.environ.get(self.settings.api_key_env)
        if not api_key:
            raise TeacherError(f"no API key (set the environment variable {self.settings.api_key_env}; any value "
                               "for servers that need none)")
        return api_key

    def _batch_dir(self) -> str:
        """Where the Batch API's request files and its record of submitted batches are kept: beside the journal."""
        return os.path.join(os.path.dirname(os.path.abspath(self.journal_path)), "batch_api")

    def _send(self, pending: list[_Request], journal: Journal) -> dict[str, str]:
        """Asks the server for `pending`, journaling each answer; returns {key: reason} of those left unanswered."""
        if self.settings.batch_api:
            return self._send_batches(pending, journal)
        if waiting := unfinished_batches(self._batch_dir()):
            raise TeacherError(f"{waiting} batches submitted by an earlier --batch_api run are unfinished in "
                               f"{self._batch_dir()} (re-run with --batch_api to collect them: sending the "
                               "requests live would pay for them twice)")
        return asyncio.run(self._send_live(pending, journal))

    def _send_batches(self, pending: list[_Request], journal: Journal) -> dict[str, str]:
        """The pending requests through the Batch API; answers are journaled as they are read back."""
        s = self.settings
        by_key = {r.key: r for r in pending}
        self.usage.requests += len(pending)

        def on_answer(key: str, response: ChatCompletion) -> None:
            if key in journal:  # read back again after a kill between journaling and recording the batch
                return
            request = by_key.get(key)  # None: submitted by an earlier run with other settings; still paid for
            entry = _entry(request, response) if request else {"key": key, **_answer(response)}
            journal.append(entry)
            self._account(entry, price_factor=0.5)

        client = openai.OpenAI(api_key=self._api_key(), base_url=s.base_url, max_retries=0, timeout=_timeout(s))
        directory = self._batch_dir()
        os.makedirs(directory, exist_ok=True)
        try:
            bodies = {r.key: {"model": s.model, "messages": r.messages, **r.params} for r in pending}
            failed = run_batches(client, bodies, directory, s, on_answer, self.progress)
        finally:
            client.close()
        for key, reason in failed.items():
            if key in by_key:
                tqdm.write(f"no answer for {by_key[key].problem_id}/{by_key[key].thought}: {reason}")
        return failed

    async def _send_live(self, pending: list[_Request], journal: Journal) -> dict[str, str]:
        s = self.settings
        client = openai.AsyncOpenAI(api_key=self._api_key(), base_url=s.base_url, max_retries=0, timeout=_timeout(s))
        gate = asyncio.Semaphore(s.concurrency)
        buckets = _RateLimiter(s.rpm), _RateLimiter(s.tpm)
        reachability = Reachability(s.unreachable_seconds, s.server)
        failed: dict[str, str] = {}
        bar = tqdm(total=len(pending), desc=f"asking {s.model}", unit="req", disable=not self.progress)

        async def one(request: _Request) -> None:
            async with gate:
                entry = await self._ask(client, request, buckets, reachability)
            if entry is None:
                failed[request.key] = "api_error"
            else:
                journal.append(entry)
                self._account(entry)
            bar.update(1)
            bar.set_postfix(tokens=self.usage.prompt_tokens + self.usage.completion_tokens, refresh=False)

        try:
            async with asyncio.TaskGroup() as group:
                for request in pending:
                    group.create_task(one(request))
        except* Exception as errors:  # the first error stops the run (the others are the same, or its echo)
            raise errors.exceptions[0] from None
        finally:
            bar.close()
            await client.close()
        return failed

    async def _ask(self, client: openai.AsyncOpenAI, request: _Request, buckets: tuple[_RateLimiter, _RateLimiter],
                   reachability: Reachability) -> dict | None:
        """The journal entry for one request, or None after the last retry. Every attempt waits for the buckets."""
        s = self.settings
        requests_bucket, tokens_bucket = buckets
        for attempt in range(s.max_retries + 1):
            await requests_bucket.acquire(1)
            await tokens_bucket.acquire(token_estimate(request))
            self.usage.requests += 1
            asked, connection_failed = None, False
            try:
                # `post` with a plain body: the typed `create` re-walks the few-shot messages per
                # request, which costs more CPU than the HTTP exchange itself.
                response = await client.post("/chat/completions", cast_to=ChatCompletion,
                                             body={"model": s.model, "messages": request.messages, **request.params})
                reachability.replied()
                if not response.choices:
                    raise ValueError("reply has no choices")
                return _entry(request, response)
            except openai.APIStatusError as error:
                reachability.replied()
                if not retryable(error.status_code):
                    raise TeacherError(f"{s.server}: HTTP {error.status_code} for model {s.model!r}: "
                                       f"{_short(error)} (check --model, --base_url and the API key)") from None
                reason, asked = f"http_{error.status_code}", retry_after(error.response.headers)
            except openai.APIConnectionError as error:  # timeouts too
                reason, connection_failed = type(error).__name__, True
            except (openai.APIResponseValidationError, ValueError, TypeError, AttributeError) as error:
                reachability.replied()
                reason = f"malformed reply ({type(error).__name__})"
            self.last_error = reason
            wait = 0.0 if attempt == s.max_retries else asked if asked is not None else backoff(attempt, s.backoff)
            if connection_failed:
                wait = reachability.after_connection_failure(reason, wait)
            await asyncio.sleep(wait)
        tqdm.write(f"gave up on {request.problem_id}/{request.thought} after {s.max_retries + 1} tries: {reason}")
        return None

    def _account(self, entry: dict, price_factor: float = 1.0) -> None:
        """Tokens and cost of one answer; the Batch API charges half (`price_factor`=0.5)."""
        usage, s = entry["usage"], self.settings
        self.usage.prompt_tokens += usage["prompt_tokens"]
        self.usage.completion_tokens += usage["completion_tokens"]
        self.usage.cost_usd += price_factor * (usage["prompt_tokens"] * s.price_prompt
                                               + usage["completion_tokens"] * s.price_completion) / 1e6


def _timeout(settings: ApiSettings) -> openai.Timeout:
    return openai.Timeout(settings.timeout, connect=min(settings.timeout, _CONNECT_SECONDS))


def _counts(reasons) -> str:
    return ", ".join(f"{reason}: {count}" for reason, count in collections.Counter(reasons).most_common())


def _entry(request: _Request, response: ChatCompletion) -> dict:
    """The journal entry of one answered request (live or batch)."""
    return {"key": request.key, "problem_id": request.problem_id, "thought": request.thought,
            "first_sample": request.first_sample, **_answer(response)}


def _answer(response: ChatCompletion) -> dict:
    return {
        "choices": [{"text": _text(c.message.content), "finish_reason": c.finish_reason}
                    for c in sorted(response.choices, key=lambda c: c.index)],
        "usage": {"prompt_tokens": getattr(response.usage, "prompt_tokens", 0) or 0,
                  "completion_tokens": getattr(response.usage, "completion_tokens", 0) or 0},
    }


def _text(content: str | None) -> str:
    """A reply's text with each lone surrogate (invalid Unicode a JSON reply can carry) as U+FFFD, so it can be
    journaled and written to shards."""
    return (content or "").encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _candidate(request: _Request, sample: int, choice: dict) -> Candidate:
    text = clean_response(choice["text"])
    if choice["finish_reason"] == "length":
        return Candidate(request.problem_id, request.thought, sample, None, "truncated")
    if not text:
        return Candidate(request.problem_id, request.thought, sample, None, "empty")
    return Candidate(request.problem_id, request.thought, sample, text)


def _short(error: openai.APIStatusError) -> str:
    try:
        return str(error.body.get("message") if isinstance(error.body, dict) else error.message)[:200]
    except Exception:  # noqa: BLE001 (an error message must never raise)
        return json.dumps(str(error))[:200]
