"""The T5 encoder-decoder in Flax NNX.

Every parameter carries `logical_axes` metadata (`vocab`, `embed`, `heads`,
`kv`, `mlp`, `buckets`, `layers`); `eotd_jax.model.sharding` maps those names
to mesh axes with one rules table. The encoder's and the decoder's layers are
each one module whose parameters are stacked on a leading `layers` axis, run
by `lax.scan` (`T5Config.scan_layers`): XLA compiles one layer body instead of
24 unrolled copies, which cuts a large model's TPU compile several-fold
(docs/planning.md, "How the step compiles"). Dropout takes an explicit PRNG key (None
means deterministic), so the forward pass is a pure function of params,
inputs and key. Decoding uses `init_cache` / `decode_step`: the cross-attention
keys and values are computed once from the encoder output and the decoder's
self-attention keys and values are written into a fixed-size cache, one
buffer per layer (decoding runs the layers unrolled).

Shapes: L layers, B batch, S source length, T target length, H heads, D head size, E d_model.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from eotd_jax.model.config import T5Config
from eotd_jax.model.sharding import constrain

_MASKED = -1e9  # the score of a masked attention pair and the logit of a padding vocabulary id (float32)
_HIDDEN = ("batch", "length", None)  # hidden states (B, L, E): rows sharded, every feature of a row on its device


def _param(rngs: nnx.Rngs, shape: tuple, axes: tuple, std: float, dtype, layers: int | None = None) -> nnx.Param:
    """A normal(0, std) parameter; with `layers`, one per layer, stacked on a leading `layers` axis."""
    shape, axes = _stacked(shape, axes, layers)
    return nnx.Param(jax.random.normal(rngs.params(), shape, dtype) * std, logical_axes=axes)


def _stacked(shape: tuple, axes: tuple, layers: int | None) -> tuple[tuple, tuple]:
    """(shape, axes) with a leading `layers` axis when `layers` is given."""
    return (shape, axes) if layers is None else ((layers, *shape), ("layers", *axes))


def _dropout(x: jax.Array, key: jax.Array | None, config: T5Config) -> jax.Array:
    """Drops elements with probability `dropout_rate` rounded to a multiple of 1/256 (0.1 -> 26/256), scaling the
    rest by the exact keep fraction. One random byte an element, not `bernoulli`'s 32-bit float: threefry hashes a
    quarter as many words, which cuts a TPU train step's compile about 2.7x (codet5-small on v4-8,
    docs/benchmarks.md)."""
    if key is None or config.dropout_rate == 0.0:
        return x
    dropped = round(config.dropout_rate * 256)
    if not 0 <= dropped < 256:
        raise ValueError(f"dropout_rate {config.dropout_rate} is not in [0, 1)")
    keep = jax.random.bits(key, x.shape, jnp.uint8) >= dropped
    return jnp.where(keep, x * (256 / (256 - dropped)), 0).astype(x.dtype)


def _split(key: jax.Array | None, count: int) -> list:
    return [None] * count if key is None else list(jax.random.split(key, count))


class RMSNorm(nnx.Module):
    """T5's layer norm: scale only, no mean subtraction, no bias; computed in float32."""

    def __init__(self, config: T5Config, layers: int | None = None):
        self.epsilon, self.dtype = config.layer_norm_epsilon, config.compute_dtype
        shape, axes = _stacked((config.d_model,), ("embed",), layers)
        self.scale = nnx.Param(jnp.ones(shape, config.weights_dtype), logical_axes=axes)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.astype(jnp.float32)
        x = x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + self.epsilon)
        return (x * self.scale[...].astype(jnp.float32)).astype(self.dtype)


class Attention(nnx.Module):
    """Multi-head attention without score scaling (T5 folds it into the initialisation)."""

    def __init__(self, config: T5Config, rngs: nnx.Rngs, layers: int):
        c, dtype = config, config.weights_dtype
        self.config = config
        inner = c.num_heads * c.d_kv
        projection = ((c.d_model, c.num_heads, c.d_kv), ("embed", "heads", "kv"))
        self.query = _param(rngs, *projection, (c.d_model * c.d_kv) ** -0.5, dtype, layers)
        self.key = _param(rngs, *projection, c.d_model**-0.5, dtype, layers)
        self.value = _param(rngs, *projection, c.d_model**-0.5, dtype, layers)
        self.out = _param(rngs, (c.num_heads, c.d_kv, c.d_model), ("heads", "kv", "embed"), inner**-0.5, dtype, layers)

    # Queries, keys and values are token-major (B, T, H, D), the layout of jax.nn.dot_product_attention (the
    # decoding cache stores them otherwise: `T5.init_cache`); XLA:CPU reads the (embed, heads, kv) kernels as they
    # are stored for these dots.
    def project_query(self, x: jax.Array) -> jax.Array:
        return jnp.einsum("bte,ehd->bthd", x, self.query[...].astype(x.dtype))

    def project_key_value(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Keys and values (B, S, H, D)."""
        return (jnp.einsum("bse,ehd->bshd", x, self.key[...].astype(x.dtype)),
                jnp.einsum("bse,ehd->bshd", x, self.value[...].astype(x.dtype)))

    def attend(self, q: jax.Array, k: jax.Array, v: jax.Array, bias: jax.Array, key: jax.Array | None) -> jax.Array:
        """q (B,T,H,D) over k, v (B,S,H,D) with an additive float32 bias broadcastable to (B,H,T,S): T5's position
        bias plus `_MASKED` where a pair may not attend. Unscaled scores (T5 folds the scale into the
        initialisation), softmax in float32.

        The bias carries the mask, and the batch, on purpose: a batch-free position bias inside the scanned layers
        makes XLA all-reduce its gradient over the batch's devices once a layer, not once a step."""
        c = self.config
        if c.attention == "cudnn" and (key is None or c.dropout_rate == 0.0):
            context = jax.nn.dot_product_attention(q, k, v, bias.astype(q.dtype), scale=1.0, implementation="cudnn")
        else:  # XLA's attention, and dropout on the probabilities, which dot_product_attention does not offer
            scores = jnp.einsum("bthd,bshd->bhts", q, k, preferred_element_type=jnp.float32) + bias
            weights = _dropout(jax.nn.softmax(scores, axis=-1), key, c).astype(v.dtype)
            context = jnp.einsum("bhts,bshd->bthd", weights, v)
        batch, length, heads, depth = context.shape
        out = self.out[...].astype(v.dtype).reshape(heads * depth, -1)
        return context.reshape(batch, length, heads * depth) @ out


def position_bias(table: jax.Array, config: T5Config, query_positions: jax.Array, key_positions: jax.Array,
                  bidirectional: bool) -> jax.Array:
    """(1, H, T, S) learned bias (`table`: buckets x heads) of the relative position bucket of each (query, key)
    pair; positions (T,), (S,). T5 learns one table per stack and adds it in every layer.

    Packed rows need no per-row positions: segments are contiguous, so for a query and key in the same
    segment the within-segment distance equals the distance of their row indices, and pairs across
    segments are masked. One (H, T, S) table serves the whole batch (its gradient too).
    """
    relative = key_positions[None, :] - query_positions[:, None]
    buckets = relative_position_bucket(relative, bidirectional, config.relative_attention_num_buckets,
                                       config.relative_attention_max_distance)
    bias = jnp.take(table.astype(jnp.float32), buckets, axis=0)  # (T, S, H)
    return jnp.transpose(bias, (2, 0, 1))[None]


def relative_position_bucket(relative: jax.Array, bidirectional: bool, num_buckets: int,
                             max_distance: int) -> jax.Array:
    """T5's bucketing: exact buckets for small distances, logarithmic ones up to `max_distance`."""
    buckets = jnp.zeros_like(relative)
    if bidirectional:
        num_buckets //= 2
        buckets += (relative > 0).astype(relative.dtype) * num_buckets
        relative = jnp.abs(relative)
    else:
        relative = -jnp.minimum(relative, 0)
    max_exact = num_buckets // 2
    is_small = relative < max_exact
    large = max_exact + (
        jnp.log(jnp.maximum(relative, 1).astype(jnp.float32) / max_exact)
        / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    ).astype(relative.dtype)
    large = jnp.minimum(large, num_buckets - 1)
    return buckets + jnp.where(is_small, relative, large)


class FeedForward(nnx.Module):
    def __init__(self, config: T5Config, rngs: nnx.Rngs, layers: int):
        c, dtype = config, config.weights_dtype
        self.config = config
        self.wi = _param(rngs, (c.d_model, c.d_ff), ("embed", "mlp"), c.d_model**-0.5, dtype, layers)
        self.wi_gate = (_param(rngs, (c.d_model, c.d_ff), ("embed", "mlp"), c.d_model**-0.5, dtype, layers)
                        if c.gated else None)
        self.wo = _param(rngs, (c.d_ff, c.d_model), ("mlp", "embed"), c.d_ff**-0.5, dtype, layers)

    def __call__(self, x: jax.Array, key: jax.Array | None) -> jax.Array:
        hidden = x @ self.wi[...].astype(x.dtype)
        if self.wi_gate is not None:  # v1.1: gelu(x W0) * (x W1); HF's wi_0 is the gelu branch
            hidden = jax.nn.gelu(x @ self.wi_gate[...].astype(x.dtype), approximate=True) * hidden
        else:
            hidden = jax.nn.relu(hidden)
        hidden = _dropout(hidden, key, self.config)
        return hidden @ self.wo[...].astype(x.dtype)


class EncoderLayer(nnx.Module):
    """The encoder's `layers` layers, stacked; called with one layer's slice of the parameters (`_scan`)."""

    def __init__(self, config: T5Config, rngs: nnx.Rngs, layers: int):
        self.config = config
        self.attention_norm = RMSNorm(config, layers)
        self.attention = Attention(config, rngs, layers)
        self.mlp_norm = RMSNorm(config, layers)
        self.mlp = FeedForward(config, rngs, layers)

    def __call__(self, x: jax.Array, bias: jax.Array, key: jax.Array | None) -> jax.Array:
        keys, c = _split(key, 4), self.config
        h = self.attention_norm(x)
        q, (k, v) = self.attention.project_query(h), self.attention.project_key_value(h)
        x = x + _dropout(self.attention.attend(q, k, v, bias, keys[0]), keys[1], c)
        return constrain(x + _dropout(self.mlp(self.mlp_norm(x), keys[2]), keys[3], c), _HIDDEN)


class DecoderLayer(nnx.Module):
    """The decoder's `layers` layers, stacked; called with one layer's slice of the parameters (`_scan`)."""

    def __init__(self, config: T5Config, rngs: nnx.Rngs, layers: int):
        self.config = config
        self.self_attention_norm = RMSNorm(config, layers)
        self.self_attention = Attention(config, rngs, layers)
        self.cross_attention_norm = RMSNorm(config, layers)
        self.cross_attention = Attention(config, rngs, layers)
        self.mlp_norm = RMSNorm(config, layers)
        self.mlp = FeedForward(config, rngs, layers)

    def __call__(self, x, self_kv, self_bias, cross_kv, cross_bias, key=None):
        """One layer; `self_kv` / `cross_kv` are (k, v) pairs, so training and cached decoding share it."""
        keys, c = _split(key, 6), self.config
        q = self.self_attention.project_query(self.self_attention_norm(x))
        x = x + _dropout(self.self_attention.attend(q, *self_kv, self_bias, keys[0]), keys[1], c)
        q = self.cross_attention.project_query(self.cross_attention_norm(x))
        x = x + _dropout(self.cross_attention.attend(q, *cross_kv, cross_bias, keys[2]), keys[3], c)
        return constrain(x + _dropout(self.mlp(self.mlp_norm(x), keys[4]), keys[5], c), _HIDDEN)


class T5(nnx.Module):
    """T5 v1.0 / v1.1 encoder-decoder with an LM head."""

    def __init__(self, config: T5Config, rngs: nnx.Rngs):
        c = config
        self.config = config
        self.embedding = _param(rngs, (c.padded_vocab_size, c.d_model), ("vocab", "embed"), 1.0, c.weights_dtype)
        bias_table = ((c.relative_attention_num_buckets, c.num_heads), ("buckets", "heads"), c.d_model**-0.5,
                      c.weights_dtype)
        self.encoder_relative_bias = _param(rngs, *bias_table)
        self.encoder = EncoderLayer(c, rngs, c.num_layers)
        self.encoder_norm = RMSNorm(c)
        self.decoder_relative_bias = _param(rngs, *bias_table)
        self.decoder = DecoderLayer(c, rngs, c.num_decoder_layers)
        self.decoder_norm = RMSNorm(c)
        self.lm_head = (None if c.tie_word_embeddings else
                        _param(rngs, (c.d_model, c.padded_vocab_size), ("embed", "vocab"), c.d_model**-0.5,
                               c.weights_dtype))

    def _embed(self, ids: jax.Array) -> jax.Array:
        return constrain(jnp.take(self.embedding[...], ids, axis=0).astype(self.config.compute_dtype), _HIDDEN)

    def encode(self, input_ids: jax.Array, input_segments: jax.Array, key: jax.Array | None = None) -> jax.Array:
        """Encoder states (B, S, E).

        `input_segments` (B, S) numbers the packed examples of a row from 1 and is 0 at padding; a boolean
        mask (True at real tokens) is the one-example-per-row case.
        """
        c = self.config
        keys = _split(key, 3)
        x = _dropout(self._embed(input_ids), keys[0], c)
        positions = jnp.arange(input_ids.shape[1])
        bias = position_bias(self.encoder_relative_bias[...], c, positions, positions, bidirectional=True)
        bias = bias + _mask_bias(_same_segment(input_segments, input_segments))
        x, _ = _scan(self.encoder, lambda layer, x, layer_key: (layer(x, bias, layer_key), None), x,
                     _layer_keys(keys[1], c.num_layers), c)
        return constrain(_dropout(self.encoder_norm(x), keys[2], c), _HIDDEN)

    def decode(self, decoder_input_ids: jax.Array, encoded: jax.Array, input_segments: jax.Array,
               decoder_segments: jax.Array | None = None, key: jax.Array | None = None) -> jax.Array:
        """Logits (B, T, V) of the whole target at once (teacher forcing); segments as in `encode`."""
        c = self.config
        keys = _split(key, 3)
        x = _dropout(self._embed(decoder_input_ids), keys[0], c)
        if decoder_segments is None:
            decoder_segments = jnp.ones(decoder_input_ids.shape, jnp.int32)
        length = decoder_input_ids.shape[1]
        positions = jnp.arange(length)
        causal = jnp.tril(jnp.ones((length, length), bool))[None, None]
        self_bias = position_bias(self.decoder_relative_bias[...], c, positions, positions, bidirectional=False)
        self_bias = self_bias + _mask_bias(causal & _same_segment(decoder_segments, decoder_segments))
        cross_bias = _mask_bias(_same_segment(decoder_segments, input_segments))

        def layer_call(layer: DecoderLayer, x, layer_key):
            self_kv = layer.self_attention.project_key_value(layer.self_attention_norm(x))
            cross_kv = layer.cross_attention.project_key_value(encoded)
            return layer(x, self_kv, self_bias, cross_kv, cross_bias, layer_key), None

        x, _ = _scan(self.decoder, layer_call, x, _layer_keys(keys[1], c.num_decoder_layers), c)
        return self.logits(_dropout(self.decoder_norm(x), keys[2], c))

    def logits(self, x: jax.Array) -> jax.Array:
        """Float32 logits over the padded vocabulary; the padding ids' are `_MASKED`, so no loss, argmax or sample
        sees them."""
        if self.lm_head is None:  # tied: T5 v1.0 rescales before reusing the embedding
            x = x * self.config.d_model**-0.5
            logits = jnp.einsum("bte,ve->btv", x, self.embedding[...].astype(x.dtype))
        else:
            logits = x @ self.lm_head[...].astype(x.dtype)
        logits = logits.astype(jnp.float32)
        if self.config.padded_vocab_size > self.config.vocab_size:  # a no-op select still costs a pass backwards
            logits = jnp.where(jnp.arange(self.config.padded_vocab_size) < self.config.vocab_size, logits, _MASKED)
        return constrain(logits, ("batch", "length", "vocab"))

    def __call__(self, input_ids, input_segments, decoder_input_ids, decoder_segments=None, key=None) -> jax.Array:
        encoded = self.encode(input_ids, input_segments, key)
        return self.decode(decoder_input_ids, encoded, input_segments, decoder_segments,
                           None if key is None else jax.random.fold_in(key, 1))

    # Cached decoding.
    def init_cache(self, encoded: jax.Array, input_mask: jax.Array, max_length: int) -> dict:
        """Cross-attention keys/values per layer and an empty self-attention cache of `max_length`, all stored
        (B, H, D, S), the layout the attention dots of a decoding step read them in: token-major caches were
        copied into it at every token, 40% of a step on XLA:CPU. The barrier keeps XLA from moving the cross
        caches' transpose back into the decoding loop."""
        c = self.config
        empty = jnp.zeros((encoded.shape[0], c.num_heads, c.d_kv, max_length), c.compute_dtype)
        cross = [_to_cache(layer.cross_attention.project_key_value(encoded)) for layer in _unstack(self.decoder)]
        return {"cross": jax.lax.optimization_barrier(cross), "self": [(empty, empty)] * c.num_decoder_layers,
                "cross_bias": _mask_bias(input_mask.astype(bool)[:, None, None, :])}

    def decode_step(self, token: jax.Array, cache: dict, index: jax.Array) -> tuple[jax.Array, dict]:
        """Logits (B, V) for the token at position `index` (B, 1), and the cache with its keys/values.

        The layers run unrolled, not scanned: each layer's cache stays its own buffer that the decoding loop
        updates in place (a scan would copy the whole cache every token, 2.4x slower on CPU)."""
        x = self._embed(token)
        max_length = cache["self"][0][0].shape[3]
        visible = (jnp.arange(max_length) <= index)[None, None, None, :]
        bias = position_bias(self.decoder_relative_bias[...], self.config, jnp.reshape(index, (1,)),
                             jnp.arange(max_length), bidirectional=False)
        bias = bias + _mask_bias(visible)
        new_self = []
        for layer, (k_cache, v_cache), cross_kv in zip(_unstack(self.decoder), cache["self"], cache["cross"],
                                                       strict=True):
            k, v = _to_cache(layer.self_attention.project_key_value(layer.self_attention_norm(x)))
            k_cache = jax.lax.dynamic_update_slice_in_dim(k_cache, k.astype(k_cache.dtype), index, axis=3)
            v_cache = jax.lax.dynamic_update_slice_in_dim(v_cache, v.astype(v_cache.dtype), index, axis=3)
            x = layer(x, _from_cache((k_cache, v_cache)), bias, _from_cache(cross_kv), cache["cross_bias"])
            new_self.append((k_cache, v_cache))
        logits = self.logits(self.decoder_norm(x))[:, 0]
        return logits, {**cache, "self": new_self}


def _to_cache(kv: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
    """Keys and values from token-major (B, S, H, D), as `Attention` makes them, to the cache's (B, H, D, S)."""
    return jnp.transpose(kv[0], (0, 2, 3, 1)), jnp.transpose(kv[1], (0, 2, 3, 1))


def _from_cache(kv: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
    return jnp.transpose(kv[0], (0, 3, 1, 2)), jnp.transpose(kv[1], (0, 3, 1, 2))


def _mask_bias(mask: jax.Array) -> jax.Array:
    return jnp.where(mask, 0.0, _MASKED).astype(jnp.float32)


def segment_positions(segments: jax.Array) -> jax.Array:
    """Each token's position within its segment: 0, 1, 2, ... restarting where the segment id changes."""
    index = jnp.arange(segments.shape[1])[None, :]
    previous = jnp.concatenate([jnp.full_like(segments[:, :1], -1), segments[:, :-1]], axis=1)
    starts = jnp.where(segments != previous, index, 0)
    return index - jax.lax.cummax(starts, axis=1)


def _same_segment(query_segments: jax.Array, key_segments: jax.Array) -> jax.Array:
    """(B, 1, T, S): query and key in the same (non-padding) segment."""
    key_segments = key_segments.astype(jnp.int32)
    same = query_segments.astype(jnp.int32)[:, :, None] == key_segments[:, None, :]
    return (same & (key_segments > 0)[:, None, :])[:, None]


def _scan(layers: nnx.Module, body, carry, xs, config: T5Config):
    """`body(layer, carry, x) -> (carry, y)` once per layer of a stacked module, in order (`lax.scan`), with that
    layer's slice of the parameters and of `xs`. `config.remat`: each layer's activations are recomputed in the
    backward pass instead of kept; `config.scan_layers` False unrolls the loop."""
    graphdef, params = nnx.split(layers)

    def step(carry, inputs):
        layer_params, x = inputs
        return body(nnx.merge(graphdef, layer_params), carry, x)

    if config.remat:
        step = jax.checkpoint(step, prevent_cse=not config.scan_layers)  # a scan keeps CSE from undoing it
    elif config.scan_layers:
        # A scan keeps every value JAX saves for the backward pass for every layer, where XLA trims an unrolled
        # model's: keep the matmul outputs, recompute the elementwise rest (codet5-small on v4-8: 0.41 GiB a row,
        # unrolled 0.46, everything kept 0.80; the same FLOPs).
        step = jax.checkpoint(step, policy=jax.checkpoint_policies.dots_saveable, prevent_cse=False)
    return jax.lax.scan(step, carry, (params, xs), unroll=not config.scan_layers)


def _unstack(layers: nnx.Module) -> list[nnx.Module]:
    """One module per layer of a stacked module, each holding its slice of the parameters."""
    graphdef, params = nnx.split(layers)
    count = jax.tree.leaves(params)[0].shape[0]
    return [nnx.merge(graphdef, jax.tree.map(lambda p, i=i: p[i], params)) for i in range(count)]


def _layer_keys(key: jax.Array | None, layers: int) -> jax.Array | None:
    return None if key is None else jax.random.split(key, layers)


def shift_right(targets: jax.Array, start_token_id: int, segments: jax.Array | None = None) -> jax.Array:
    """Decoder inputs from targets: each segment starts with the start token, then its targets shifted right."""
    shifted = jnp.concatenate([jnp.full_like(targets[:, :1], start_token_id), targets[:, :-1]], axis=1)
    if segments is None:
        return shifted
    return jnp.where(segment_positions(segments) == 0, start_token_id, shifted)
