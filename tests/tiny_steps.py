"""t5-tiny and the trainer's step for it, traced straight from `trainer.make_train_step` on abstract arguments: the
tests' own programs to compare `eotd_jax.aot`'s figures and the collectives' count against."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from eotd_jax import checkpoints
from eotd_jax.configs import default as default_config
from eotd_jax.model.config import T5Config, get_config
from eotd_jax.model.sharding import param_shardings
from eotd_jax.model.t5 import T5
from eotd_jax.trainer import make_train_step


def tiny_model(**model_overrides) -> tuple[T5Config, nnx.GraphDef, nnx.State]:
    """t5-tiny without dropout, abstract: (model config, graphdef, state)."""
    model_config = get_config("t5-tiny", dropout_rate=0.0, **model_overrides)
    graphdef, state = nnx.split(nnx.eval_shape(lambda: T5(model_config, nnx.Rngs(0))))
    return model_config, graphdef, state


def tiny_train_step(model: tuple[T5Config, nnx.GraphDef, nnx.State], mesh: jax.sharding.Mesh, rows: int,
                    source_length: int, target_length: int) -> jax.stages.Traced:
    """The default config's step for `model` (`tiny_model`) on `rows` packed rows, sharded over `mesh`."""
    model_config, graphdef, state = model
    params = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), nnx.to_pure_dict(state))
    step = make_train_step(default_config.get_config(), model_config, graphdef, params,
                           param_shardings(state, mesh), mesh)
    lengths = {"inputs": source_length, "input_segments": source_length,
               "targets": target_length, "target_segments": target_length}
    batch = {name: jax.ShapeDtypeStruct((rows, length), jnp.int32, sharding=step.batch_sharding)
             for name, length in lengths.items()}
    return step.fn.trace(checkpoints.abstract_like(step.state_shapes, step.state_shardings), batch)
