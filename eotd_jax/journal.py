"""An append-only JSON-lines journal that survives being killed at any moment.

Each entry is appended and flushed as one line the moment it is done (a
teacher's paid-for answer, an evaluated question). Reopening reads every
complete line and cuts off a torn last one (the process died mid-write), so a
restarted job redoes only what is missing. A corrupt line before the last is
an error, not something to skip silently. A `gs://` journal is kept in a local
`paths.Mirror` and uploaded every `push_seconds` and on close, so a crash there
loses at most that much work.
"""

from __future__ import annotations

import json
import operator
import os
from collections.abc import Callable

from eotd_jax import paths


class Journal:
    """Entries by `key(entry)`; reopening keeps every complete line and cuts off a torn last one."""

    def __init__(self, path: str, key: Callable[[dict], str] = operator.itemgetter("key"),
                 push_seconds: float = 30.0):
        self.location = location = paths.absolute(path)
        self._mirror = paths.Mirror(location.rsplit("/", 1)[0], min_push_seconds=push_seconds)
        name = location.rsplit("/", 1)[1]
        self._mirror.pull(name)
        self.path = os.path.join(self._mirror.local, name)  # the local file (the journal itself when local)
        self._key = key
        self.entries: dict[str, dict] = {}
        self.dropped_torn_line = False
        self._load()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

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
                    raise ValueError(f"{self.location}: byte {good_end}: corrupt line (not the last)") from None
                self.dropped_torn_line = True
                break
            self.entries[self._key(entry)] = entry
            good_end += len(line)
        if good_end < len(data):
            with open(self.path, "r+b") as file:
                file.truncate(good_end)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def append(self, entry: dict) -> None:
        """Records one entry; it is on disk (in the OS) when this returns."""
        self._file.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._file.flush()
        self.entries[self._key(entry)] = entry
        self._mirror.push()

    def close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._mirror.close()
