"""A student's architecture and first parameters from a training config: a named model or a Hugging Face directory.

The trainer calls `resolve` once, when a run starts; the run directory then keeps the
resolved `T5Config` (`eotd_jax.run_dir`), so resuming, eval and export build the model
from that file and never read the starting directory again. `initial_params` reads the
pretrained weights only when it is called, which the trainer does only without a checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import jax
from flax import nnx
from ml_collections import ConfigDict

from eotd_jax import paths
from eotd_jax.model.config import T5Config, get_config
from eotd_jax.model.hf_io import config_from_hf, import_hf
from eotd_jax.model.t5 import T5


def pretrained_dir(config: ConfigDict) -> str:
    """The HF directory to start from; "" for random weights (`init_from_hf` empty, or `none` said on purpose)."""
    return "" if config.init_from_hf == "none" else config.init_from_hf


def resolve(config: ConfigDict) -> T5Config:
    """The architecture a config asks for (`model` by name, or `init_from_hf`'s config.json) with
    `model_overrides`; reads no weights. Raises ValueError naming the field at fault."""
    overrides = dict(config.model_overrides)
    source = pretrained_dir(config)
    field = "config.init_from_hf" if source else "config.model"
    try:
        if source:
            config_file = paths.path(source) / "config.json"
            if not config_file.is_file():
                raise ValueError(f"no config.json in {source} (a Hugging Face model directory)")
            return config_from_hf(json.loads(config_file.read_text()), str(config_file)).replace(**overrides)
        return get_config(config.model, **overrides)
    except ValueError as error:
        raise ValueError(f"{field}: {error}") from None
    except TypeError as error:
        raise ValueError(f"config.model_overrides: {error}") from None


def abstract_model(model_config: T5Config) -> tuple[nnx.GraphDef, nnx.State]:
    """The model's graph and the shapes of its parameters; allocates nothing."""
    return nnx.split(nnx.eval_shape(lambda: T5(model_config, nnx.Rngs(0))))


def initial_params(config: ConfigDict, model_config: T5Config, shardings: dict) -> Callable[[], dict]:
    """A function giving the first parameters, placed by `shardings`: the HF weights, or a fresh init."""
    source = pretrained_dir(config)
    if source:
        def imported() -> dict:
            _, model = import_hf(source, **dict(config.model_overrides))
            return jax.device_put(nnx.to_pure_dict(nnx.split(model)[1]), shardings)

        return imported
    seed = config.train.seed

    def fresh() -> dict:
        init = jax.jit(lambda: nnx.to_pure_dict(nnx.split(T5(model_config, nnx.Rngs(seed)))[1]),
                       out_shardings=shardings)
        return init()

    return fresh
