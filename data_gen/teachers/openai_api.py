"""A teacher behind any OpenAI-compatible chat-completions server (OpenAI, vLLM, ...).

Requests run concurrently under a cap, paced by requests-per-minute and
tokens-per-minute buckets, and are retried with exponential backoff (honouring
Retry-After) on 429, 5xx, timeouts, dropped connections and malformed replies.
Every answered request goes to the journal first, so nothing paid for is lost
and a restarted run sends only what is missing. Errors no retry can fix (bad
key, unknown model, rejected request) stop the run with one line. With
`ApiSettings.batch` set, the same requests go through the Batch API instead
(half the price; data_gen/teachers/openai_batch.py) into the same journal.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import random
import time
from collections.abc import Sequence

import openai
from openai.types.chat import ChatCompletion
from tqdm import tqdm

from data_gen.prompts import clean_response, load_prompt
from data_gen.teachers.base import Candidate, TeacherError, Usage
from data_gen.teachers.journal import Journal, request_key
from data_gen.teachers.openai_batch import BatchSettings, run_batches, unfinished_batches
from eotd_jax.benchmarks import Problem

_RETRYABLE_STATUS = {408, 409, 429}
logging.getLogger("httpx").setLevel(logging.WARNING)  # absl's INFO default would log every request


@dataclasses.dataclass(frozen=True)
class ApiSettings:
    model: str
    base_url: str | None = None  # None: the OpenAI API (or OPENAI_BASE_URL)
    api_key_env: str = "OPENAI_API_KEY"
    prompt_style: str = "paper"  # data_gen.prompts.PROMPT_STYLES
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 512
    samples_per_request: int = 1  # the API's `n`
    concurrency: int = 64
    requests_per_minute: float = 0.0  # 0: unlimited
    tokens_per_minute: float = 0.0
    max_retries: int = 6
    timeout_seconds: float = 60.0
    backoff_seconds: float = 1.0
    price_prompt_per_million: float = 0.0  # US dollars, for the cost report
    price_completion_per_million: float = 0.0
    batch: BatchSettings | None = None  # the Batch API instead of live requests (half the price)


@dataclasses.dataclass(frozen=True)
class _Request:
    key: str
    problem_id: str
    thought: str
    first_sample: int
    messages: list
    params: dict


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

    def __init__(self, settings: ApiSettings, journal_path: str, progress: bool = True):
        self.settings = settings
        self.name = settings.model
        self.journal_path = journal_path
        self.progress = progress
        self.usage = Usage()

    def requests(self, problems: Sequence[Problem], thoughts: Sequence[str], samples: int) -> list[_Request]:
        """Every request the run needs; the key covers all that determines the answer."""
        s = self.settings
        requests = []
        for thought in thoughts:
            prompt = load_prompt(thought, s.prompt_style)
            for problem in problems:
                messages = prompt.messages(problem.question)
                for first in range(0, samples, s.samples_per_request):
                    params = {"temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_tokens,
                              "n": min(s.samples_per_request, samples - first)}
                    key = request_key(model=s.model, messages=messages, params=params, first_sample=first)
                    requests.append(_Request(key, problem.id, thought, first, messages, params))
        return requests

    def generate(self, problems: Sequence[Problem], thoughts: Sequence[str], samples: int) -> list[Candidate]:
        requests = self.requests(problems, thoughts, samples)
        s = self.settings
        journal = Journal(self.journal_path)
        try:
            pending = [r for r in requests if r.key not in journal]
            self.usage.cached = len(requests) - len(pending)
            if not pending:
                failed = {}
            elif s.batch:
                failed = self._send_batches(pending, journal)
            elif waiting := unfinished_batches(self._batch_dir()):
                raise TeacherError(f"{waiting} batches submitted by an earlier --batch_api run are unfinished in "
                                   f"{self._batch_dir()}; re-run with --batch_api to collect them (sending the "
                                   "requests live would pay for them twice)")
            else:
                failed = asyncio.run(self._send_all(pending, journal))
        finally:
            journal.close()
        candidates = []
        for request in requests:
            entry = journal.get(request.key)
            for offset in range(request.params["n"]):
                sample = request.first_sample + offset
                if entry is None:
                    candidates.append(Candidate(request.problem_id, request.thought, sample, None,
                                                failed.get(request.key, "api_error")))
                    continue
                choices = entry["choices"]
                choice = choices[offset] if offset < len(choices) else {"text": "", "finish_reason": "missing"}
                candidates.append(_candidate(request, sample, choice))
        return candidates

    def _api_key(self) -> str:
        api_key = os.environ.get(self.settings.api_key_env)
        if not api_key:
            raise TeacherError(f"no API key: set the environment variable {self.settings.api_key_env} (any value "
                               "for servers that need none)")
        return api_key

    def _batch_dir(self) -> str:
        """Where the Batch API's request files and its record of submitted batches are kept: beside the journal."""
        return os.path.join(os.path.dirname(os.path.abspath(self.journal_path)), "batch_api")

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

        client = openai.OpenAI(api_key=self._api_key(), base_url=s.base_url, max_retries=0,
                               timeout=s.timeout_seconds)
        directory = self._batch_dir()
        os.makedirs(directory, exist_ok=True)
        try:
            bodies = {r.key: {"model": s.model, "messages": r.messages, **r.params} for r in pending}
            failed = run_batches(client, bodies, directory, s.batch, on_answer, self.progress)
        finally:
            client.close()
        for key, reason in failed.items():
            if key in by_key:
                tqdm.write(f"no answer for {by_key[key].problem_id}/{by_key[key].thought}: {reason}")
        return failed

    async def _send_all(self, pending: list[_Request], journal: Journal) -> dict[str, str]:
        s = self.settings
        client = openai.AsyncOpenAI(api_key=self._api_key(), base_url=s.base_url, max_retries=0,
                                    timeout=s.timeout_seconds)
        gate = asyncio.Semaphore(s.concurrency)
        requests_bucket, tokens_bucket = _RateLimiter(s.requests_per_minute), _RateLimiter(s.tokens_per_minute)
        failed: dict[str, str] = {}
        bar = tqdm(total=len(pending), desc=f"asking {s.model}", unit="req", disable=not self.progress)

        async def one(request: _Request) -> None:
            async with gate:
                estimate = sum(len(m["content"]) for m in request.messages) / 4 + s.max_tokens * request.params["n"]
                await requests_bucket.acquire(1)
                await tokens_bucket.acquire(estimate)
                entry = await self._send(client, request, failed)
            if entry is not None:
                journal.append(entry)
                self._account(entry)
            bar.update(1)
            bar.set_postfix(tokens=self.usage.prompt_tokens + self.usage.completion_tokens, refresh=False)

        try:
            async with asyncio.TaskGroup() as group:
                for request in pending:
                    group.create_task(one(request))
        except* TeacherError as errors:
            raise errors.exceptions[0] from None
        finally:
            bar.close()
            await client.close()
        return failed

    async def _send(self, client: openai.AsyncOpenAI, request: _Request, failed: dict[str, str]) -> dict | None:
        """The journal entry for one request, or None after the last retry (reason in `failed`)."""
        s = self.settings
        for attempt in range(s.max_retries + 1):
            self.usage.requests += 1
            try:
                # `post` with a plain body: the typed `create` re-walks the few-shot messages per
                # request, which costs more CPU than the HTTP exchange itself.
                response = await client.post("/chat/completions", cast_to=ChatCompletion,
                                             body={"model": s.model, "messages": request.messages, **request.params})
                if not response.choices:
                    raise ValueError("reply has no choices")
                return _entry(request, response)
            except openai.APIStatusError as error:
                if error.status_code not in _RETRYABLE_STATUS and error.status_code < 500:
                    raise TeacherError(f"{s.base_url or 'OpenAI API'}: HTTP {error.status_code} for model "
                                       f"{s.model!r}: {_short(error)}") from None
                reason, wait = f"http_{error.status_code}", _retry_after(error.response)
            except (openai.APITimeoutError, openai.APIConnectionError) as error:
                reason, wait = type(error).__name__, None
            except (openai.APIResponseValidationError, ValueError, TypeError, AttributeError) as error:
                reason, wait = f"malformed reply ({type(error).__name__})", None
            if attempt < s.max_retries:
                backoff = s.backoff_seconds * 2**attempt * (0.5 + random.random())  # noqa: S311 (jitter)
                await asyncio.sleep(wait if wait is not None else min(backoff, 60.0))
        failed[request.key] = "api_error"
        tqdm.write(f"gave up on {request.problem_id}/{request.thought} after {s.max_retries + 1} tries: {reason}")
        return None

    def _account(self, entry: dict, price_factor: float = 1.0) -> None:
        """Tokens and cost of one answer; the Batch API charges half (`price_factor`=0.5)."""
        usage, s = entry["usage"], self.settings
        self.usage.prompt_tokens += usage["prompt_tokens"]
        self.usage.completion_tokens += usage["completion_tokens"]
        self.usage.cost_usd += price_factor * (usage["prompt_tokens"] * s.price_prompt_per_million
                                               + usage["completion_tokens"] * s.price_completion_per_million) / 1e6


def _entry(request: _Request, response: ChatCompletion) -> dict:
    """The journal entry of one answered request (live or batch)."""
    return {"key": request.key, "problem_id": request.problem_id, "thought": request.thought,
            "first_sample": request.first_sample, **_answer(response)}


def _answer(response: ChatCompletion) -> dict:
    return {
        "choices": [{"text": c.message.content or "", "finish_reason": c.finish_reason}
                    for c in sorted(response.choices, key=lambda c: c.index)],
        "usage": {"prompt_tokens": getattr(response.usage, "prompt_tokens", 0) or 0,
                  "completion_tokens": getattr(response.usage, "completion_tokens", 0) or 0},
    }


def _candidate(request: _Request, sample: int, choice: dict) -> Candidate:
    text = clean_response(choice["text"])
    if choice["finish_reason"] == "length":
        return Candidate(request.problem_id, request.thought, sample, None, "truncated")
    if not text:
        return Candidate(request.problem_id, request.thought, sample, None, "empty")
    return Candidate(request.problem_id, request.thought, sample, text)


def _retry_after(response) -> float | None:
    headers = getattr(response, "headers", None) or {}
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        try:
            return min(float(headers[name]) * scale, 300.0)
        except (KeyError, ValueError, TypeError):
            continue
    return None


def _short(error: openai.APIStatusError) -> str:
    try:
        return str(error.body.get("message") if isinstance(error.body, dict) else error.message)[:200]
    except Exception:  # noqa: BLE001 (an error message must never raise)
        return json.dumps(str(error))[:200]
