"""The teacher's journal of paid-for responses (`eotd_jax.journal.Journal`), keyed by a hash of everything that
determines a request, so a re-run, or a run restarted after being killed, sends only the requests it lacks."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from eotd_jax.journal import Journal

__all__ = ["Journal", "request_key"]


def request_key(**fields: Any) -> str:
    """A stable hash of a request's defining fields (model, messages, params, sample)."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
