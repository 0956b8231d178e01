"""One training step, ours (jit, Flax NNX T5 + optax AdamW) vs HF PyTorch T5 + torch AdamW, same shape.

    python bench/train_step.py [--model=t5-small] [--vocab_size=N] [--batch=8] [--source_length=128]
                               [--target_length=128] [--noscan_layers]

Both sides: forward, cross-entropy over the targets, backward, AdamW update,
on the same random batch; best of `--repeats` timed steps after warm-up.
Ours is the trainer's own step (`trainer.train_step`: its loss, token accuracy
and gradient norm), one example a row.
It also prints the step's matmul FLOPs (`eotd_jax.planning.flops.matmul_flops`) and the machine's dense
fp32 matmul rate in both frameworks, which bound what any implementation of
this step can reach here; and the step's own matrix multiplies (every
`dot_general` of its jaxpr), each timed alone in both frameworks and summed:
what is left of a step beyond that sum is its other work (softmax, norms,
AdamW, layout copies), which no faster matmul removes.

Run it as the launch scripts run the trainer on a CPU, `source launch/cpu_env.sh` first (or
`GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python bench/train_step.py ...`): both sides then share the allocator
setting, which the machine line prints.
"""

from __future__ import annotations

import functools
import os
import string
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
import transformers
from absl import app, flags
from flax import nnx

from eotd_jax.model.config import get_config
from eotd_jax.model.hf_io import config_to_hf
from eotd_jax.model.t5 import T5
from eotd_jax.planning.flops import dot_generals, matmul_flops
from eotd_jax.trainer import train_step

_MODEL = flags.DEFINE_string("model", "t5-small", "named config both sides use")
_VOCAB = flags.DEFINE_integer("vocab_size", 0, "ids; 0: the named config's (the quickstart's BPE has 2048)")
_BATCH = flags.DEFINE_integer("batch", 8, "sequences per step")
_SOURCE = flags.DEFINE_integer("source_length", 128, "input tokens")
_TARGET = flags.DEFINE_integer("target_length", 128, "target tokens")
_REPEATS = flags.DEFINE_integer("repeats", 5, "timed steps per side")
_SCAN = flags.DEFINE_bool("scan_layers", True, "ours: scan the layers (T5Config.scan_layers) or unroll them")


def _best(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv):
    del argv
    vocab = {"vocab_size": _VOCAB.value} if _VOCAB.value else {}
    config = get_config(_MODEL.value, dropout_rate=0.0, scan_layers=_SCAN.value, **vocab)
    rng = np.random.default_rng(0)
    inputs = rng.integers(2, config.vocab_size, (_BATCH.value, _SOURCE.value))
    targets = rng.integers(2, config.vocab_size, (_BATCH.value, _TARGET.value))

    graphdef, state = nnx.split(T5(config, nnx.Rngs(0)))
    params = nnx.to_pure_dict(state)
    optimizer = optax.adamw(1e-4)
    opt_state = optimizer.init(params)
    batch = {"inputs": jnp.asarray(inputs, jnp.int32), "targets": jnp.asarray(targets, jnp.int32),
             "input_segments": jnp.ones(inputs.shape, jnp.int32), "target_segments": jnp.ones(targets.shape, jnp.int32)}
    step = jax.jit(functools.partial(train_step, graphdef=graphdef, optimizer=optimizer,
                                     start_token_id=config.decoder_start_token_id, seed=0), donate_argnums=0)
    state_box = {"state": {"params": params, "opt_state": opt_state, "step": jnp.int32(0)}}

    def ours():
        state_box["state"], metrics = step(state_box["state"], batch)
        metrics["loss"].block_until_ready()

    jaxpr = step.trace(state_box["state"], batch).jaxpr.jaxpr
    flops = matmul_flops(jaxpr)
    ours()
    ours_seconds = _best(ours, _REPEATS.value)

    hf_config = transformers.T5Config(**{k: v for k, v in config_to_hf(config).items() if k != "architectures"})
    torch.manual_seed(0)
    reference = transformers.T5ForConditionalGeneration(hf_config).train()
    torch_optimizer = torch.optim.AdamW(reference.parameters(), lr=1e-4)
    torch_inputs, torch_targets = torch.tensor(inputs), torch.tensor(targets)

    def theirs():
        torch_optimizer.zero_grad()
        loss = reference(input_ids=torch_inputs, labels=torch_targets).loss
        loss.backward()
        torch_optimizer.step()

    theirs()
    theirs_seconds = _best(theirs, _REPEATS.value)
    print(f"machine: {os.cpu_count()} CPUs, jax {jax.__version__} ({jax.default_backend()}), "
          f"torch {torch.__version__}, GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')!r}")
    print(f"{_MODEL.value}-shaped, batch {_BATCH.value}, source {_SOURCE.value}, target {_TARGET.value}, fp32, "
          f"layers {'scanned' if _SCAN.value else 'unrolled'}")
    print(f"ours {ours_seconds * 1e3:.0f} ms/step, HF PyTorch {theirs_seconds * 1e3:.0f} ms/step, "
          f"ratio {theirs_seconds / ours_seconds:.2f}x")
    jax_peak, torch_peak = _matmul_rate()
    peak = max(jax_peak, torch_peak)
    print(f"step: {flops / 1e9:.0f} GFLOP; ours {flops / ours_seconds / 1e9:.0f} GFLOP/s, "
          f"HF {flops / theirs_seconds / 1e9:.0f} GFLOP/s; dense fp32 matmul here: jax {jax_peak / 1e9:.0f}, "
          f"torch {torch_peak / 1e9:.0f} GFLOP/s; a step at the best matmul rate would be "
          f"{flops / peak * 1e3:.0f} ms ({theirs_seconds * peak / flops:.2f}x HF)")
    dots = dot_generals(jaxpr)
    timed = {dot: _dot_seconds(*dot) for dot in dots}
    jax_dots, torch_dots = (sum(count * timed[dot][side] for dot, count in dots.items()) for side in (0, 1))
    print(f"the step's {sum(dots.values())} matrix multiplies ({len(dots)} shapes), each timed alone: "
          f"jax {jax_dots * 1e3:.0f} ms, torch {torch_dots * 1e3:.0f} ms; the rest of the step: "
          f"ours {(ours_seconds - jax_dots) * 1e3:.0f} ms, HF {(theirs_seconds - torch_dots) * 1e3:.0f} ms")


def _matmul_rate(size: int = 2048, repeats: int = 5) -> tuple[float, float]:
    """FLOP/s of a square fp32 matmul: jax (XLA) and torch (oneDNN / MKL)."""
    a = jnp.ones((size, size), jnp.float32)
    matmul = jax.jit(lambda x: x @ x)
    matmul(a).block_until_ready()
    jax_seconds = _best(lambda: matmul(a).block_until_ready(), repeats)
    b = torch.ones((size, size))
    torch_seconds = _best(lambda: b @ b, repeats)
    return 2 * size**3 / jax_seconds, 2 * size**3 / torch_seconds


def _dot_seconds(lhs: tuple, rhs: tuple, dimension_numbers, repeats: int = 5) -> tuple[float, float]:
    """Best time of one fp32 dot_general alone: jax (XLA), and torch.einsum with the same dimensions."""
    (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = dimension_numbers
    letters = iter(string.ascii_letters)
    lhs_names, rhs_names = [next(letters) for _ in lhs], [next(letters) for _ in rhs]
    for left, right in [*zip(lhs_contract, rhs_contract, strict=True), *zip(lhs_batch, rhs_batch, strict=True)]:
        rhs_names[right] = lhs_names[left]
    free = ([lhs_names[d] for d in range(len(lhs)) if d not in (*lhs_contract, *lhs_batch)]
            + [rhs_names[d] for d in range(len(rhs)) if d not in (*rhs_contract, *rhs_batch)])
    equation = f"{''.join(lhs_names)},{''.join(rhs_names)}->{''.join([lhs_names[d] for d in lhs_batch] + free)}"
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(lhs, np.float32), rng.standard_normal(rhs, np.float32)
    dot = jax.jit(functools.partial(jax.lax.dot_general, dimension_numbers=dimension_numbers))
    x, y = jnp.asarray(a), jnp.asarray(b)
    dot(x, y).block_until_ready()
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    np.testing.assert_allclose(torch.einsum(equation, ta, tb).numpy(), dot(x, y), rtol=1e-3, atol=1e-3 * lhs[0],
                               err_msg=equation)  # the same product on both sides
    return (_best(lambda: dot(x, y).block_until_ready(), repeats),
            _best(lambda: torch.einsum(equation, ta, tb), repeats))


if __name__ == "__main__":
    app.run(main)
