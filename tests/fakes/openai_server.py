"""An OpenAI-compatible chat-completions server on 127.0.0.1 with canned answers, and its Batch API.

For tests and benchmarks of the API teacher with no network: it answers from a
table {question: {thought: rationale}}, can add latency, and can inject faults
per question on successive attempts: "429" (Retry-After in seconds),
"429_date" (Retry-After as an HTTP date, enforced: a request for that question
and thought before the date is refused again and counted in `early`), "500",
"timeout", "malformed" (a torn JSON body), "length", "empty", "short" (one
choice, whatever `n` asked for) and "surrogate" (a lone UTF-16 surrogate in the
content). It counts the requests it receives and notes when each arrived.
With `hold_after=N` it answers the first N chat requests and holds the rest
until `release` is set (or the server stops): a client is then mid-run for
as long as a test needs.

The Batch API (`/files`, `/files/{id}/content`, `/batches`, `/batches/{id}`)
answers a batch's lines the same way, `batch_step` lines per poll of the batch,
and counts every line submitted per `custom_id`. Faults per batch, in the order
batches are created (`batch_faults`): "expired" and "cancelled" stop a batch
halfway (the finished half is in its output file), "failed" rejects it, "stall"
holds it halfway while `stalled` is set, "malformed_line" completes it with
its first output line torn; a question whose plan holds "batch_error" gets an
error line instead of an answer (a partially failed batch).

    PYTHONPATH=. python tests/fakes/openai_server.py --answers=answers.json --latency=0.05
"""

from __future__ import annotations

import collections
import email.utils
import hashlib
import http.server
import json
import threading
import time
import urllib.parse
from email.parser import BytesParser
from email.policy import HTTP

from absl import app, flags

from data_gen.prompts import PROMPT_STYLES, load_prompt
from eotd_jax.thoughts import THOUGHTS


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # a burst of connections must not overflow the listen backlog (5 by default)


class FakeChatServer:
    def __init__(self, answers: dict[str, dict[str, str]], latency: float = 0.0,
                 faults: dict[str, list[str]] | None = None, api_key: str = "test-key", port: int = 0,
                 hold_after: int | None = None):
        self.answers, self.latency, self.faults, self.api_key = answers, latency, faults or {}, api_key
        self.hold_after, self.release = hold_after, threading.Event()
        self.systems = {load_prompt(t, style).system: t for t in THOUGHTS for style in PROMPT_STYLES}
        self.received: collections.Counter = collections.Counter()  # body hash -> count
        self.lock = threading.Lock()
        self.attempts: collections.Counter = collections.Counter()  # (question, thought) -> attempts so far
        self.arrivals: list[tuple[float, str, str]] = []  # (time.monotonic(), question, thought) of each request
        self.not_before: dict[tuple[str, str], float] = {}  # (question, thought) -> the Retry-After date given
        self.early = 0  # requests that came before the Retry-After date they were given
        self.httpd = _Server(("127.0.0.1", port), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        # The Batch API.
        self.batch_step, self.batch_faults, self.stalled = 1_000_000, [], True
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.batch_lines: dict[str, list[dict]] = {}
        self.submitted: collections.Counter = collections.Counter()  # custom_id -> times submitted in a batch
        self.polls: collections.Counter = collections.Counter()  # batch id -> retrieves

    @property
    def total_requests(self) -> int:
        return sum(self.received.values())

    def __enter__(self) -> FakeChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def reply(self, body: dict) -> tuple[int, dict, bytes]:
        """(status, headers, payload) for one chat-completions request."""
        question, thought = self._question_and_thought(body)
        with self.lock:
            self.received[hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()] += 1
            self.arrivals.append((time.monotonic(), question, thought))
            attempt = self.attempts[question, thought]
            self.attempts[question, thought] += 1
            not_before = self.not_before.get((question, thought), 0.0)
            if time.time() < not_before:
                self.early += 1
            held = self.hold_after is not None and len(self.arrivals) > self.hold_after
        if held:
            self.release.wait()
        plan = self.faults.get(question, [])
        fault = plan[attempt] if attempt < len(plan) else "ok"
        if self.latency:
            time.sleep(self.latency)
        slow_down = json.dumps({"error": {"message": "slow down"}}).encode()
        if fault == "429_date" or time.time() < not_before:
            if fault == "429_date":  # an HTTP date has whole seconds: at least one second from now
                self.not_before[question, thought] = not_before = float(int(time.time()) + 2)
            return 429, {"Retry-After": email.utils.formatdate(not_before, usegmt=True)}, slow_down
        if fault == "429":
            return 429, {"Retry-After": "0.05"}, slow_down
        if fault == "500":
            return 500, {}, json.dumps({"error": {"message": "boom"}}).encode()
        if fault == "timeout":
            time.sleep(3.0)
        if fault == "malformed":
            return 200, {}, b'{"id": "x", "choices": [ {"index": 0, "mess'
        return 200, {}, json.dumps(self.completion(body, fault)).encode()

    def _question_and_thought(self, body: dict) -> tuple[str, str]:
        messages = body["messages"]
        return messages[-1]["content"].removeprefix("Question: "), self.systems.get(messages[0]["content"], "cot")

    def completion(self, body: dict, fault: str = "ok") -> dict:
        """The chat.completion answering `body` from the table."""
        question, thought = self._question_and_thought(body)
        text = "" if fault == "empty" else self.answers.get(question, {}).get(thought, "")
        if fault == "surrogate":
            text = "\ud800" + text  # json.dumps writes it as the escape `\ud800`, as a careless server would
        n = 1 if fault == "short" else body.get("n", 1)
        choices = [{"index": i, "message": {"role": "assistant", "content": text},
                    "finish_reason": "length" if fault == "length" else "stop"} for i in range(n)]
        return {"id": "fake", "object": "chat.completion", "created": 0, "model": body["model"], "choices": choices,
                "usage": {"prompt_tokens": sum(len(m["content"]) // 4 for m in body["messages"]),
                          "completion_tokens": n * (len(text) // 4), "total_tokens": 0}}

    # The Batch API.

    def upload(self, content_type: str, data: bytes) -> tuple[int, dict]:
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + data)
        parts = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
        if "file" not in parts or parts.get("purpose") is None:
            return 400, {"error": {"message": "file and purpose are required"}}
        purpose = parts["purpose"].get_payload(decode=True).decode()
        with self.lock:
            file_id = f"file-{len(self.files)}"
            self.files[file_id] = parts["file"].get_payload(decode=True)
        return 200, {"id": file_id, "object": "file", "bytes": len(self.files[file_id]), "created_at": 0,
                     "filename": parts["file"].get_filename() or "upload.jsonl", "purpose": purpose}

    def create_batch(self, body: dict) -> tuple[int, dict]:
        if body.get("input_file_id") not in self.files:
            return 404, {"error": {"message": f"no file {body.get('input_file_id')}"}}
        if body.get("endpoint") != "/v1/chat/completions":
            return 400, {"error": {"message": f"unsupported endpoint {body.get('endpoint')}"}}
        lines = [json.loads(line) for line in self.files[body["input_file_id"]].splitlines() if line.strip()]
        with self.lock:
            batch_id = f"batch-{len(self.batches)}"
            fault = self.batch_faults[len(self.batches)] if len(self.batches) < len(self.batch_faults) else "ok"
            self.submitted.update(line["custom_id"] for line in lines)
            self.batch_lines[batch_id] = lines
            self.batches[batch_id] = {
                "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
                "input_file_id": body["input_file_id"], "completion_window": body.get("completion_window", "24h"),
                "status": "validating", "output_file_id": None, "error_file_id": None, "created_at": 0,
                "request_counts": {"total": len(lines), "completed": 0, "failed": 0}, "fault": fault, "done": 0}
        return 200, self._public(batch_id)

    def _public(self, batch_id: str) -> dict:
        return {k: v for k, v in self.batches[batch_id].items() if k not in ("fault", "done")}

    def retrieve_batch(self, batch_id: str) -> tuple[int, dict]:
        """Each poll moves a batch on by `batch_step` lines, and to the end its fault gives it."""
        if batch_id not in self.batches:
            return 404, {"error": {"message": f"no batch {batch_id}"}}
        with self.lock:
            self.polls[batch_id] += 1
            batch, lines = self.batches[batch_id], self.batch_lines[batch_id]
            if batch["status"] == "validating":
                batch["status"] = "in_progress" if batch["fault"] != "failed" else "failed"
                if batch["fault"] == "failed":
                    batch["errors"] = {"object": "list", "data": [{"code": "invalid_request", "line": 1,
                                                                   "message": "the model is not available"}]}
            elif batch["status"] == "in_progress":
                halfway = len(lines) // 2
                stop = halfway if batch["fault"] in ("expired", "cancelled") or (
                    batch["fault"] == "stall" and self.stalled) else len(lines)
                batch["done"] = min(batch["done"] + self.batch_step, stop)
                self._count(batch_id)
                if batch["done"] == len(lines):
                    batch["status"] = "completed"
                elif batch["done"] == halfway and batch["fault"] in ("expired", "cancelled"):
                    batch["status"] = batch["fault"]
                if batch["status"] != "in_progress":
                    self._write_results(batch_id)
            return 200, self._public(batch_id)

    def _failing(self, line: dict) -> bool:
        return "batch_error" in self.faults.get(self._question_and_thought(line["body"])[0], [])

    def _count(self, batch_id: str) -> None:
        batch = self.batches[batch_id]
        done = self.batch_lines[batch_id][: batch["done"]]
        failed = sum(map(self._failing, done))
        batch["request_counts"].update(completed=len(done) - failed, failed=failed)

    def _write_results(self, batch_id: str) -> None:
        batch = self.batches[batch_id]
        output, errors = [], []
        for number, line in enumerate(self.batch_lines[batch_id][: batch["done"]]):
            record = {"id": f"{batch_id}-req-{number}", "custom_id": line["custom_id"]}
            if self._failing(line):
                errors.append(record | {"response": {"status_code": 500, "request_id": "r", "body": {
                    "error": {"message": "the server had an error", "type": "server_error"}}}, "error": None})
            else:
                output.append(record | {"response": {"status_code": 200, "request_id": "r",
                                                     "body": self.completion(line["body"])}, "error": None})
        unprocessed = {"expired": ("batch_expired", "This request could not be executed before the completion "
                                                    "window expired."),
                       "cancelled": ("batch_cancelled", "This request was cancelled.")}.get(batch["status"])
        if unprocessed:  # as the API does: the lines a stopped batch never ran are in its error file
            for number, line in enumerate(self.batch_lines[batch_id][batch["done"]:], batch["done"]):
                errors.append({"id": f"{batch_id}-req-{number}", "custom_id": line["custom_id"], "response": None,
                               "error": {"code": unprocessed[0], "message": unprocessed[1]}})
        for field, records in (("output_file_id", output), ("error_file_id", errors)):
            if records:
                file_id = f"file-{len(self.files)}"
                lines = [json.dumps(r) for r in records]
                if field == "output_file_id" and batch["fault"] == "malformed_line":
                    lines[0] = lines[0][: len(lines[0]) // 2]
                self.files[file_id] = "".join(line + "\n" for line in lines).encode()
                batch[field] = file_id

    def route(self, method: str, path: str, content_type: str, data: bytes) -> tuple[int, dict, bytes]:
        """(status, headers, payload) for any request but chat completions."""
        parts = urllib.parse.urlsplit(path).path.removeprefix("/v1").strip("/").split("/")
        if method == "POST" and parts == ["files"]:
            status, answer = self.upload(content_type, data)
        elif method == "GET" and len(parts) == 3 and parts[0] == "files" and parts[2] == "content":
            if parts[1] not in self.files:
                return 404, {}, b'{"error": {"message": "no such file"}}'
            return 200, {"Content-Type": "application/octet-stream"}, self.files[parts[1]]
        elif method == "POST" and parts == ["batches"]:
            status, answer = self.create_batch(json.loads(data))
        elif method == "GET" and parts == ["batches"]:
            status, answer = 200, {"object": "list", "data": [self._public(b) for b in self.batches],
                                   "has_more": False}
        elif method == "GET" and len(parts) == 2 and parts[0] == "batches":
            status, answer = self.retrieve_batch(parts[1])
        else:
            status, answer = 404, {"error": {"message": f"no route {method} {path}"}}
        return status, {}, json.dumps(answer).encode()

    def _handler(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 (http.server's naming)
                self.do_POST()

            def do_POST(self):  # noqa: N802
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    status, headers, payload = 401, {}, json.dumps({"error": {"message": "bad key"}}).encode()
                elif self.command == "POST" and self.path.endswith("/chat/completions"):
                    status, headers, payload = server.reply(json.loads(data))
                else:
                    status, headers, payload = server.route(self.command, self.path,
                                                            self.headers.get("Content-Type", ""), data)
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
