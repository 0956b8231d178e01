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


def test_max_grad_norm_zero_turns_clipping_off_and_a_positive_norm_clips():
    """A gradient of norm 50: clipped to norm 1 its Adam update is the same (Adam normalises), so the test reads the
    clip itself, on the first update's moment, which records the gradient the optimizer received."""
    train = default.get_config().train
    train.update(steps=10, warmup_steps=0, weight_decay=0.0)
    params = {"w": jnp.zeros(4)}
    gradient = {"w": jnp.full(4, 25.0)}  # global norm 50
    received = {}
    for norm in (0.0, 1.0):
        train.max_grad_norm = norm
        optimizer = make_optimizer(train)
        updates, state = optimizer.update(gradient, optimizer.init(params), params)
        assert np.all(np.isfinite(updates["w"])) and np.all(np.asarray(updates["w"]) != 0)
        first_moment = next(s for s in jax.tree.leaves(state, is_leaf=lambda x: hasattr(x, "mu")) if hasattr(s, "mu"))
        received[norm] = float(jnp.linalg.norm(first_moment.mu["w"])) / (1 - train.adam_b1)
    assert received[0.0] == pytest.approx(50.0)  # off: the gradient as it came
    assert received[1.0] == pytest.approx(1.0)  # clipped to the norm
