"""The learning-rate schedule counts optimizer updates, so accumulating gradients does not stop its decay part-way."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eotd_jax.configs import default
from eotd_jax.optim import make_optimizer, optimizer_updates


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("accumulate", [1, 4])
def test_the_last_optimizer_update_gets_the_final_learning_rate(schedule, accumulate):
    train = default.get_config().train
    train.update(steps=40, warmup_steps=8, grad_accum_steps=accumulate, schedule=schedule, learning_rate=1.0,
                 final_lr_fraction=0.1, weight_decay=0.0)
    optimizer = make_optimizer(train)
    params = {"w": jnp.zeros(3)}
    state = optimizer.init(params)
    update = jax.jit(optimizer.update)
    applied = []  # the learning rate of each optimizer update, read off the update itself
    for step in range(1, train.steps + 1):
        # A constant gradient: Adam's bias-corrected step is then exactly 1, so an update is minus its learning rate.
        updates, state = update({"w": jnp.full(3, 0.1)}, state, params)
        if step % accumulate == 0:
            applied.append(-float(updates["w"][0]))
        else:
            assert not np.any(np.asarray(updates["w"]))  # accumulating: no update
    assert len(applied) == optimizer_updates(train) == 40 // accumulate
    assert applied[-1] == pytest.approx(0.1, rel=1e-4)  # the final rate, at the last update
    assert max(applied) == pytest.approx(1.0, rel=1e-4)  # the peak, after the warm-up
