"""The trainer's step partitioned over 8 CPU devices (XLA's SPMD partitioner, as on TPU and GPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from runs import cpu_env, fake_devices

FSDP_STEP = """
import json, re
import jax, jax.numpy as jnp
from flax import nnx
from eotd_jax.configs import default as default_config
from eotd_jax import checkpoints
from eotd_jax.model.config import get_config
from eotd_jax.model.sharding import make_mesh, param_shardings
from eotd_jax.model.t5 import T5
from eotd_jax.trainer import make_train_step
mesh = make_mesh((1, -1, 1))
model_config = get_config("t5-tiny", dropout_rate=0.1)
graphdef, state = nnx.split(nnx.eval_shape(lambda: T5(model_config, nnx.Rngs(0))))
params = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), nnx.to_pure_dict(state))
step = make_train_step(default_config.get_config(), model_config, graphdef, params, param_shardings(state, mesh),
                       mesh)
batch = {name: jax.ShapeDtypeStruct((24, length), jnp.int32, sharding=step.batch_sharding)
         for name, length in (("inputs", 128), ("input_segments", 128), ("targets", 64), ("target_segments", 64))}
compiled = step.fn.lower(checkpoints.abstract_like(step.state_shapes, step.state_shardings), batch).compile()
print(json.dumps(re.findall(r"= \\(?([a-z]+)[0-9]*\\[([0-9,]*)\\][^=]*? all-gather(?:-start)?\\(", compiled.as_text())))
"""


def test_fsdp_gathers_each_layers_weights_and_no_activations():
    """Without the model's activation constraints XLA sharded the hidden states' features like the weights and
    all-gathered every layer's activations for the global batch (24 rows here): memory per chip grew with the
    slice (codet5-large at 2 rows a chip: 5.93 GiB on v5e-8, 8.71 GiB on v5e-16; with them 3.83 and 3.31)."""
    env = cpu_env(fake_devices(8))
    result = subprocess.run([sys.executable, "-c", FSDP_STEP], capture_output=True, text=True, timeout=300, env=env,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr[-3000:]
    gathers = [(dtype, [int(d) for d in dims.split(",") if d]) for dtype, dims in json.loads(result.stdout)]
    activations = [g for g in gathers if g[0] in ("f", "bf") and g[1][:1] == [24]]
    assert not activations, activations
    # t5-tiny: d_model 64 sharded 8 ways, gathered a layer at a time, e.g. a (64, 4 heads, 16) attention kernel.
    assert ("f", [64, 4, 16]) in gathers and ("f", [64, 128]) in gathers, gathers
