"""Stopping a run whose loss is no longer finite, before anything of it is saved.

A NaN or an infinity (a learning rate typed 3e3, an overflow) poisons every later step, and saving it would
push the good checkpoints out (checkpoint.keep). The trainer calls `check_finite` at every logged step and
before every save, on that step's loss and gradient norm: two scalars copied to the host. A NaN anywhere in the
parameters reaches the loss of the next step, so a finite loss at a save says the saved step is sound.
"""

from __future__ import annotations

import math

from eotd_jax import cli


class Diverged(cli.Error):
    """The loss or the gradient norm is NaN or infinite."""


def check_finite(step: int, metrics: dict, last_saved: int | None, config) -> None:
    """Raises Diverged, naming the step and the last checkpoint saved (`last_saved`), unless the step's loss and
    gradient norm (`metrics`: floats or device scalars) are finite."""
    values = {name: float(metrics[name]) for name in ("loss", "grad_norm") if name in metrics}
    bad = [f"{name} is {value}" for name, value in values.items() if not math.isfinite(value)]
    if not bad:
        return
    resume = (f"the last good checkpoint is step {last_saved}, where the same --workdir resumes"
              if last_saved is not None else "no checkpoint was saved before it")
    raise Diverged(f"the {' and the '.join(bad)} at step {step}, so training stopped without saving it; {resume} "
                   f"(lower config.train.learning_rate, now {config.train.learning_rate:g}, or "
                   "config.train.max_grad_norm, and train again)")
