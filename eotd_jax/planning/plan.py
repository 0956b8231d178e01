"""What a config costs on a slice it does not have: compile the train step and the eval decode for its devices.

`plan_train` and `plan_decode` compile the trainer's own step (`trainer.make_train_step`) and
the eval's greedy decoding for a slice (`slices.load`) and read per-chip memory, matmul FLOPs
(`flops.matmul_flops`) and the collectives' bytes (`collectives.collective_bytes`), those
between slices or nodes apart, off the compiled programs;
`record` and `describe` turn a plan into a JSON row and a report in words. The binary is
`python -m eotd_jax.aot`.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from ml_collections import ConfigDict

from eotd_jax import checkpoints
from eotd_jax.model import build
from eotd_jax.model.decoding import greedy
from eotd_jax.model.sharding import batch_sharding, data_parallel_size, make_mesh, param_shardings
from eotd_jax.planning import collectives, slices
from eotd_jax.planning.flops import matmul_flops
from eotd_jax.trainer import ConfigError, count_params, global_batch_size, make_train_step

_UNITS = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


@dataclasses.dataclass
class Plan:
    """One compiled program on one chip of the slice; bytes are per chip."""

    program: str  # "train" or "decode"
    settings: dict
    fits: bool
    argument_bytes: int
    temp_bytes: int
    output_bytes: int  # outputs not aliased to donated arguments
    code_bytes: int
    hbm_bytes: int
    flops: float  # per chip per step: train, matmul FLOPs (`matmul_flops`); decode, XLA's count (0 on GPUs)
    compile_seconds: float
    collectives: dict = dataclasses.field(default_factory=dict)  # bytes into one chip by kind (planning.collectives)
    dcn_collectives: dict = dataclasses.field(default_factory=dict)  # those of them between slices or nodes

    @property
    def total_bytes(self) -> int:
        return self.argument_bytes + self.temp_bytes + self.output_bytes + self.code_bytes

    @property
    def collective_bytes(self) -> float:
        return sum(self.collectives.values())

    @property
    def dcn_collective_bytes(self) -> float:
        return sum(self.dcn_collectives.values())


def compile_plan(program: str, lowered, settings: dict, slice_: slices.Slice, mesh: jax.sharding.Mesh,
                 argument_bytes: int, dump_hlo: str | None = None, flops: float | None = None) -> Plan:
    """Compiles; an out-of-memory compile is a plan that does not fit, with the temporaries the compiler asked for.
    `flops` per chip, or None for XLA's count. The program's partitions are `mesh`'s devices in order."""
    start = time.perf_counter()
    hbm = slice_.chip.hbm_bytes
    try:
        compiled = lowered.compile()
    except jax.errors.JaxRuntimeError as error:
        found = re.search(r"temporaries \(([\d.]+)([KMGT])\)", str(error))
        if "RESOURCE_EXHAUSTED" not in str(error) or not found:
            raise
        temp = int(float(found.group(1)) * _UNITS[found.group(2)])
        return Plan(program, settings, False, argument_bytes, temp, 0, 0, hbm, flops or 0.0,
                    time.perf_counter() - start)
    seconds = time.perf_counter() - start
    memory, hlo = compiled.memory_analysis(), compiled.as_text()
    if dump_hlo:
        os.makedirs(dump_hlo, exist_ok=True)
        name = "_".join([program, *(f"{k}{v}" for k, v in settings.items())])
        with open(os.path.join(dump_hlo, f"{name}.hlo.txt"), "w", encoding="utf-8") as file:
            file.write(hlo)
    if flops is None:
        flops = (compiled.cost_analysis() or {}).get("flops", 0.0)  # XLA:GPU gives none
    plan = Plan(program, settings, True, memory.argument_size_in_bytes, memory.temp_size_in_bytes,
                memory.output_size_in_bytes - memory.alias_size_in_bytes, memory.generated_code_size_in_bytes, hbm,
                float(flops), seconds, collectives.collective_bytes(hlo, slice_.chips))
    if slice_.granules > 1:
        across = [slice_.granule_of(device) for device in mesh.devices.flat]
        plan.dcn_collectives = collectives.collective_bytes(hlo, slice_.chips, across)
    plan.fits = plan.total_bytes <= hbm
    return plan


def with_settings(config: ConfigDict, per_device_batch: int | None = None, remat: bool | None = None,
                  dcn_shape: tuple[int, ...] | None = None) -> ConfigDict:
    """A copy of `config` with the per-device batch, remat or the mesh across slices or nodes replaced."""
    config = copy.deepcopy(config)
    with config.unlocked():
        if per_device_batch is not None:
            config.train.per_device_batch_size = per_device_batch
        if remat is not None:
            config.model_overrides.remat = remat
        if dcn_shape is not None:
            config.mesh.dcn_shape = dcn_shape
    return config


def per_chip_bytes(tree) -> int:
    """Bytes one device holds of abstract arrays with shardings (the largest shard, as padding rounds up)."""
    return sum(int(np.prod(x.sharding.shard_shape(x.shape))) * x.dtype.itemsize for x in jax.tree.leaves(tree))


def train_mesh(config: ConfigDict, slice_: slices.Slice) -> tuple[jax.sharding.Mesh, int]:
    """The config's mesh on the slice and its global batch, checked as the trainer checks them."""
    mesh = slice_mesh(config, slice_)
    batch = global_batch_size(config, mesh)
    data_parallel = data_parallel_size(mesh)
    if batch % data_parallel:
        raise ConfigError(f"config.train.batch_size {batch} is not divisible by the {data_parallel} data-parallel "
                          "devices (mesh data x fsdp); set config.train.per_device_batch_size instead")
    return mesh, batch


def _model(config: ConfigDict):
    """(architecture, graph, abstract state) of the config's student; no weights are read."""
    model_config = build.resolve(config)
    return (model_config, *build.abstract_model(model_config))


def slice_mesh(config: ConfigDict, slice_: slices.Slice) -> jax.sharding.Mesh:
    """The config's mesh (`mesh.shape` within a slice or node, `mesh.dcn_shape` across them) on the slice."""
    return make_mesh(tuple(config.mesh.shape), slice_.devices, tuple(config.mesh.dcn_shape), slice_.process_is_granule)


def train_facts(config: ConfigDict, slice_: slices.Slice) -> dict:
    """What the step time and FLOPs-per-token figures need: parameters, mesh, tokens per step."""
    mesh, batch = train_mesh(config, slice_)
    model_config, _, state = _model(config)
    return {"model": config.init_from_hf or config.model, "params": count_params(nnx.to_pure_dict(state)),
            "dtype": model_config.dtype, "mesh": dict(mesh.shape),
            "row_tokens": config.data.source_length + config.data.target_length}


def plan_train(config: ConfigDict, slice_: slices.Slice, dump_hlo: str | None = None) -> Plan:
    """The trainer's step (`trainer.make_train_step`) for this config, compiled for the slice."""
    mesh, batch = train_mesh(config, slice_)
    model_config, graphdef, state = _model(config)
    params_shape = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), nnx.to_pure_dict(state))
    step = make_train_step(config, model_config, graphdef, params_shape, param_shardings(state, mesh), mesh)
    state_args = checkpoints.abstract_like(step.state_shapes, step.state_shardings)
    lengths = {"inputs": config.data.source_length, "input_segments": config.data.source_length,
               "targets": config.data.target_length, "target_segments": config.data.target_length}
    batch_args = {name: jax.ShapeDtypeStruct((batch, length), jnp.int32, sharding=step.batch_sharding)
                  for name, length in lengths.items()}
    settings = {"batch": batch, "per_device": batch // data_parallel_size(mesh),
                "remat": model_config.remat}
    if slice_.granules > 1:
        settings["dcn_shape"] = list(config.mesh.dcn_shape)
    traced = step.fn.trace(state_args, batch_args)
    return compile_plan("train", traced.lower(), settings, slice_, mesh, per_chip_bytes((state_args, batch_args)),
                        dump_hlo, matmul_flops(traced.jaxpr.jaxpr) / slice_.chips)


def plan_decode(config: ConfigDict, slice_: slices.Slice, dump_hlo: str | None = None) -> Plan:
    """The eval's greedy decoding of `eval.batch_size` questions, `eval.max_new_tokens` each, on the slice."""
    mesh = slice_mesh(config, slice_)
    _, graphdef, state = _model(config)
    shardings = param_shardings(state, mesh)
    batch, new_tokens = config.eval.batch_size, config.eval.max_new_tokens
    rows = batch_sharding(mesh)
    if batch % data_parallel_size(mesh):
        rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    params = checkpoints.abstract_like(nnx.to_pure_dict(state), shardings)
    ids = jax.ShapeDtypeStruct((batch, config.data.source_length), jnp.int32, sharding=rows)
    mask = jax.ShapeDtypeStruct((batch, config.data.source_length), jnp.bool_, sharding=rows)

    def decode(params, ids, mask):
        return greedy(nnx.merge(graphdef, params), ids, mask, new_tokens)

    lowered = jax.jit(decode).lower(params, ids, mask)
    settings = {"batch": batch, "max_new_tokens": new_tokens}
    return compile_plan("decode", lowered, settings, slice_, mesh, per_chip_bytes((params, ids, mask)), dump_hlo)


def find_batch(planner, config: ConfigDict, hbm_bytes: int, remat: bool, max_batch: int,
               report=print) -> tuple[int, list[Plan]]:
    """The largest per-device batch that fits, starting from the config's; memory is close to linear in the batch,
    so each guess interpolates the two nearest measured batches, then narrows between the largest fit and smallest
    miss."""
    plans: dict[int, Plan] = {}

    def measure(per_device: int) -> Plan:
        plans[per_device] = planner(with_settings(config, per_device, remat))
        report(plans[per_device])
        return plans[per_device]

    low, high = 0, max_batch + 1  # largest known fit, smallest known miss
    guess = min(max(config.train.per_device_batch_size, 1), max_batch)  # the config's own batch is measured first
    while high - low > 1:
        plan = measure(guess)
        low, high = (guess, high) if plan.fits else (low, guess)
        measured = sorted(plans)
        if len(measured) < 2:
            guess = min(2 * guess, high - 1) if plan.fits else high - 1
            continue
        a, b = (measured[0], measured[1]) if len(measured) == 2 else _nearest(measured, guess)
        slope = (plans[b].total_bytes - plans[a].total_bytes) / (b - a)
        predicted = a + (hbm_bytes - plans[a].total_bytes) / slope if slope > 0 else high - 1
        guess = int(min(max(predicted, low + 1), high - 1))
        if guess in plans:  # interpolation stalled: bisect
            guess = (low + high) // 2
    return low, [plans[b] for b in sorted(plans)]


def _nearest(measured: list[int], around: int) -> tuple[int, int]:
    pair = sorted(sorted(measured, key=lambda b: abs(b - around))[:2])
    return pair[0], pair[1]


def record(plan: Plan, facts: dict | None, slice_: slices.Slice) -> dict:
    """The plan with what follows from it on this slice: step time, tokens, FLOPs per token, collectives' time."""
    chip = slice_.chip
    fast, slow = plan.collective_bytes - plan.dcn_collective_bytes, plan.dcn_collective_bytes
    row = {"topology": slice_.name, **dataclasses.asdict(plan), "total_bytes": plan.total_bytes,
           "collective_bytes": plan.collective_bytes, "dcn_collective_bytes": slow,
           "collective_seconds": fast / chip.interconnect_bytes_per_s + slow / chip.dcn_bytes_per_s}
    if facts and plan.flops:
        tokens = plan.settings["batch"] * facts["row_tokens"]
        row.update(facts, tokens_per_step=tokens, flops_per_token=plan.flops * slice_.chips / tokens,
                   step_seconds_at_50_percent=2 * plan.flops / slice_.chip.peak_flops)
    return row


def describe(row: dict, chip: slices.Chip) -> str:
    """A `record` in words."""
    gib = slices.GIB
    settings = ", ".join(f"{k} {v}" for k, v in row["settings"].items())
    free = row["hbm_bytes"] - row["total_bytes"]
    verdict = (f"fits ({free / gib:.2f} GiB free)" if row["fits"] else f"does not fit (short by {-free / gib:.2f} GiB)")
    lines = [f"{row['program']} step ({settings}), per chip: arguments {row['argument_bytes'] / gib:.2f} GiB, "
             f"temporaries {row['temp_bytes'] / gib:.2f} GiB, outputs {row['output_bytes'] / gib:.2f} GiB, "
             f"code {row['code_bytes'] / gib:.2f} GiB, total {row['total_bytes'] / gib:.2f} GiB of "
             f"{row['hbm_bytes'] / gib:.2f} GiB HBM: {verdict}; compiler ran {row['compile_seconds']:.0f} s"]
    if "step_seconds_at_50_percent" in row:
        seconds = row["step_seconds_at_50_percent"]
        lines.append(f"  {row['flops']:.3e} matmul FLOPs per chip per step ({row['flops_per_token']:.3e} per token = "
                     f"{row['flops_per_token'] / (6 * row['params']):.2f} x 6N); step time {seconds / 2 * 1e3:.1f} ms "
                     f"at 100% of peak, {seconds * 1e3:.1f} ms at 50%; {row['tokens_per_step'] / seconds:,.0f} "
                     "tokens/s at 50%")
    if row["fits"] and row.get("dcn_collective_bytes"):
        lines.append(f"  collectives: {row['collective_bytes'] / gib:.3f} GiB into each chip, "
                     f"{row['dcn_collective_bytes'] / gib:.3f} GiB of it between slices or nodes; "
                     f"{row['collective_seconds'] * 1e3:.1f} ms at the full {chip.interconnect_bytes_per_s / 1e9:.0f} "
                     f"GB/s a chip takes in within one and {chip.dcn_bytes_per_s / 1e9:.2f} GB/s between them "
                     "(a lower bound; XLA overlaps them with compute where it can)")
    elif row["fits"]:
        lines.append(f"  collectives: {row['collective_bytes'] / gib:.3f} GiB into each chip, "
                     f"{row['collective_seconds'] * 1e3:.1f} ms at the full "
                     f"{chip.interconnect_bytes_per_s / 1e9:.0f} GB/s a chip takes in (a lower bound; XLA overlaps "
                     "them with compute where it can)")
    return "\n".join(lines)
