"""When the API teacher tries a request again, how long it waits first, and when it stops trying.

A 408, 409, 429 or 5xx reply, a timeout, a dropped connection and a malformed
reply are worth another try; any other status is an error no retry can fix.
The wait is the server's own (`retry-after-ms`, or `Retry-After` in seconds
or as an HTTP date, RFC 9110), else exponential backoff with jitter. A server
that has sent no reply at all for `unreachable_seconds` while requests fail
to connect stops the run, instead of every request retrying on its own.
"""

from __future__ import annotations

import datetime
import email.utils
import math
import random
import time
from collections.abc import Mapping

from data_gen.teachers.base import TeacherError

MAX_WAIT_SECONDS = 300.0  # a longer Retry-After is taken as this
_MAX_BACKOFF_SECONDS = 60.0


def retryable(status: int) -> bool:
    return status in (408, 409, 429) or status >= 500


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """The seconds the server asks to wait, or None when it does not say (or says it in no known form)."""
    headers = headers or {}
    milliseconds, value = _number(headers.get("retry-after-ms")), headers.get("retry-after")
    if milliseconds is not None:
        seconds = milliseconds / 1000
    elif value is not None:
        seconds = _number(value)
        seconds = _until(value) if seconds is None else seconds
    else:
        return None
    return None if seconds is None else min(max(seconds, 0.0), MAX_WAIT_SECONDS)


def _number(value: str | None) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _until(http_date: str) -> float | None:
    """Seconds from now to an HTTP date ("Wed, 21 Oct 2015 07:28:00 GMT")."""
    try:
        moment = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # "-0000": UTC, says RFC 5322
        moment = moment.replace(tzinfo=datetime.UTC)
    return (moment - datetime.datetime.now(datetime.UTC)).total_seconds()


def backoff(attempt: int, first_seconds: float) -> float:
    """The wait before retry `attempt + 1`: doubling from `first_seconds`, with jitter, at most a minute."""
    return min(first_seconds * 2**attempt * (0.5 + random.random()), _MAX_BACKOFF_SECONDS)  # noqa: S311


class Reachability:
    """When the server last sent any reply; a run that has heard nothing for `seconds` is stopped."""

    def __init__(self, seconds: float, server: str):
        self.seconds, self.server = seconds, server
        self.last_reply = time.monotonic()

    def replied(self) -> None:
        self.last_reply = time.monotonic()

    def after_connection_failure(self, reason: str, wait: float) -> float:
        """`wait` cut at the deadline, so the last try falls on it; past the deadline, stops the run."""
        left = self.last_reply + self.seconds - time.monotonic()
        if left <= 0:
            raise TeacherError(f"{self.server} unreachable: no reply for {time.monotonic() - self.last_reply:.0f} s "
                               f"({reason}) (start the server or fix --base_url; every answer received is in the "
                               "journal: re-run the same command to resume)")
        return min(wait, left)
