"""Stopping on SIGTERM (TPU maintenance, spot VMs, SLURM time limits) or Ctrl-C at a point every process agrees on.

Multi-process runs use JAX's preemption sync manager, which `jax.distributed.initialize` starts: its
SIGTERM notifier (a C++ signal handler) tells the coordination service, which sets the sync point to the
fastest process's last call count + 1, so every process stops after the same call and saves the same
step. A Python SIGTERM handler would displace that notifier, so one is installed only in single-process
runs, where this process's own flag is the whole agreement. Ctrl-C (SIGINT) is turned into a SIGTERM to this
process, so it takes the same path in both; a second Ctrl-C quits at once, without saving.

Every process must call `reached()` at the same points in the same order: once per training step and
once per in-training eval batch (so a SIGTERM during an eval is honoured within one batch). The calls
are numbered 1, 2, ...; those numbers are the sync-point ids.
"""

from __future__ import annotations

import os
import signal

import jax
from absl import logging
from jax.experimental import multihost_utils


class Preempted(Exception):
    """Raised by `Preemption.check` when every process has agreed to stop now."""


class Preemption:
    """Listens for SIGTERM from construction to `close()`; `reached()` stays True once it is True."""

    def __init__(self):
        self._calls = 0
        self._sigterm = False
        self.stopping = False
        self._shared = jax.distributed.is_initialized()
        self._previous_handler = None if self._shared else signal.signal(signal.SIGTERM, self._on_sigterm)
        self._previous_interrupt = signal.signal(signal.SIGINT, self._on_interrupt)

    def close(self) -> None:
        if not self._shared:
            signal.signal(signal.SIGTERM, self._previous_handler)
        signal.signal(signal.SIGINT, self._previous_interrupt)

    def _on_sigterm(self, *_) -> None:
        self._sigterm = True

    def _on_interrupt(self, *_) -> None:
        logging.warning("Ctrl-C: stopping after this step and saving it (Ctrl-C again quits without saving)")
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.kill(os.getpid(), signal.SIGTERM)

    def reached(self) -> bool:
        """Whether all processes stop here; call it at the same points on every process."""
        if not self.stopping:
            self._calls += 1
            self.stopping = (multihost_utils.reached_preemption_sync_point(self._calls) if self._shared
                             else self._sigterm)
        return self.stopping

    def check(self) -> None:
        """`reached()` for code that unwinds by exception (the eval's decode loop)."""
        if self.reached():
            raise Preempted
