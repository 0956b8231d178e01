"""An append-only JSON-lines journal of paid-for teacher responses.

Every answered request is appended (and flushed) as one line the moment it
arrives, keyed by a hash of everything that determines it. A re-run, or a run
restarted after being killed at any moment, reads the journal and sends only
the requests it lacks. A torn last line (the process died mid-write) is cut
off on open; every complete line before it is kept.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any


def request_key(**fields: Any) -> str:
    """A stable hash of a request's defining fields (model, messages, params, sample)."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class Journal:
    def __init__(self, path: str):
        self.path = path
        self.entries: dict[str, dict] = {}
        self.dropped_torn_line = False
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._load()
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def _load(self) -> None:
        if not os.path.exists(self.path):
            return
        with open(self.path, "rb") as file:
            data = file.read()
        good_end = 0
        for line in data.splitlines(keepends=True):
            try:
                if not line.endswith(b"\n"):
                    raise ValueError("torn line")
                entry = json.loads(line)
            except ValueError:
                if good_end + len(line) < len(data):
                    raise ValueError(f"{self.path}: byte {good_end}: corrupt journal line (not the last)") from None
                self.dropped_torn_line = True
                break
            self.entries[entry["key"]] = entry
            good_end += len(line)
        if good_end < len(data):
            with open(self.path, "r+b") as file:
                file.truncate(good_end)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def append(self, entry: dict) -> None:
        """Records one response; it is on disk (in the OS) when this returns."""
        self._file.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._file.flush()
        self.entries[entry["key"]] = entry

    def close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
