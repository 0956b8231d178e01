"""Named-axis sharding: one table maps logical axis names to mesh axes.

Parameters carry `logical_axes` metadata (see `t5.py`); the model pins its
activations with `constrain` (`batch`, `length`, ...; None for a replicated
axis). The mesh has axes (`data`, `fsdp`, `tensor`): `data` replicates
parameters, `fsdp` shards them (ZeRO-3 style) and the batch, `tensor` shards
heads and the feed-forward width (Megatron style).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import numpy as np
from flax import nnx, traverse_util
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

# logical axis -> mesh axis (or axes, or None for replicated). The one place sharding is decided.
LOGICAL_RULES: dict[str, str | tuple[str, ...] | None] = {
    "batch": ("data", "fsdp"),
    "length": None,
    "vocab": "tensor",
    "embed": "fsdp",
    "heads": "tensor",
    "kv": None,
    "mlp": "tensor",
    "buckets": None,
    "layers": None,  # the stacked layers are scanned one at a time: every device holds its share of each
}


def make_mesh(shape: Sequence[int], devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A (data, fsdp, tensor) mesh; one entry may be -1 for "all remaining devices"."""
    devices = list(devices if devices is not None else jax.devices())
    shape = list(shape)
    if len(shape) != len(MESH_AXES):
        raise ValueError(f"mesh shape needs {len(MESH_AXES)} sizes for {MESH_AXES}, got {shape}")
    if shape.count(-1) > 1:
        raise ValueError(f"mesh shape {shape}: at most one size may be -1")
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if len(devices) % known:
            raise ValueError(f"mesh shape {shape} does not divide {len(devices)} devices")
        shape[shape.index(-1)] = len(devices) // known
    if math.prod(shape) != len(devices):
        raise ValueError(f"mesh shape {dict(zip(MESH_AXES, shape, strict=True))} needs {math.prod(shape)} devices, "
                         f"there are {len(devices)}")
    return Mesh(np.asarray(devices).reshape(shape), MESH_AXES)


def logical_to_spec(axes: Sequence[str | None], mesh: Mesh, shape: Sequence[int] | None = None) -> PartitionSpec:
    """The PartitionSpec of logical `axes`; an axis a mesh axis does not divide is replicated."""
    spec, used = [], set()
    for index, name in enumerate(axes):
        target = LOGICAL_RULES.get(name) if name else None
        targets = (target,) if isinstance(target, str) else tuple(target or ())
        targets = tuple(t for t in targets if t not in used and mesh.shape[t] > 1)
        size = math.prod(mesh.shape[t] for t in targets)
        if shape is not None and shape[index] % max(size, 1):
            targets = ()
        used.update(targets)
        spec.append(targets[0] if len(targets) == 1 else (targets or None))
    return PartitionSpec(*spec)


def param_shardings(state: nnx.State, mesh: Mesh) -> dict:
    """A NamedSharding per variable of `state` from its `logical_axes` (replicated if it has none).

    Returned as a pure dict shaped like `nnx.to_pure_dict(state)`, the form the trainer's jit and Orbax use.
    """
    flat = {}
    for path, variable in nnx.to_flat_state(state):
        axes = getattr(variable, "logical_axes", None) or ()
        spec = logical_to_spec(axes, mesh, variable.get_value().shape) if axes else PartitionSpec()
        flat[path] = NamedSharding(mesh, spec)
    return traverse_util.unflatten_dict(flat)


def constrain(x: jax.Array, axes: Sequence[str | None]) -> jax.Array:
    """`x` laid out by the rules on the current mesh (`jax.sharding.use_abstract_mesh`: the train step is traced
    under one); as it is without one. FSDP training needs it: left to itself, XLA sharded the hidden states'
    `embed` like the weights' and all-gathered every layer's activations for the global batch instead of each
    layer's weights, so memory per chip grew with the slice (tests/test_sharding.py)."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return x
    return jax.lax.with_sharding_constraint(x, logical_to_spec(axes, mesh, x.shape))


def data_parallel_size(mesh: Mesh | jax.sharding.AbstractMesh) -> int:
    """How many devices split the batch: the mesh axes of the `batch` rule."""
    return math.prod(mesh.shape[axis] for axis in LOGICAL_RULES["batch"])


def batch_sharding(mesh: Mesh, rank: int = 2) -> NamedSharding:
    """Inputs (B, L, ...): the batch over data x fsdp, the rest replicated."""
    return NamedSharding(mesh, logical_to_spec(("batch",) + ("length",) * (rank - 1), mesh))


def shard_model(model: nnx.Module, mesh: Mesh) -> nnx.Module:
    """The model with every parameter placed according to the rules."""
    graphdef, state = nnx.split(model)
    nnx.replace_by_pure_dict(state, jax.device_put(nnx.to_pure_dict(state), param_shardings(state, mesh)))
    return nnx.merge(graphdef, state)
