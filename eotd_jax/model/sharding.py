"""Named-axis sharding: one table maps logical axis names to mesh axes.

Parameters carry `logical_axes` metadata (see `t5.py`); the model pins its
activations with `constrain` (`batch`, `length`, ...; None for a replicated
axis). The mesh has axes (`data`, `fsdp`, `tensor`): `data` replicates
parameters, `fsdp` shards them (ZeRO-3 style) and the batch, `tensor` shards
heads and the feed-forward width (Megatron style). `make_mesh` lays them out
on the interconnect: within a slice or node, then across slices or nodes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
from flax import nnx, traverse_util
from jax.experimental import mesh_utils
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


def make_mesh(shape: Sequence[int], devices: Sequence[jax.Device] | None = None,
              dcn_shape: Sequence[int] = (-1, 1, 1), process_is_granule: bool = False) -> Mesh:
    """A (data, fsdp, tensor) mesh that follows the interconnect.

    `shape` lays out the devices of one granule (a TPU slice, or a GPU node in a multi-node job: the devices of
    one `slice_index`), topology-aware (`mesh_utils.create_device_mesh`); `dcn_shape` lays out the granules over
    the slower network between them (DCN, InfiniBand), so a mesh axis of size shape[i] * dcn_shape[i] puts its
    outer factor across granules (`mesh_utils.create_hybrid_device_mesh`). In each, one entry may be -1 for "all
    remaining"; the default puts data parallelism, whose gradients cross once a step, across the granules.
    `process_is_granule`: the granules are processes (the hosts of compile-only GPU devices, which have no slices).
    """
    devices = list(devices if devices is not None else jax.devices())
    granules = _granules(devices, "process_index" if process_is_granule else "slice_index")
    dcn = _resolve("mesh.dcn_shape", dcn_shape, len(granules), "slices or nodes")
    inner = _resolve("mesh.shape", shape, len(devices) // len(granules), "devices" if len(granules) == 1 else
                     "devices in each slice or node")
    if len(granules) == 1:
        grid = mesh_utils.create_device_mesh(inner, devices, allow_split_physical_axes=True)
    else:
        grid = mesh_utils.create_hybrid_device_mesh(inner, dcn, devices, process_is_granule=process_is_granule,
                                                    allow_split_physical_axes=True)
    return Mesh(grid, MESH_AXES)


def _granules(devices: Sequence[jax.Device], attribute: str) -> list[list[jax.Device]]:
    """The devices grouped by `attribute`: `slice_index` numbers TPU slices, and GPU nodes (`eotd_jax.distributed`
    sets it); one group where devices have none (CPU)."""
    groups: dict[int, list[jax.Device]] = {}
    for device in devices:
        groups.setdefault(getattr(device, attribute, 0), []).append(device)
    if len({len(group) for group in groups.values()}) > 1:
        raise ValueError(f"the {len(groups)} slices or nodes hold different numbers of devices "
                         f"({sorted(len(group) for group in groups.values())})")
    return [groups[key] for key in sorted(groups)]


def _resolve(name: str, shape: Sequence[int], count: int, what: str) -> tuple[int, ...]:
    """`shape` with its -1 filled in so that it multiplies to `count`."""
    shape = list(shape)
    if len(shape) != len(MESH_AXES):
        raise ValueError(f"{name} needs {len(MESH_AXES)} sizes for {MESH_AXES}, got {shape}")
    if shape.count(-1) > 1:
        raise ValueError(f"{name} {shape}: at most one size may be -1")
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if count % known:
            raise ValueError(f"{name} {shape} does not divide {count} {what}")
        shape[shape.index(-1)] = count // known
    if math.prod(shape) != count:
        raise ValueError(f"{name} {dict(zip(MESH_AXES, shape, strict=True))} needs {math.prod(shape)} {what}, "
                         f"there are {count}")
    return tuple(shape)


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
