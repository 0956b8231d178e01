"""One trainer per workdir: `<workdir>/trainer.lock`, held from the start of a run to its end.

    with run_lock.hold(workdir):
        train(config, workdir)

A second trainer on the same workdir refuses, naming the first's host and pid: two would write the same step
directories. A lock is stale, and taken over with a warning, when its process is gone from this host (a pid
reused by another process after a restart does not count: the lock records the boot and the process's start
time), or when it has not been renewed for `STALE_SECONDS` (its host died or was preempted; the holder renews it
every `RENEW_SECONDS`). The lock file is created whole or not at all, only if absent (`paths.create_new`: a
hard link locally, a conditional upload on gs://), so of two trainers started together one wins. In a
multi-process run process 0 takes the lock for the run, and every process learns from it whether to go on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import threading
import time
from collections.abc import Iterator

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from eotd_jax import cli, paths

LOCK_NAME = "trainer.lock"
RENEW_SECONDS = 60.0
STALE_SECONDS = 600.0


class RunLocked(cli.Error):
    """Another trainer holds the workdir."""


@dataclasses.dataclass(frozen=True)
class Holder:
    """Who holds a lock; the lock file is this record as JSON."""

    host: str
    pid: int
    process: str  # "<boot id>:<start time in clock ticks>" of the pid on its host ("" where /proc is missing)
    renewed: float  # time.time() of the last renewal

    @classmethod
    def me(cls) -> Holder:
        return cls(socket.gethostname(), os.getpid(), _process_identity(os.getpid()), time.time())

    def is_stale(self) -> bool:
        """Gone from this host, or not renewed for STALE_SECONDS (whatever its host)."""
        if time.time() - self.renewed > STALE_SECONDS:
            return True
        if self.host != socket.gethostname():
            return False
        if self.process:
            return _process_identity(self.pid) != self.process
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False


@contextlib.contextmanager
def hold(workdir: str) -> Iterator[None]:
    """Holds the workdir's lock (process 0 for the run) while the block runs; raises RunLocked if another
    trainer holds it."""
    lock = _Lock(os.fspath(paths.path(workdir) / LOCK_NAME)) if jax.process_index() == 0 else None
    refusal = None
    if lock is not None:
        try:
            lock.acquire()
        except RunLocked as error:
            refusal = error
    if jax.process_count() > 1:
        refused = int(multihost_utils.broadcast_one_to_all(np.int32(refusal is not None)))
        if refused and refusal is None:
            refusal = RunLocked(f"{workdir} is in use by another trainer (process 0 of this run says which)")
    if refusal is not None:
        raise refusal
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


class _Lock:
    def __init__(self, location: str):
        self.location = location
        self.holder = Holder.me()
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew, name="run-lock-renewal", daemon=True)

    def acquire(self) -> None:
        for _ in range(3):  # a lock can vanish, or be taken, between our attempts
            try:
                paths.create_new(self.location, json.dumps(dataclasses.asdict(self.holder)))
            except FileExistsError:
                holder = self._read()
                if holder is None:
                    continue
                if not holder.is_stale():
                    raise RunLocked(
                        f"{os.path.dirname(self.location)} is in use by the trainer with pid {holder.pid} on host "
                        f"{holder.host} (renewed {time.time() - holder.renewed:.0f} s ago; stop that run or use "
                        f"another --workdir; if it is gone, delete {self.location})") from None
                logging.warning("taking over the stale lock of pid %d on host %s (%s)", holder.pid, holder.host,
                                self.location)
                paths.path(self.location).unlink(missing_ok=True)
                continue
            self._renewer.start()
            return
        raise RunLocked(f"could not take {self.location}: other trainers are starting on it at the same time "
                        "(start one)")

    def _read(self) -> Holder | None:
        """The holder the lock file names; None when the file has gone."""
        try:
            text = paths.path(self.location).read_text()
        except FileNotFoundError:
            return None
        try:
            return Holder(**json.loads(text))
        except (ValueError, TypeError):
            raise RunLocked(f"{self.location} is not a lock this trainer wrote (if no trainer runs on "
                            f"{os.path.dirname(self.location)}, delete it)") from None

    def _still_mine(self) -> bool:
        try:
            return self._read() == self.holder
        except (RunLocked, OSError):
            return False

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_SECONDS):
            if not self._still_mine():  # taken over after a stall longer than STALE_SECONDS: no longer ours
                logging.error("%s is no longer held by this trainer", self.location)
                return
            renewed = dataclasses.replace(self.holder, renewed=time.time())
            try:
                paths.path(self.location).write_text(json.dumps(dataclasses.asdict(renewed)))
            except OSError as error:  # tried again at the next renewal
                logging.warning("could not renew %s: %s", self.location, error)
                continue
            self.holder = renewed

    def release(self) -> None:
        self._stop.set()
        if self._renewer.is_alive():
            self._renewer.join()
        if self._still_mine():
            paths.path(self.location).unlink(missing_ok=True)


def _process_identity(pid: int) -> str:
    """This boot's id and the process's start time, from /proc; "" for no such process or no /proc."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as file:
            boot = file.read().strip()
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as file:
            start = file.read().rsplit(")", 1)[1].split()[19]  # field 22, after the command name in parentheses
    except (OSError, IndexError):
        return ""
    return f"{boot}:{start}"
