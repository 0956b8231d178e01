"""The one reply a sandbox child sends: its encoding and the parent's strict, total reading of it.

A frame is a 4-byte big-endian length and UTF-8 JSON, exactly one per task:
`{"value": "<numerator>/<denominator>"}` (the exact answer, in lowest terms or
not, at most `answers.MAX_DIGITS` digits each) or `{"failure": <Failure
value>, "message": str}`. The child turns whatever `ans` holds into that exact
form itself, under its own limits; the parent only checks the bytes: wrong type,
extra or missing keys, oversize, bytes before or after the frame, a value not
in the exact form. `decode` gives an `Outcome` for every input or raises
FrameError, nothing else: no reply can stop the parent.
"""

from __future__ import annotations

import json
import re
import struct
from fractions import Fraction

from eotd_jax.thoughts.answers import MAX_DIGITS, too_many_digits
from eotd_jax.thoughts.outcome import Failure, Outcome

MAX_FRAME_BYTES = 8192
MAX_MESSAGE_CHARS = 500
_CHILD_FAILURES = frozenset(Failure) - {Failure.CRASHED}
_EXACT_VALUE = re.compile(rf"(-?)([0-9]{{1,{MAX_DIGITS}}})/([1-9][0-9]{{0,{MAX_DIGITS - 1}}})")


class FrameError(ValueError):
    """The child's bytes are not exactly one valid reply."""


def encode(reply: dict) -> bytes:
    body = json.dumps(reply).encode()
    return struct.pack(">I", len(body)) + body


def value_reply(value: Fraction) -> dict:
    """The reply for an exact answer; an answer beyond the digit cap is a TOO_LARGE failure instead."""
    if too_many_digits(value):
        return failure_reply(Failure.TOO_LARGE, f"`ans` has more than {MAX_DIGITS} digits")
    return {"value": f"{value.numerator}/{value.denominator}"}


def failure_reply(failure: Failure, message: str) -> dict:
    return {"failure": failure.value, "message": message[:MAX_MESSAGE_CHARS]}


def decode(data: bytes) -> Outcome:
    """The outcome `data` states, which must be exactly one well-formed frame; else FrameError."""
    if len(data) < 4:
        raise FrameError(f"no reply ({len(data)} bytes)")
    (size,) = struct.unpack(">I", data[:4])
    if size > MAX_FRAME_BYTES or len(data) > 4 + MAX_FRAME_BYTES:
        raise FrameError("oversized reply")
    if len(data) != 4 + size:
        raise FrameError(f"reply of {len(data) - 4} bytes announced as {size}")
    try:
        reply = json.loads(data[4:].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise FrameError("reply is not JSON") from None
    if not isinstance(reply, dict):
        raise FrameError(f"reply is a {type(reply).__name__}, not an object")
    if set(reply) == {"value"} and isinstance(reply["value"], str):
        match = _EXACT_VALUE.fullmatch(reply["value"])
        if match is None:
            raise FrameError(f"value {reply['value'][:40]!r} is not an exact number")
        sign = -1 if match[1] else 1
        return Outcome(value=Fraction(sign * int(match[2]), int(match[3])))
    if (
        set(reply) == {"failure", "message"}
        and isinstance(reply["failure"], str)
        and reply["failure"] in _CHILD_FAILURES
        and isinstance(reply["message"], str)
        and len(reply["message"]) <= MAX_MESSAGE_CHARS
    ):
        return Outcome.fail(Failure(reply["failure"]), reply["message"])
    raise FrameError(f"reply with unexpected keys or types: {sorted(map(str, reply))[:4]}")
