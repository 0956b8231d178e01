"""The optimizer: AdamW with linear warmup then cosine or linear decay, global-norm clipping, accumulation."""

from __future__ import annotations

import optax
from ml_collections import ConfigDict


def optimizer_updates(train: ConfigDict) -> int:
    """Optimizer updates in a run: one per `train.grad_accum_steps` training steps."""
    return train.steps // train.grad_accum_steps


def learning_rate_schedule(train: ConfigDict) -> optax.Schedule:
    """The learning rate by optimizer update (0-based): warm-up, then a decay whose last update gets the final rate.

    Counted in updates, not training steps, so accumulating gradients does not stop the decay part-way.
    """
    warmup_steps = train.warmup_steps // train.grad_accum_steps
    decay_steps = max(optimizer_updates(train) - 1 - warmup_steps, 1)
    if train.schedule == "cosine":
        decay = optax.cosine_decay_schedule(train.learning_rate, decay_steps, alpha=train.final_lr_fraction)
    elif train.schedule == "linear":
        decay = optax.linear_schedule(train.learning_rate, train.learning_rate * train.final_lr_fraction, decay_steps)
    elif train.schedule == "constant":
        decay = optax.constant_schedule(train.learning_rate)
    else:
        raise ValueError(f"train.schedule: {train.schedule!r} is not cosine, linear or constant")
    warmup = optax.linear_schedule(0.0, train.learning_rate, max(warmup_steps, 1))
    return optax.join_schedules([warmup, decay], [warmup_steps])


def make_optimizer(train: ConfigDict) -> optax.GradientTransformation:
    """One optimizer step per `train.grad_accum_steps` micro-batches (optax.MultiSteps); gradients clipped to
    global norm `train.max_grad_norm` unless it is 0 (`clip_by_global_norm(0)` would zero every gradient)."""
    clip = [optax.clip_by_global_norm(train.max_grad_norm)] if train.max_grad_norm > 0 else []
    optimizer = optax.chain(
        *clip,
        optax.adamw(learning_rate_schedule(train), b1=train.adam_b1, b2=train.adam_b2, eps=1e-8,
                    weight_decay=train.weight_decay),
    )
    if train.grad_accum_steps > 1:
        optimizer = optax.MultiSteps(optimizer, every_k_schedule=train.grad_accum_steps)
    return optimizer
