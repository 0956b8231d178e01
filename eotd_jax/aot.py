"""Plan a run before renting it: compile the train step and the eval decode for a TPU slice on this CPU host.

    python -m eotd_jax.aot --config=paper:codet5-large,etd --topology=v5e-16
    python -m eotd_jax.aot --config=paper:codet5-base,etd --topology=v4-8 --find_batch
    python -m eotd_jax.aot --config=... --topology=v5e:2x2 --config.train.per_device_batch_size=8 --dump_hlo=DIR

The trainer's own step (`trainer.make_train_step`: model, parameter and optimizer
shardings, donation) and the eval's greedy decoding are compiled by libtpu for
the slice's devices (`pip install -e '.[tpu]'`; no TPU needed; `h100-N` needs
the CUDA plugin instead, no GPU). Printed per chip: argument, temporary and
total bytes against the chip's HBM, whether it fits, the train step's matmul
FLOPs (`matmul_flops`), the step time at 100% and 50% of peak, and the bytes the
step's collectives move into each chip (`eotd_jax.planning.collectives`) with their time at
the chip's full interconnect bandwidth. On several slices or nodes (`2xv5e-16`,
`h100-2x8`) the train step is planned in both layouts across them, data parallel and
FSDP, side by side, with the collectives between them at the slower network's
bandwidth. Exit status 1 when a step does not fit, 2 on a bad config or topology.
"""

from __future__ import annotations

import json
import sys

import jax
from absl import flags, logging
from ml_collections import ConfigDict, config_flags

from eotd_jax import cli, platforms, validation
from eotd_jax.model.sharding import data_parallel_size
from eotd_jax.planning import slices
from eotd_jax.planning.plan import (
    Plan,
    describe,
    find_batch,
    plan_decode,
    plan_train,
    record,
    train_facts,
    train_mesh,
    with_settings,
)
from eotd_jax.trainer import ConfigError

# The two layouts of a slices-or-nodes job that the plan compares (config.mesh.dcn_shape); mesh.shape within each.
DCN_LAYOUTS = {"data parallel across": (-1, 1, 1), "FSDP across": (1, -1, 1)}

_CONFIG = config_flags.DEFINE_config_file("config", None, "a shipped config by name (quickstart, "
                                          "paper:codet5-large,etd, default) or a config file's path[:arguments]",
                                          lock_config=True)
_TOPOLOGY = flags.DEFINE_string("topology", None, "a TPU slice (v4-8, v5e-16, v5p-8, ... or raw v5e:4x4), "
                                "N of them (2xv5e-16), or h100-<N> / h100-<nodes>x<N> GPUs (needs the CUDA plugin)")
_FIND_BATCH = flags.DEFINE_bool("find_batch", False, "search the largest train.per_device_batch_size that fits, "
                                "with and without remat, starting from the config's (several compiles)")
_MAX_BATCH = flags.DEFINE_integer("max_batch", 256, "--find_batch: the largest per-device batch tried")
_DECODE = flags.DEFINE_bool("decode", True, "also compile the eval decode (greedy, eval.batch_size x "
                            "eval.max_new_tokens)")
_DUMP_HLO = flags.DEFINE_string("dump_hlo", None, "write each compiled program's optimized HLO text here")
_JSON = flags.DEFINE_bool("json", False, "print one JSON record per compile instead of the report")


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")
    if _CONFIG.value is None or _TOPOLOGY.value is None:
        sys.exit("error: --config and --topology are required")
    jax.config.update("jax_platforms", "cpu")  # the host compiles; it must not try to open a TPU
    platforms.describe_host_to_libtpu()
    logging.set_verbosity(logging.WARNING)
    try:
        validation.check_fields(_CONFIG.value)
        slice_ = slices.load(_TOPOLOGY.value)
        sys.exit(run(_CONFIG.value, slice_))
    except (slices.SliceError, ConfigError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def run(config: ConfigDict, slice_: slices.Slice) -> int:
    """Prints the plan; the exit status: 0 when every compiled step fits, 1 otherwise."""
    chip = slice_.chip
    facts = train_facts(config, slice_)  # checks the config before any compile

    def report(plan: Plan) -> None:
        row = record(plan, facts if plan.program == "train" else None, slice_)
        print(cli.json_line(row) if _JSON.value else describe(row, chip), flush=True)

    def train_planner(config: ConfigDict) -> Plan:
        return plan_train(config, slice_, _DUMP_HLO.value)

    if not _JSON.value:
        print(f"{slice_.name}: {slice_.topology}, {slice_.chips} chips of {chip.generation}, "
              f"{chip.hbm_bytes / slices.GIB:.2f} GiB HBM and {chip.peak_flops / 1e12:.0f} TFLOP/s bf16 each\n"
              f"{facts['model']} ({facts['params'] / 1e6:.1f}M params, {facts['dtype']}), mesh {facts['mesh']}, "
              f"rows {config.data.source_length}/{config.data.target_length}", flush=True)
    if _FIND_BATCH.value:
        mesh, batch = train_mesh(config, slice_)  # the search starts at the config's own rows a chip
        config = with_settings(config, batch // data_parallel_size(mesh))
        found = {}
        for remat in (False, True):
            found[remat], _ = find_batch(train_planner, config, chip.hbm_bytes, remat,
                                         _MAX_BATCH.value, report)
        print(json.dumps({"largest_per_device_batch": found[False], "with_remat": found[True]}) if _JSON.value else
              f"largest per-device batch that fits: {found[False]} without remat, {found[True]} with remat",
              flush=True)
        status = 0 if max(found.values()) > 0 else 1
    elif slice_.granules > 1:
        plans = {name: train_planner(with_settings(config, dcn_shape=shape)) for name, shape in DCN_LAYOUTS.items()}
        for plan in plans.values():
            report(plan)
        seconds = {name: record(plan, facts, slice_)["collective_seconds"] for name, plan in plans.items()
                   if plan.fits}
        if not _JSON.value and seconds:
            print(f"across the {slice_.granules} slices or nodes: " + "; ".join(
                f"{name} {value * 1e3:.1f} ms of collectives" for name, value in seconds.items())
                + f"; the lower: {min(seconds, key=seconds.get)}", flush=True)
        status = 0 if all(plan.fits for plan in plans.values()) else 1
    else:
        plan = train_planner(config)
        report(plan)
        status = 0 if plan.fits else 1
    if _DECODE.value:
        plan = plan_decode(config, slice_, _DUMP_HLO.value)
        report(plan)
        status = status if plan.fits else 1
    return status


if __name__ == "__main__":
    cli.run(main)
