"""How fast training runs, said where a person reads it: one log line a window, MFU that is right, a profile.

Every `log_every_steps` process 0 logs one line (`StepLog.line`): step, loss,
learning rate, step time, real (non-padding) tokens/s, MFU, and the held-out
accuracy when the window ends in an eval. MFU is the step's FLOPs
(`step_flops`: the compiled step's matrix multiplies, scanned layers counted
per layer, as the planner counts them) over the step time and the devices'
peak, from the one chip table (`slices.chip_of_kind`, by JAX's device kind) or
`train.peak_flops_per_device`; a device kind the table lacks is said once and
MFU is left out, never logged as 0. With remat the recomputed forward pass
counts too (the work the chips do). `Profile` writes a `jax.profiler` trace of
the steps `profile_steps` names under the workdir (TensorBoard's profile tab,
XProf).
"""

from __future__ import annotations

import dataclasses
import os

import jax
from absl import logging

from eotd_jax import paths
from eotd_jax.planning import slices
from eotd_jax.planning.flops import matmul_flops


def step_flops(traced: jax.stages.Traced) -> float:
    """FLOPs of one step over all devices: `traced` is the jitted train step traced on its real arguments."""
    return matmul_flops(traced.jaxpr.jaxpr)


def peak_flops_per_device(override: float, device_kind: str) -> float | None:
    """`override` when set (train.peak_flops_per_device), else the chip table's dense bf16 peak of `device_kind`;
    None for a kind the table lacks (the CPU, a GPU not listed)."""
    if override:
        return override
    chip = slices.chip_of_kind(device_kind)
    return chip.peak_flops if chip else None


@dataclasses.dataclass
class StepLog:
    """What a window's line needs besides its metrics; `mfu` and `line` are pure."""

    flops_per_step: float
    peak_flops: float | None  # all devices together; None: no MFU
    total_steps: int

    @classmethod
    def for_devices(cls, flops_per_step: float, override: float, total_steps: int,
                    devices: list[jax.Device]) -> StepLog:
        """The log for a run on `devices`; says once when their kind has no known peak."""
        kind = devices[0].device_kind
        peak = peak_flops_per_device(override, kind)
        if peak is None:
            logging.warning("no peak FLOP/s known for device kind %r: MFU is not logged (set "
                            "--config.train.peak_flops_per_device, or add the chip to eotd_jax/planning/slices.py)",
                            kind)
        return cls(flops_per_step, None if peak is None else peak * len(devices), total_steps)

    def mfu(self, step_seconds: float) -> float | None:
        return None if self.peak_flops is None else self.flops_per_step / step_seconds / self.peak_flops

    def line(self, step: int, metrics: dict[str, float]) -> str:
        """`step 200/2000: loss 1.2345, lr 2.95e-03, 0.512 s/step, 12,345 tokens/s, MFU 41.2%, accuracy 0.9800`;
        `metrics` as the trainer logs them (mfu and accuracy optional)."""
        parts = [f"loss {metrics['loss']:.4f}", f"lr {metrics['learning_rate']:.2e}",
                 f"{metrics['step_seconds']:.3f} s/step", f"{metrics['tokens_per_second']:,.0f} tokens/s"]
        if metrics.get("mfu") is not None:
            parts.append(f"MFU {100 * metrics['mfu']:.1f}%")
        if metrics.get("accuracy") is not None:
            parts.append(f"accuracy {metrics['accuracy']:.4f}")
        return f"step {step}/{self.total_steps}: " + ", ".join(parts)


def parse_profile_steps(spec: str) -> tuple[int, int] | None:
    """`profile_steps` "A,B" -> (A, B), the first and last traced step (from 1); "" -> None."""
    if not spec:
        return None
    try:
        first, last = (int(part) for part in spec.split(","))
    except ValueError:
        raise ValueError(f"profile_steps {spec!r} is not A,B (two step numbers, e.g. 10,15)") from None
    if not 1 <= first <= last:
        raise ValueError(f"profile_steps {spec!r}: need 1 <= A <= B")
    return first, last


class Profile:
    """A jax.profiler trace of steps A..B in `<workdir>/profile` (every process traces its own host and devices)."""

    def __init__(self, spec: str, workdir: str):
        self.steps = parse_profile_steps(spec)
        self._mirror = paths.Mirror(os.fspath(paths.path(workdir) / "profile")) if self.steps else None
        self.active = False

    def before_step(self, step: int) -> None:
        """Call before running training step `step` (counted from 1)."""
        if self.steps and step == self.steps[0]:
            jax.profiler.start_trace(self._mirror.local)
            self.active = True

    def after_step(self, step: int, state) -> None:
        """Call after step `step` was dispatched; `state` is waited for before the trace stops."""
        if self.active and step >= self.steps[1]:
            jax.block_until_ready(state)
            self.close()

    def close(self) -> None:
        if self.active:
            jax.profiler.stop_trace()
            self.active = False
            self._mirror.close()
            logging.warning("profile of steps %d-%d written to %s", *self.steps, self._mirror.directory)
