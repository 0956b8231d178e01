"""Checkpoint retention: the latest N and the best N by eval accuracy survive, the rest are deleted."""

from __future__ import annotations

import jax.numpy as jnp

from eotd_jax import checkpoints


def test_the_latest_and_the_most_accurate_steps_are_kept(tmp_path):
    manager = checkpoints.make_manager(str(tmp_path), keep=1, keep_best=2, asynchronous=False)
    state = {"params": {"w": jnp.zeros(3)}, "opt_state": {"m": jnp.zeros(3)}}
    for step, accuracy in [(1, 0.20), (2, 0.90), (3, 0.10), (4, 0.50), (5, 0.30)]:
        checkpoints.save(manager, step, state, {"epoch": 0, "index": step}, {}, {"accuracy": accuracy})
    manager.wait_until_finished()
    assert sorted(manager.all_steps()) == [2, 4, 5]  # best two (0.9, 0.5) and the latest
    assert manager.best_step() == 2
    manager.close()
    reopened = checkpoints.make_manager(str(tmp_path), keep=1, keep_best=2, asynchronous=False)
    assert reopened.metrics(2) == {"accuracy": 0.90} and reopened.best_step() == 2
    reopened.close()
