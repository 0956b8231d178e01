"""The one reply a sandbox child sends: its encoding and the parent's strict check of it.

A frame is a 4-byte big-endian length and UTF-8 JSON, exactly one per task:
`{"value": str}` or `{"failure": <Failure value>, "message": str}`. The child
runs untrusted code, so the parent accepts nothing else: wrong type, extra or
missing keys, oversize, bytes before or after the frame.
"""

from __future__ import annotations

import json
import struct

from eotd_jax.thoughts.outcome import Failure

MAX_FRAME_BYTES = 8192
MAX_VALUE_CHARS = 1000
MAX_MESSAGE_CHARS = 500
_CHILD_FAILURES = frozenset(Failure) - {Failure.CRASHED}


class FrameError(ValueError):
    """The child's bytes are not exactly one valid reply."""


def encode(reply: dict) -> bytes:
    body = json.dumps(reply).encode()
    return struct.pack(">I", len(body)) + body


def value_reply(value: str) -> dict:
    return {"value": value[:MAX_VALUE_CHARS]}


def failure_reply(failure: Failure, message: str) -> dict:
    return {"failure": failure.value, "message": message[:MAX_MESSAGE_CHARS]}


def decode(data: bytes) -> dict:
    """The reply in `data`, which must hold exactly one well-formed frame; else FrameError."""
    if len(data) < 4:
        raise FrameError(f"no reply ({len(data)} bytes)")
    (size,) = struct.unpack(">I", data[:4])
    if size > MAX_FRAME_BYTES or len(data) > 4 + MAX_FRAME_BYTES:
        raise FrameError("oversized reply")
    if len(data) != 4 + size:
        raise FrameError(f"reply of {len(data) - 4} bytes announced as {size}")
    try:
        reply = json.loads(data[4:].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise FrameError("reply is not JSON") from None
    if not isinstance(reply, dict):
        raise FrameError(f"reply is a {type(reply).__name__}, not an object")
    if set(reply) == {"value"} and isinstance(reply["value"], str) and len(reply["value"]) <= MAX_VALUE_CHARS:
        return reply
    if (
        set(reply) == {"failure", "message"}
        and reply["failure"] in _CHILD_FAILURES
        and isinstance(reply["message"], str)
        and len(reply["message"]) <= MAX_MESSAGE_CHARS
    ):
        return reply
    raise FrameError(f"reply with unexpected keys or types: {sorted(map(str, reply))[:4]}")
