"""Batched, jit-compiled decoding: greedy, and temperature / top-p sampling.

Both encode once, keep the cross-attention keys/values and a fixed-size
self-attention cache (`T5.init_cache`), and run one `decode_step` per token in
a `lax.while_loop` that stops when every sequence has produced EOS or
`max_new_tokens` is reached. Outputs are (B, max_new_tokens) token ids without
the start token, padded with the pad id after EOS. Under a mesh the same code
runs sharded: the batch follows the input's sharding, params follow theirs.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from eotd_jax.model.t5 import T5


@functools.partial(nnx.jit, static_argnames=("max_new_tokens",))
def greedy(model: T5, input_ids: jax.Array, input_mask: jax.Array, max_new_tokens: int) -> jax.Array:
    return _decode_loop(model, input_ids, input_mask, max_new_tokens, lambda logits, step: jnp.argmax(logits, -1))


@functools.partial(nnx.jit, static_argnames=("max_new_tokens",))
def sample(model: T5, input_ids: jax.Array, input_mask: jax.Array, max_new_tokens: int, rng: jax.Array,
           temperature: float = 1.0, top_p: float = 1.0) -> jax.Array:
    """Ancestral sampling from softmax(logits / temperature), restricted to the top-p nucleus."""

    def choose(logits, step):
        logits = logits / jnp.maximum(temperature, 1e-6)
        probabilities = jax.nn.softmax(logits, axis=-1)
        ordered = jnp.sort(probabilities, axis=-1)[:, ::-1]
        before = jnp.cumsum(ordered, axis=-1) - ordered  # mass of strictly more likely tokens
        cutoff = jnp.min(jnp.where(before < top_p, ordered, jnp.inf), axis=-1, keepdims=True)
        logits = jnp.where(probabilities >= cutoff, logits, -jnp.inf)
        return jax.random.categorical(jax.random.fold_in(rng, step), logits, axis=-1)

    return _decode_loop(model, input_ids, input_mask, max_new_tokens, choose)


def _decode_loop(model: T5, input_ids, input_mask, max_new_tokens: int, choose) -> jax.Array:
    c = model.config
    batch = input_ids.shape[0]
    cache = model.init_cache(model.encode(input_ids, input_mask), input_mask, max_new_tokens)
    tokens = jnp.full((batch, max_new_tokens), c.pad_token_id, jnp.int32)
    start = jnp.full((batch,), c.decoder_start_token_id, jnp.int32)

    def not_done(state):
        step, _, _, done, _ = state
        return (step < max_new_tokens) & ~jnp.all(done)

    def step_once(state):
        step, previous, self_cache, done, tokens = state  # the cross-attention cache is loop-invariant
        logits, new_cache = model.decode_step(previous[:, None], {**cache, "self": self_cache}, step)
        chosen = jnp.where(done, c.pad_token_id, choose(logits, step).astype(jnp.int32))
        tokens = jax.lax.dynamic_update_slice_in_dim(tokens, chosen[:, None], step, axis=1)
        return step + 1, chosen, new_cache["self"], done | (chosen == c.eos_token_id), tokens

    state = (jnp.int32(0), start, cache["self"], jnp.zeros((batch,), bool), tokens)
    return jax.lax.while_loop(not_done, step_once, state)[-1]
