"""Remat (`T5Config.remat`, set through `config.model_overrides`) recomputes activations: same loss, same grads; and
the dropout it recomputes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from eotd_jax.model.config import get_config
from eotd_jax.model.t5 import T5, _dropout
from eotd_jax.trainer import loss_and_metrics


def _packed_batch(rows: int = 3, source: int = 24, target: int = 16) -> dict:
    rng = np.random.default_rng(0)
    segments = lambda n: np.repeat(np.arange(1, 4), n // 3 + 1)[None, :n].repeat(rows, 0)  # noqa: E731
    input_segments, target_segments = segments(source), segments(target)
    input_segments[0, -5:], target_segments[1, -3:] = 0, 0  # padding
    return {"inputs": jnp.asarray(rng.integers(2, 260, (rows, source)), jnp.int32),
            "input_segments": jnp.asarray(input_segments, jnp.int32),
            "targets": jnp.asarray(rng.integers(2, 260, (rows, target)), jnp.int32),
            "target_segments": jnp.asarray(target_segments, jnp.int32)}


def _loss(model: str, remat: bool, dropout_rate: float, scan_layers: bool = True):
    """(loss of params, batch, dropout key; the initial params) of a tiny model."""
    config = get_config(model, remat=remat, dropout_rate=dropout_rate, scan_layers=scan_layers)
    graphdef, state = nnx.split(T5(config, nnx.Rngs(0)))
    return (lambda p, b, k: loss_and_metrics(p, graphdef, b, k, 0)[0]), nnx.to_pure_dict(state)


@pytest.mark.parametrize("scan_layers", [True, False])
def test_remat_gives_the_same_loss_and_gradients_with_dropout(scan_layers):
    grads, losses = {}, {}
    for remat in (False, True):
        loss, params = _loss("t5-tiny-v1_1", remat, 0.2, scan_layers)
        grad_fn = jax.jit(jax.value_and_grad(loss))
        losses[remat], grads[remat] = grad_fn(params, _packed_batch(), jax.random.key(3))
    assert np.isfinite(losses[False]) and losses[False] > 0
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-6)
    flat_plain, flat_remat = jax.tree.leaves(grads[False]), jax.tree.leaves(grads[True])
    assert len(flat_plain) == len(flat_remat) > 10
    for plain, rematted in zip(flat_plain, flat_remat, strict=True):
        np.testing.assert_allclose(rematted, plain, rtol=1e-5, atol=1e-7)
    assert any(float(jnp.abs(g).max()) > 0 for g in flat_plain)


def test_remat_is_in_the_compiled_backward_pass():
    """With remat the backward pass recomputes the layers: more FLOPs for the same step."""
    flops = {}
    for remat in (False, True):
        loss, params = _loss("t5-tiny", remat, 0.0)
        compiled = jax.jit(jax.grad(loss)).lower(params, _packed_batch(), None).compile()
        flops[remat] = compiled.cost_analysis()["flops"]
    assert flops[True] > 1.1 * flops[False]


def test_dropout_drops_the_rate_rounded_to_a_byte_and_keeps_the_mean():
    x = jnp.ones((1024, 1024), jnp.float32)
    config = get_config("t5-tiny", dropout_rate=0.1)
    first, second = _dropout(x, jax.random.key(0), config), _dropout(x, jax.random.key(1), config)
    for y in (first, second):
        assert abs(float(jnp.mean(y == 0)) - 26 / 256) < 0.002  # 0.1 rounds to 26/256
        assert abs(float(jnp.mean(y)) - 1.0) < 0.005  # kept values scaled by the exact keep fraction
    assert float(jnp.mean((first == 0) != (second == 0))) > 0.1  # each key its own mask
    assert _dropout(x, jax.random.key(0), get_config("t5-tiny", dropout_rate=0.0)) is x
    assert _dropout(x, None, config) is x
