"""Batched, jit-compiled decoding: greedy, beam search, and temperature / top-p sampling.

All three encode once, keep the cross-attention keys/values and a fixed-size
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


@functools.partial(nnx.jit, static_argnames=("max_new_tokens", "num_beams"))
def beam_search(model: T5, input_ids: jax.Array, input_mask: jax.Array, max_new_tokens: int, num_beams: int = 4,
                length_penalty: float = 1.0) -> jax.Array:
    """The highest-scoring hypothesis per input, score = sum log p / length**length_penalty.

    Keeps `num_beams` live hypotheses; a candidate ending in EOS moves to the
    finished set. Stops when every input has `num_beams` finished hypotheses
    that no live one can beat at the current length, or at `max_new_tokens`.
    """
    c, k = model.config, num_beams
    batch = input_ids.shape[0]
    expand = lambda x: jnp.repeat(x, k, axis=0)  # noqa: E731  (B, ...) -> (B*K, ...)
    cache = model.init_cache(model.encode(input_ids, input_mask), input_mask, max_new_tokens)
    cache = jax.tree.map(expand, cache)
    alive = jnp.full((batch, k, max_new_tokens), c.pad_token_id, jnp.int32)
    alive_scores = jnp.tile(jnp.array([0.0] + [-jnp.inf] * (k - 1)), (batch, 1))  # one live beam at first
    finished = jnp.full((batch, k, max_new_tokens), c.pad_token_id, jnp.int32)
    finished_scores = jnp.full((batch, k), -jnp.inf)
    last = jnp.full((batch * k,), c.decoder_start_token_id, jnp.int32)

    def not_done(state):
        step, _, _, alive_scores, _, finished_scores, _ = state
        best_alive = jnp.max(alive_scores, axis=1) / jnp.maximum(step, 1) ** length_penalty
        return (step < max_new_tokens) & ~jnp.all(jnp.min(finished_scores, axis=1) > best_alive)

    def step_once(state):
        step, last, alive, alive_scores, finished, finished_scores, cache = state
        logits, cache = model.decode_step(last[:, None], cache, step)
        vocab = logits.shape[-1]
        scores = alive_scores[:, :, None] + jax.nn.log_softmax(logits).reshape(batch, k, vocab)
        top_scores, top_index = jax.lax.top_k(scores.reshape(batch, k * vocab), 2 * k)
        beam, token = top_index // vocab, (top_index % vocab).astype(jnp.int32)
        sequences = jnp.take_along_axis(alive, beam[:, :, None], axis=1)
        sequences = jax.lax.dynamic_update_slice_in_dim(sequences, token[:, :, None], step, axis=2)
        is_eos = token == c.eos_token_id
        # Finished: merge the new EOS candidates with the old finished set, keep the best k.
        normalized = jnp.where(is_eos, top_scores / (step + 1) ** length_penalty, -jnp.inf)
        pool_scores = jnp.concatenate([finished_scores, normalized], axis=1)
        best_finished, order = jax.lax.top_k(pool_scores, k)
        finished = jnp.take_along_axis(jnp.concatenate([finished, sequences], axis=1), order[:, :, None], axis=1)
        # Alive: the best k candidates that did not end.
        live_scores, live = jax.lax.top_k(jnp.where(is_eos, -jnp.inf, top_scores), k)
        alive = jnp.take_along_axis(sequences, live[:, :, None], axis=1)
        parent = (jnp.take_along_axis(beam, live, axis=1) + jnp.arange(batch)[:, None] * k).reshape(-1)
        cache = {**cache, "self": jax.tree.map(lambda x: x[parent], cache["self"])}
        last = jnp.take_along_axis(token, live, axis=1).reshape(-1)
        return step + 1, last, alive, live_scores, finished, best_finished, cache

    state = (jnp.int32(0), last, alive, alive_scores, finished, finished_scores, cache)
    _, _, alive, alive_scores, finished, finished_scores, _ = jax.lax.while_loop(not_done, step_once, state)
    # Inputs with no finished hypothesis fall back to their best live one.
    best = jnp.where(jnp.isfinite(finished_scores[:, :1]), finished[:, 0], alive[:, 0])
    return best
