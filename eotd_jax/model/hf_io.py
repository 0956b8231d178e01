"""Hugging Face T5 checkpoints <-> our parameters.

`import_hf(dir)` reads `config.json` and `model.safetensors` (or a sharded
safetensors index, or `pytorch_model.bin` when torch is installed) of a
`T5ForConditionalGeneration` (T5, Flan-T5, CodeT5, CodeT5+) and returns our
config and model. `export_hf(model, dir)` writes the same files back, so a
trained student can be loaded by `transformers` as is. Torch `Linear` weights
are (out, in); ours are (in, out), with attention split into (embed, heads, kv). Our embedding and
LM head have `T5Config.padded_vocab_size` rows: import pads them with zeros, export strips them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import jax.numpy as jnp
import numpy as np
from flax import nnx

from eotd_jax import paths
from eotd_jax.model.config import T5Config
from eotd_jax.model.t5 import T5

_CONFIG_FIELDS = ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
                  "relative_attention_num_buckets", "relative_attention_max_distance", "dropout_rate",
                  "layer_norm_epsilon", "feed_forward_proj", "tie_word_embeddings", "pad_token_id", "eos_token_id",
                  "decoder_start_token_id")


class CheckpointError(ValueError):
    """A Hugging Face directory that cannot be imported; says which file and what is wrong."""


def config_from_hf(hf: dict, where: str = "config.json") -> T5Config:
    architectures = hf.get("architectures") or ["T5ForConditionalGeneration"]
    if hf.get("model_type") != "t5" or "T5ForConditionalGeneration" not in architectures:
        raise CheckpointError(f"{where}: unsupported architecture {hf.get('model_type')!r} / {architectures}; "
                              "only T5ForConditionalGeneration (T5, Flan-T5, CodeT5, CodeT5+) can be imported")
    projection = hf.get("feed_forward_proj", "relu")
    if projection not in ("relu", "gated-gelu"):
        raise CheckpointError(f"{where}: feed_forward_proj {projection!r} is not supported (relu, gated-gelu)")
    fields = {name: hf[name] for name in _CONFIG_FIELDS if hf.get(name) is not None}
    fields.setdefault("num_decoder_layers", fields.get("num_layers", 6))
    # Ours: tied = v1.0 (LM head is the embedding, outputs scaled by d_model**-0.5). transformers 5 writes
    # `tie_word_embeddings: true` for every T5 and keeps the v1.0 scaling in `scale_decoder_outputs`.
    fields["tie_word_embeddings"] = hf.get("scale_decoder_outputs", hf.get("tie_word_embeddings", True) is not False)
    return T5Config(**fields)


def config_to_hf(config: T5Config) -> dict:
    hf = {name: getattr(config, name) for name in _CONFIG_FIELDS}
    hf.update(scale_decoder_outputs=config.tie_word_embeddings, model_type="t5",
              architectures=["T5ForConditionalGeneration"], is_encoder_decoder=True,
              dense_act_fn="gelu_new" if config.gated else "relu", is_gated_act=config.gated, torch_dtype="float32")
    return hf


def _mapping(config: T5Config) -> Iterator[tuple[tuple, int | None, str, str]]:
    """(our path, layer index into its stacked `layers` axis or None, HF name, layout) for every parameter."""
    yield ("embedding",), None, "shared.weight", "same"
    for stack in ("encoder", "decoder"):  # HF keeps the stack's one table in its first layer
        table = f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
        yield (f"{stack}_relative_bias",), None, table, "same"
    for stack, count in (("encoder", config.num_layers), ("decoder", config.num_decoder_layers)):
        for i in range(count):
            block = f"{stack}.block.{i}.layer"
            parts = ([("attention", "0.SelfAttention", "attention_norm", "0")] if stack == "encoder" else
                     [("self_attention", "0.SelfAttention", "self_attention_norm", "0"),
                      ("cross_attention", "1.EncDecAttention", "cross_attention_norm", "1")])
            for ours, theirs, norm, norm_index in parts:
                for name, hf_name in (("query", "q"), ("key", "k"), ("value", "v")):
                    yield (stack, ours, name), i, f"{block}.{theirs}.{hf_name}.weight", "qkv"
                yield (stack, ours, "out"), i, f"{block}.{theirs}.o.weight", "attention_out"
                yield (stack, norm, "scale"), i, f"{block}.{norm_index}.layer_norm.weight", "same"
            mlp_index = "1" if stack == "encoder" else "2"
            if config.gated:
                yield (stack, "mlp", "wi_gate"), i, f"{block}.{mlp_index}.DenseReluDense.wi_0.weight", "linear"
                yield (stack, "mlp", "wi"), i, f"{block}.{mlp_index}.DenseReluDense.wi_1.weight", "linear"
            else:
                yield (stack, "mlp", "wi"), i, f"{block}.{mlp_index}.DenseReluDense.wi.weight", "linear"
            yield (stack, "mlp", "wo"), i, f"{block}.{mlp_index}.DenseReluDense.wo.weight", "linear"
            yield (stack, "mlp_norm", "scale"), i, f"{block}.{mlp_index}.layer_norm.weight", "same"
    yield ("encoder_norm", "scale"), None, "encoder.final_layer_norm.weight", "same"
    yield ("decoder_norm", "scale"), None, "decoder.final_layer_norm.weight", "same"
    if not config.tie_word_embeddings:
        yield ("lm_head",), None, "lm_head.weight", "linear"


def _to_ours(array: np.ndarray, layout: str, config: T5Config) -> np.ndarray:
    if layout == "same":
        return array
    if layout == "linear":
        return array.T
    if layout == "qkv":  # (H*D, E) -> (E, H, D)
        return array.T.reshape(config.d_model, config.num_heads, config.d_kv)
    return array.T.reshape(config.num_heads, config.d_kv, config.d_model)  # attention_out: (E, H*D) -> (H, D, E)


def _to_theirs(array: np.ndarray, layout: str) -> np.ndarray:
    if layout == "same":
        return array
    if layout == "linear":
        return array.T
    if layout == "qkv":
        return array.reshape(array.shape[0], -1).T
    return array.reshape(-1, array.shape[-1]).T


_VOCAB_AXIS = {("embedding",): 0, ("lm_head",): 1}  # our parameters with a (padded) vocabulary axis


def _vocab_padding(path: tuple, config: T5Config) -> list[tuple[int, int]] | None:
    """np.pad widths from the real vocabulary to the padded one, for a parameter with a vocabulary axis."""
    axis = _VOCAB_AXIS.get(path)
    if axis is None:
        return None
    widths = [(0, 0), (0, 0)]
    widths[axis] = (0, config.padded_vocab_size - config.vocab_size)
    return widths


def _variable(model: T5, path: tuple) -> nnx.Param:
    node = model
    for part in path:
        node = getattr(node, part)
    return node


def _read_weights(model_dir: str) -> dict[str, np.ndarray]:
    single = os.path.join(model_dir, "model.safetensors")
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.isfile(single) or os.path.isfile(index):
        from safetensors.numpy import load_file

        if os.path.isfile(single):
            return load_file(single)
        with open(index, encoding="utf-8") as file:
            files = sorted(set(json.load(file)["weight_map"].values()))
        weights = {}
        for name in files:
            weights.update(load_file(os.path.join(model_dir, name)))
        return weights
    legacy = os.path.join(model_dir, "pytorch_model.bin")
    if os.path.isfile(legacy):
        try:
            import torch
        except ImportError:
            raise CheckpointError(f"{legacy}: reading pytorch_model.bin needs torch: pip install -e '.[hf]' "
                                  "--extra-index-url https://download.pytorch.org/whl/cpu") from None
        state = torch.load(legacy, map_location="cpu", weights_only=True)
        return {name: tensor.float().numpy() for name, tensor in state.items()}
    raise CheckpointError(f"{model_dir}: no model.safetensors, model.safetensors.index.json or pytorch_model.bin")


def import_hf(model_dir: str, **config_overrides) -> tuple[T5Config, T5]:
    """Our config and model with the weights of a Hugging Face T5 directory (local, or gs:// downloaded first)."""
    with paths.local_copy(model_dir) as local:
        try:
            return _import_local(local, **config_overrides)
        except CheckpointError as error:
            raise CheckpointError(str(error).replace(local, model_dir)) from None


def _import_local(model_dir: str, **config_overrides) -> tuple[T5Config, T5]:
    config_path = os.path.join(model_dir, "config.json")
    if not os.path.isfile(config_path):
        raise CheckpointError(f"{model_dir}: no config.json (is this a Hugging Face model directory?)")
    with open(config_path, encoding="utf-8") as file:
        config = config_from_hf(json.load(file), config_path).replace(**config_overrides)
    weights = _read_weights(model_dir)
    model = nnx.eval_shape(lambda: T5(config, nnx.Rngs(0)))
    if not config.tie_word_embeddings and "lm_head.weight" not in weights and "shared.weight" in weights:
        weights["lm_head.weight"] = weights["shared.weight"]  # unscaled but shared (transformers 5 v1.1 saves)
    values = {}  # our path -> float32 array, stacked layers filled one index at a time
    missing = []
    for path, layer, name, layout in _mapping(config):
        shape = _variable(model, path).get_value().shape
        if name not in weights:
            missing.append(name)
            continue
        value = _to_ours(np.asarray(weights[name], np.float32), layout, config)
        expected = shape if layer is None else shape[1:]
        padding = _vocab_padding(path, config)
        if padding:
            expected = tuple(size - after for size, (_, after) in zip(expected, padding, strict=True))
        if value.shape != expected:
            raise CheckpointError(f"{model_dir}: {name} has shape {weights[name].shape}, config.json implies "
                                  f"{_to_theirs(np.zeros(expected), layout).shape}")
        if padding:
            value = np.pad(value, padding)
        if layer is None:
            values[path] = value
        else:
            values.setdefault(path, np.zeros(shape, np.float32))[layer] = value
    if missing:
        raise CheckpointError(f"{model_dir}: {len(missing)} weights missing, e.g. {', '.join(missing[:3])}")
    for path, value in values.items():
        _variable(model, path).set_value(jnp.asarray(value, config.weights_dtype))
    return config, model


def export_hf(model: T5, model_dir: str) -> None:
    """Writes `config.json` and `model.safetensors` that `transformers` loads as T5ForConditionalGeneration."""
    from safetensors.numpy import save_file

    os.makedirs(model_dir, exist_ok=True)
    config = model.config
    tensors = {}
    for path, layer, name, layout in _mapping(config):
        value = np.asarray(_variable(model, path).get_value(), np.float32)
        if layer is not None:
            value = value[layer]
        if _vocab_padding(path, config):
            value = np.take(value, np.arange(config.vocab_size), axis=_VOCAB_AXIS[path])
        tensors[name] = np.ascontiguousarray(_to_theirs(value, layout))
    save_file(tensors, os.path.join(model_dir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(model_dir, "config.json"), "w", encoding="utf-8") as file:
        json.dump(config_to_hf(config), file, indent=2)
