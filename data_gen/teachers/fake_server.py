"""An OpenAI-compatible chat-completions server on 127.0.0.1 with canned answers.

For tests and benchmarks of the API teacher with no network: it answers from a
table {question: {thought: rationale}}, can add latency, and can inject faults
per question on successive attempts ("429", "500", "timeout", "malformed",
"length", "empty"). It counts the requests it receives.

    python -m data_gen.teachers.fake_server --answers=answers.json --latency=0.05
"""

from __future__ import annotations

import collections
import hashlib
import http.server
import json
import threading
import time

from absl import app, flags

from data_gen.prompts import PROMPT_STYLES, load_prompt
from eotd_jax.thoughts.scoring import THOUGHTS


class FakeChatServer:
    def __init__(self, answers: dict[str, dict[str, str]], latency: float = 0.0,
                 faults: dict[str, list[str]] | None = None, api_key: str = "test-key", port: int = 0):
        self.answers, self.latency, self.faults, self.api_key = answers, latency, faults or {}, api_key
        self.systems = {load_prompt(t, style).system: t for t in THOUGHTS for style in PROMPT_STYLES}
        self.received: collections.Counter = collections.Counter()  # body hash -> count
        self.lock = threading.Lock()
        self.attempts: collections.Counter = collections.Counter()  # question -> attempts so far
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def total_requests(self) -> int:
        return sum(self.received.values())

    def __enter__(self) -> FakeChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def reply(self, body: dict) -> tuple[int, dict, bytes]:
        """(status, headers, payload) for one chat-completions request."""
        messages = body["messages"]
        question = messages[-1]["content"].removeprefix("Question: ")
        thought = self.systems.get(messages[0]["content"], "cot")
        with self.lock:
            self.received[hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()] += 1
            attempt = self.attempts[question, thought]
            self.attempts[question, thought] += 1
        plan = self.faults.get(question, [])
        fault = plan[attempt] if attempt < len(plan) else "ok"
        if self.latency:
            time.sleep(self.latency)
        if fault == "429":
            return 429, {"Retry-After": "0.05"}, json.dumps({"error": {"message": "slow down"}}).encode()
        if fault == "500":
            return 500, {}, json.dumps({"error": {"message": "boom"}}).encode()
        if fault == "timeout":
            time.sleep(3.0)
        if fault == "malformed":
            return 200, {}, b'{"id": "x", "choices": [ {"index": 0, "mess'
        text = "" if fault == "empty" else self.answers.get(question, {}).get(thought, "")
        n = body.get("n", 1)
        choices = [{"index": i, "message": {"role": "assistant", "content": text},
                    "finish_reason": "length" if fault == "length" else "stop"} for i in range(n)]
        payload = {"id": "fake", "object": "chat.completion", "created": 0, "model": body["model"],
                   "choices": choices,
                   "usage": {"prompt_tokens": sum(len(m["content"]) // 4 for m in messages),
                             "completion_tokens": n * (len(text) // 4),
                             "total_tokens": 0}}
        return 200, {}, json.dumps(payload).encode()

    def _handler(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                if self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    status, headers, payload = 401, {}, json.dumps({"error": {"message": "bad key"}}).encode()
                elif not self.path.endswith("/chat/completions"):
                    status, headers, payload = 404, {}, b'{"error": {"message": "no such route"}}'
                else:
                    status, headers, payload = server.reply(body)
                try:
                    self.send_response(status)
                    for name, value in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def log_message(self, *args):
                pass

        return Handler


_ANSWERS = flags.DEFINE_string("answers", None, "JSON file {question: {thought: rationale}}")
_LATENCY = flags.DEFINE_float("latency", 0.0, "seconds added to every reply")
_PORT = flags.DEFINE_integer("port", 8399, "port on 127.0.0.1")
_API_KEY = flags.DEFINE_string("api_key", "test-key", "the key clients must send")


def main(argv):
    del argv
    answers = {}
    if _ANSWERS.value:
        with open(_ANSWERS.value, encoding="utf-8") as file:
            answers = json.load(file)
    with FakeChatServer(answers, _LATENCY.value, api_key=_API_KEY.value, port=_PORT.value) as server:
        print(f"serving on {server.url}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    app.run(main)
