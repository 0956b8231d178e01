"""The accelerator check: train-step MFU, greedy decode tokens/s and the quickstart's steps/s, in one JSON.

    bash bench/device_check.sh                         # a fresh GPU machine: installs .[cuda12], then this
    python bench/device_check.py --out=device_check.json
    python bench/device_check.py --smoke --out=smoke.json   # t5-tiny, small shapes: the CPU run CI makes

Train: codet5-base and codet5-large as the paper config trains them (bfloat16,
packed 512 / 320 rows, dropout 0.1, FSDP mesh) from random weights, at the
largest per-device batch whose compiled step fits the device
(`planning.plan.find_batch`, compiling on the device itself), timed over
`--steps`; MFU is the step's matmul FLOPs (`step_log.step_flops`, the planner's
count) over the step time and the chip table's peak. codet5-large is timed again
with cuDNN's fused attention (`--config.model_overrides.attention=cudnn`); an
error there is recorded, not fatal. Decode: codet5-large greedy, 64 questions of
512 tokens, 256 new tokens each (EOS never ends a row). Quickstart: its model and
shapes on random rows, training steps/s without the host input pipeline.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from flax import nnx

from eotd_jax import checkpoints
from eotd_jax.configs import paper, quickstart
from eotd_jax.model import build
from eotd_jax.model.decoding import greedy
from eotd_jax.model.sharding import param_shardings
from eotd_jax.model.t5 import T5
from eotd_jax.planning import slices
from eotd_jax.planning.plan import find_batch, plan_train, slice_mesh, with_settings
from eotd_jax.step_log import peak_flops_per_device, step_flops
from eotd_jax.trainer import global_batch_size, make_train_step

_OUT = flags.DEFINE_string("out", "device_check.json", "where the JSON goes")
_SMOKE = flags.DEFINE_bool("smoke", False, "t5-tiny and small shapes, for a CPU (CI)")
_STEPS = flags.DEFINE_integer("steps", 10, "timed train steps per model (after 2 untimed)")
_MAX_BATCH = flags.DEFINE_integer("max_batch", 64, "the largest per-device batch the search tries")
_PEAK = flags.DEFINE_float("peak_flops_per_device", 0.0, "dense bf16 FLOP/s of one device; 0: the chip table")


def _config(model: str, smoke: bool, attention: str = "xla"):
    """The paper config's training of `model` from random weights (t5-tiny on short rows for --smoke)."""
    config = paper.get_config(f"{'codet5-small' if smoke else model},etd")
    with config.unlocked():
        config.init_from_hf = "none"
        config.model = model
        config.model_overrides.attention = attention
        config.train.per_device_batch_size = 2
        if smoke:
            config.data.source_length, config.data.target_length = 64, 32
    return config


def _device_slice(smoke: bool) -> slices.Slice:
    """This machine's devices as a slice of the chip JAX reports (for --smoke, the CPU as a 2 GiB v5e stand-in)."""
    devices = tuple(jax.devices())
    chip = (dataclasses.replace(slices.CHIPS["v5e"], hbm_bytes=2 * slices.GIB) if smoke
            else slices.chip_of_kind(devices[0].device_kind))
    if chip is None:
        raise SystemExit(f"error: device kind {devices[0].device_kind!r} is not in eotd_jax/planning/slices.py")
    return slices.Slice(devices[0].device_kind, "local", chip, devices)


def _random_batch(config, rows: int, vocab: int, sharding) -> dict:
    """Packed-looking rows: random ids, 7 examples a row (segments 1..7), the last 5% padding."""
    rng = np.random.default_rng(0)
    batch = {}
    for ids, segments, length in (("inputs", "input_segments", config.data.source_length),
                                  ("targets", "target_segments", config.data.target_length)):
        numbers = np.minimum(np.arange(length) * 7 // length + 1, 7)[None].repeat(rows, 0)
        numbers[:, length - length // 20:] = 0
        batch[ids], batch[segments] = rng.integers(3, vocab, (rows, length)) * (numbers > 0), numbers
    return {name: jax.device_put(jnp.asarray(value, jnp.int32), sharding) for name, value in batch.items()}


def _time_train(config, device_slice: slices.Slice, steps: int, peak: float | None) -> dict:
    """Steps of the trainer's own train step on random weights and rows; FLOPs, step time, tokens/s, MFU."""
    mesh = slice_mesh(config, device_slice)
    model_config = build.resolve(config)
    graphdef, state = build.abstract_model(model_config)
    shardings = param_shardings(state, mesh)
    params_shape = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), nnx.to_pure_dict(state))
    step = make_train_step(config, model_config, graphdef, params_shape, shardings, mesh)
    params = build.initial_params(config, model_config, shardings)()
    train_state = {"params": params, "opt_state": jax.jit(step.optimizer.init,
                                                          out_shardings=step.state_shardings["opt_state"])(params),
                   "step": jax.device_put(jnp.int32(0), step.state_shardings["step"])}
    rows = global_batch_size(config, mesh)
    batch = _random_batch(config, rows, model_config.vocab_size, step.batch_sharding)
    flops = step_flops(step.fn.trace(checkpoints.abstract_like(step.state_shapes, step.state_shardings), batch))
    for _ in range(2):  # compile, settle
        train_state, metrics = step.fn(train_state, batch)
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
        train_state, metrics = step.fn(train_state, batch)
    jax.block_until_ready(metrics)
    seconds = (time.perf_counter() - start) / steps
    tokens = rows * (config.data.source_length + config.data.target_length)
    return {"rows": rows, "step_seconds": seconds, "steps_per_second": 1 / seconds,
            "tokens_per_second": tokens / seconds, "flops_per_step": flops,
            "mfu": None if peak is None else flops / seconds / (peak * len(device_slice.devices)),
            "loss": float(metrics["loss"])}


def _largest_batch(config, device_slice: slices.Slice, max_batch: int) -> int:
    """The largest per-device batch whose compiled step fits this device (several compiles)."""
    best, _ = find_batch(lambda c: plan_train(c, device_slice), config, device_slice.chip.hbm_bytes, False,
                         max_batch, report=lambda plan: None)
    return best


def _train(model: str, smoke: bool, device_slice: slices.Slice, peak: float | None, attentions: tuple) -> dict:
    config = _config(model, smoke)
    batch = _largest_batch(config, device_slice, 4 if smoke else _MAX_BATCH.value)
    if batch == 0:
        return {"error": "no batch fits"}
    result = {"per_device_batch": batch}
    for attention in attentions:
        timed = with_settings(_config(model, smoke, attention), per_device_batch=batch)
        try:
            result[attention] = _time_train(timed, device_slice, 2 if smoke else _STEPS.value, peak)
        except Exception as error:  # cuDNN refuses shapes and dtypes it does not support
            result[attention] = {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"}
    return result


def _decode(model: str, smoke: bool) -> dict:
    """Greedy decoding tokens/s of random weights; EOS never ends a row, so every row makes `new_tokens`."""
    batch, source, new_tokens = (4, 32, 8) if smoke else (64, 512, 256)
    model_config = build.resolve(_config(model, smoke)).replace(eos_token_id=-1, dropout_rate=0.0)
    student = T5(model_config, nnx.Rngs(0))
    ids = jnp.asarray(np.random.default_rng(0).integers(3, model_config.vocab_size, (batch, source)), jnp.int32)
    mask = jnp.ones((batch, source), bool)
    start = time.perf_counter()
    greedy(student, ids, mask, new_tokens).block_until_ready()
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    tokens = greedy(student, ids, mask, new_tokens).block_until_ready()
    seconds = time.perf_counter() - start
    assert tokens.shape == (batch, new_tokens)
    return {"model": model, "batch": batch, "source_length": source, "new_tokens": new_tokens,
            "tokens_per_second": batch * new_tokens / seconds, "first_call_seconds": compile_seconds}


def _quickstart(smoke: bool, device_slice: slices.Slice, peak: float | None) -> dict:
    """The quickstart's training step (its model, batch and row lengths) on random rows: steps/s."""
    config = quickstart.get_config()
    if smoke:
        config.train.batch_size = 4
    return _time_train(config, device_slice, 2 if smoke else 50, peak)


def main(argv):
    del argv
    began = time.perf_counter()
    smoke = _SMOKE.value
    jax.config.update("jax_compilation_cache_dir", os.path.join(os.path.expanduser("~"), ".cache", "eotd_check"))
    device_slice = _device_slice(smoke)
    kind = jax.devices()[0].device_kind
    peak = peak_flops_per_device(_PEAK.value, kind)
    models = ("t5-tiny",) if smoke else ("codet5-base", "codet5-large")
    report = {"device_kind": kind, "devices": jax.device_count(), "backend": jax.default_backend(),
              "jax": jax.__version__, "peak_flops_per_device": peak, "smoke": smoke, "train": {}}
    for model in models:
        attentions = ("xla", "cudnn") if model == "codet5-large" and jax.default_backend() == "gpu" else ("xla",)
        report["train"][model] = _train(model, smoke, device_slice, peak, attentions)
        print(json.dumps({model: report["train"][model]}), flush=True)
    report["decode"] = _decode(models[-1], smoke)
    report["quickstart"] = _quickstart(smoke, device_slice, peak)
    report["seconds"] = time.perf_counter() - began
    with open(_OUT.value, "w", encoding="utf-8") as file:
        json.dump(report, file, indent=2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    app.run(main)
