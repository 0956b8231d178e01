"""python -m eotd_jax.aot compiles the trainer's step and the eval decode for a real TPU topology (libtpu, no TPU)."""

from __future__ import annotations

import importlib.util
import json

import jax
import jax.numpy as jnp
import pytest
from flax import nnx
from runs import python_module
from tiny_steps import tiny_model, tiny_train_step

from eotd_jax import checkpoints
from eotd_jax.configs import default as default_config
from eotd_jax.model.decoding import greedy
from eotd_jax.model.sharding import batch_sharding, make_mesh, param_shardings
from eotd_jax.planning import slices
from eotd_jax.planning.collectives import collective_bytes
from eotd_jax.planning.flops import matmul_flops
from eotd_jax.planning.plan import Plan, describe, find_batch, record

TINY = ["--config=default", "--config.model=t5-tiny", "--config.data.source_length=128",
        "--config.data.target_length=64", "--config.eval.batch_size=8", "--config.eval.max_new_tokens=16"]


def _compiled_here(v5e_2x2, per_device: int):
    """The same programs compiled in this process straight from the trainer and the decoder, for comparison."""
    mesh = make_mesh((-1, 1, 1), v5e_2x2.devices)
    model = tiny_model()
    _, graphdef, state = model
    traced = tiny_train_step(model, mesh, 4 * per_device, 128, 64)
    placed = checkpoints.abstract_like(nnx.to_pure_dict(state), param_shardings(state, mesh))
    rows = batch_sharding(mesh)
    ids = jax.ShapeDtypeStruct((8, 128), jnp.int32, sharding=rows)
    mask = jax.ShapeDtypeStruct((8, 128), jnp.bool_, sharding=rows)
    decode = jax.jit(lambda p, i, m: greedy(nnx.merge(graphdef, p), i, m, 16)).lower(placed, ids, mask).compile()
    return traced.lower().compile(), decode


def test_tiny_train_and_decode_steps_compile_for_v5e_2x2_and_report_the_compiled_memory(v5e_2x2, tmp_path):
    result = python_module("eotd_jax.aot", *TINY, "--topology=v5e:2x2", "--config.train.per_device_batch_size=2",
                           "--json", f"--dump_hlo={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    train_row, decode_row = (json.loads(line) for line in result.stdout.strip().splitlines())
    assert train_row["program"] == "train" and decode_row["program"] == "decode"
    assert train_row["settings"] == {"batch": 8, "per_device": 2, "remat": False}
    train, decode = _compiled_here(v5e_2x2, per_device=2)
    for row, compiled in ((train_row, train), (decode_row, decode)):
        memory = compiled.memory_analysis()
        assert row["argument_bytes"] == memory.argument_size_in_bytes > 0
        assert row["temp_bytes"] == memory.temp_size_in_bytes
        assert row["code_bytes"] == memory.generated_code_size_in_bytes > 0
        assert row["output_bytes"] == memory.output_size_in_bytes - memory.alias_size_in_bytes
        assert row["total_bytes"] == (memory.argument_size_in_bytes + memory.temp_size_in_bytes + row["output_bytes"]
                                      + memory.generated_code_size_in_bytes)
        assert row["fits"] and row["hbm_bytes"] == int(15.75 * 2**30)
        assert row["collectives"] == collective_bytes(compiled.as_text(), 4)
        assert row["collective_seconds"] == row["collective_bytes"] / 200e9  # a v5e chip takes in 200 GB/s
    assert train_row["collectives"]["all-reduce"] > 0  # data parallel: the gradients are summed across the chips
    # The donated state comes back in place: only the metrics (a few padded scalars) are new outputs.
    assert train_row["output_bytes"] <= 8192 < train_row["argument_bytes"]
    # 8 rows of 192 tokens over 4 chips; the step's FLOPs per token are within a small factor of 6N.
    assert train_row["tokens_per_step"] == 8 * 192
    assert 0.5 < train_row["flops_per_token"] / (6 * train_row["params"]) < 3
    dumped = sorted(path.name for path in tmp_path.iterdir())
    assert dumped == ["decode_batch8_max_new_tokens16.hlo.txt", "train_batch8_per_device2_rematFalse.hlo.txt"]
    assert all((tmp_path / name).read_text().startswith("HloModule") for name in dumped)


def test_matmul_flops_count_every_scanned_layer_as_xla_counts_unrolled_ones():
    assert matmul_flops(jax.make_jaxpr(jnp.dot)(jnp.ones((3, 5)), jnp.ones((5, 7))).jaxpr) == 2 * 3 * 5 * 7
    mesh = make_mesh((1, 1, 1), jax.devices()[:1])
    counts = {}
    for scan in (True, False):
        traced = tiny_train_step(tiny_model(scan_layers=scan), mesh, 4, 32, 16)
        counts[scan] = matmul_flops(traced.jaxpr.jaxpr), traced.lower().compile().cost_analysis()["flops"]
    assert counts[True][0] == counts[False][0]
    assert counts[True][1] < 0.8 * counts[False][1]  # XLA counts the scanned layers once
    assert 0.7 * counts[False][1] < counts[False][0] < counts[False][1]  # XLA adds the elementwise FLOPs


def test_a_config_too_big_for_the_chip_is_reported_and_exits_non_zero(v5e_2x2):
    # 32k-token rows: the encoder's attention scores alone are hundreds of GiB per chip.
    result = python_module("eotd_jax.aot", *TINY, "--topology=v5e:2x2", "--config.data.source_length=32768",
                           "--decode=false", "--config.model_overrides.remat=true")
    assert result.returncode == 1, result.stderr[-3000:]
    verdict = [line for line in result.stdout.splitlines() if line.startswith("train step")]
    assert len(verdict) == 1 and "does not fit (short by" in verdict[0], result.stdout
    assert "remat True" in verdict[0]  # remat does not rescue 32k-token attention
    assert "of 15.75 GiB HBM" in verdict[0]


def test_the_paper_codet5_small_remat_step_compiles_for_v4_8(v5e_2x2):
    """libtpu 0.0.42's compiler has segfaulted on this step in its dot-dot fusion (with optimization barriers on the
    dropouts); the trainer's jit turns that fusion off for remat steps on TPU (eotd_jax.trainer.make_train_step)."""
    result = python_module("eotd_jax.aot", "--config=paper:codet5-small,etd", "--topology=v4-8",
                           "--decode=false", "--config.model_overrides.remat=true",
                           "--config.train.per_device_batch_size=2", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    row = json.loads(result.stdout.strip().splitlines()[-1])
    assert row["fits"] and row["settings"] == {"batch": 8, "per_device": 2, "remat": True}


def test_the_report_in_words_gives_the_records_step_time_tokens_and_collectives(v5e_2x2):
    """A fitting train plan on 4 v5e chips (197 TFLOP/s, 200 GB/s in): 10 ms of FLOPs at peak, 10 ms of
    collectives."""
    plan = Plan("train", {"batch": 8, "per_device": 2, "remat": False}, True, 2**30, 2**30, 0, 2**20,
                v5e_2x2.chip.hbm_bytes, flops=1.97e12, compile_seconds=3.0, collectives={"all-gather": 2e9})
    tokens_per_chip = 8 * 192 / 4
    facts = {"model": "t5-tiny", "params": 1.97e12 / tokens_per_chip / 6, "dtype": "bfloat16",
             "mesh": {"data": 4, "fsdp": 1, "tensor": 1}, "row_tokens": 192}
    row = record(plan, facts, v5e_2x2)
    assert row["step_seconds_at_50_percent"] == pytest.approx(0.02) and row["collective_seconds"] == 0.01
    lines = describe(row, v5e_2x2.chip).splitlines()
    assert lines[0].startswith("train step (batch 8, per_device 2, remat False), per chip: arguments 1.00 GiB")
    assert "total 2.00 GiB of 15.75 GiB HBM: fits (13.75 GiB free); compiler ran 3 s" in lines[0]
    assert "= 1.00 x 6N); step time 10.0 ms at 100% of peak, 20.0 ms at 50%; 76,800 tokens/s at 50%" in lines[1]
    assert lines[2].startswith("  collectives: 1.863 GiB into each chip, 10.0 ms at the full 200 GB/s")


@pytest.mark.parametrize("fixed_gib, per_row_gib, curve, expected", [
    (1.0, 0.9, 0.0, 16),  # 1 + 0.9 * 16 = 15.4 GiB fits in 15.75, 17 rows do not
    (2.0, 0.5, 0.004, 23),  # memory a little convex in the batch, as XLA's buffers are
    (16.0, 0.1, 0.0, 0),  # the state alone does not fit
    (0.1, 0.01, 0.0, 64),  # everything up to --max_batch fits
])
def test_find_batch_ends_between_the_largest_fit_and_the_smallest_miss(fixed_gib, per_row_gib, curve, expected):
    """The search itself, on memory curves of known shape: exact, and a handful of compiles, not a scan."""
    hbm = int(15.75 * 2**30)
    planned = []

    def planner(config) -> Plan:
        rows = config.train.per_device_batch_size
        planned.append(rows)
        total = int((fixed_gib + per_row_gib * rows + curve * rows * rows) * 2**30)
        return Plan("train", {"per_device": rows}, total <= hbm, 0, total, 0, 0, hbm, 1.0, 0.0)

    best, plans = find_batch(planner, default_config.get_config(), hbm, remat=False, max_batch=64,
                             report=lambda plan: None)
    assert best == expected, planned
    assert [p.settings["per_device"] for p in plans] == sorted(set(planned))
    assert len(planned) <= 6, planned


@pytest.mark.parametrize("flags, message", [
    (["--topology=v9-8"], "unknown topology 'v9-8'"),
    (["--topology=v5e:2x2", "--config.mesh.shape=(3,1,1)"], "needs 3 devices, there are 4"),
    (["--topology=v5e:2x2", "--config.train.batch_size=6"], "not divisible by the 4 data-parallel devices"),
])
def test_bad_input_is_one_line_error(flags, message):
    result = python_module("eotd_jax.aot", *TINY, *flags)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last, result.stderr[-2000:]


def test_the_train_step_compiles_for_h100s_without_a_gpu():
    """XLA:GPU compiles from a target config (an H100's) when the CUDA plugin is installed; no GPU, no CUDA."""
    if importlib.util.find_spec("jax_cuda12_plugin") is None:
        pytest.skip("the CUDA plugin is not installed (pip install -e '.[cuda12]' or jax-cuda12-plugin)")
    result = python_module("eotd_jax.aot", *TINY, "--topology=h100-2", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    train_row, decode_row = (json.loads(line) for line in result.stdout.strip().splitlines())
    assert train_row["fits"] and decode_row["fits"] and train_row["argument_bytes"] > 0
    assert train_row["hbm_bytes"] == int(0.75 * 84929347584) and train_row["settings"]["batch"] == 16
    assert train_row["collectives"]["all-reduce"] > 0  # the gradients, summed over NVLink


def test_missing_libtpu_is_named(monkeypatch):
    real = slices.importlib.util.find_spec
    monkeypatch.setattr(slices.importlib.util, "find_spec", lambda name: None if name == "libtpu" else real(name))
    with pytest.raises(slices.SliceError, match=r"libtpu is not installed.*pip install -e '\.\[tpu\]'"):
        slices.load("v5e-16")


def test_the_hybrid_mesh_puts_the_outer_axis_across_slices_and_only_its_collectives_cross():
    """Two compile-only v5e:2x2 slices (libtpu numbers their devices' slice_index): the default mesh.dcn_shape puts
    `data` across the slices and FSDP within each, so the step's weight gathers stay inside a slice and only the
    gradients' reduction crosses; FSDP across the slices gathers weights over the slow network too."""
    two = slices.load("2xv5e:2x2")
    assert two.granules == 2 and two.chips == 8 and sorted({d.slice_index for d in two.devices}) == [0, 1]
    model = tiny_model()
    crossing = {}
    for name, dcn_shape in (("data", (-1, 1, 1)), ("fsdp", (1, -1, 1))):
        mesh = make_mesh((1, -1, 1), two.devices, dcn_shape)
        hlo = tiny_train_step(model, mesh, 16, 64, 32).lower().compile().as_text()
        across = [d.slice_index for d in mesh.devices.flat]
        crossing[name] = collective_bytes(hlo, 8, across), collective_bytes(hlo, 8)
        if name == "data":
            assert dict(mesh.shape) == {"data": 2, "fsdp": 4, "tensor": 1}
            assert [{d.slice_index for d in row.flat} for row in mesh.devices] == [{0}, {1}]
        else:
            assert dict(mesh.shape) == {"data": 1, "fsdp": 8, "tensor": 1}
            assert [d.slice_index for d in mesh.devices.flat] == [0] * 4 + [1] * 4  # the outer factor of fsdp
    (data_dcn, data_all), (fsdp_dcn, _) = crossing["data"], crossing["fsdp"]
    assert data_all["all-gather"] > 0 and "all-gather" not in data_dcn, crossing
    assert 0 < sum(data_dcn.values()) < sum(data_all.values())
    assert fsdp_dcn.get("all-gather", 0) > 0 and sum(fsdp_dcn.values()) > sum(data_dcn.values()), crossing


def test_aot_plans_both_layouts_across_slices_side_by_side(v5e_2x2):
    result = python_module("eotd_jax.aot", *TINY, "--topology=2xv5e:2x2", "--config.mesh.shape=(1,-1,1)",
                           "--config.train.per_device_batch_size=2", "--decode=false")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    train = [line for line in lines if line.startswith("train step")]
    assert len(train) == 2 and "dcn_shape [-1, 1, 1]" in train[0] and "dcn_shape [1, -1, 1]" in train[1], lines
    between = [line for line in lines if "of it between slices or nodes" in line]
    assert len(between) == 2 and "0.00 GiB/s" not in between[0]
    summary = lines[-1]
    assert summary.startswith("across the 2 slices or nodes: data parallel across ") and \
        summary.endswith("the lower: data parallel across"), summary
