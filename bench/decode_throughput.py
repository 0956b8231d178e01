"""Greedy decoding tokens/s: our jit-compiled decoder vs Hugging Face PyTorch `generate`, same random model.

    python bench/decode_throughput.py [--model=t5-small] [--batch_sizes=8,32] [--new_tokens=128]

Both sides get the same t5-small-shaped random weights (HF's initialisation,
imported through our HF import) and the same inputs, and must produce exactly
`--new_tokens` tokens per sequence (EOS disabled on both), so the work is equal.
Ours is timed after one warm-up (compile) call; the compile time is printed apart.

Generating a token reads every decoder weight and the LM head once, so on a
CPU whose memory bandwidth is the limit, no implementation at this precision
beats `batch x bandwidth / weight bytes` tokens/s. The script measures the
bandwidth (a jitted sum over a 1 GiB array) and prints that bound beside HF.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
import transformers
from absl import app, flags
from flax import nnx

from eotd_jax.model.config import get_config
from eotd_jax.model.decoding import greedy
from eotd_jax.model.hf_io import config_to_hf, import_hf

_MODEL = flags.DEFINE_string("model", "t5-small", "named config whose shape both sides use")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["8", "32"], "batch sizes to time")
_NEW_TOKENS = flags.DEFINE_integer("new_tokens", 128, "tokens generated per sequence")
_SOURCE_LENGTH = flags.DEFINE_integer("source_length", 128, "input tokens per sequence")
_REPEATS = flags.DEFINE_integer("repeats", 2, "timed runs per side (the best is reported)")


def _best_seconds(run, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv):
    del argv
    config = get_config(_MODEL.value, dropout_rate=0.0)
    hf_config = transformers.T5Config(**{k: v for k, v in config_to_hf(config).items() if k != "architectures"})
    torch.manual_seed(0)
    reference = transformers.T5ForConditionalGeneration(hf_config).eval()
    with tempfile.TemporaryDirectory() as directory:
        reference.save_pretrained(directory)
        _, ours = import_hf(directory, eos_token_id=-1)  # never stops early
    print(f"machine: {os.cpu_count()} CPUs, jax {jax.__version__} ({jax.default_backend()}), "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), python {sys.version.split()[0]}")
    print(f"model: {_MODEL.value}-shaped, random weights; source {_SOURCE_LENGTH.value} tokens, "
          f"{_NEW_TOKENS.value} new tokens, greedy")
    print("| batch | ours tokens/s | HF PyTorch tokens/s | ratio | our compile s |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    bounds = []
    for batch in map(int, _BATCH_SIZES.value):
        ids = rng.integers(2, config.vocab_size, (batch, _SOURCE_LENGTH.value))
        mask = np.ones_like(ids)
        jax_ids, jax_mask = jnp.asarray(ids), jnp.asarray(mask, bool)
        start = time.perf_counter()
        ours_tokens = greedy(ours, jax_ids, jax_mask, _NEW_TOKENS.value).block_until_ready()
        compile_seconds = time.perf_counter() - start
        ours_seconds = _best_seconds(
            lambda i=jax_ids, m=jax_mask: greedy(ours, i, m, _NEW_TOKENS.value).block_until_ready(), _REPEATS.value)

        def hf_run(ids=ids, mask=mask):
            with torch.no_grad():
                return reference.generate(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                                          max_new_tokens=_NEW_TOKENS.value, min_new_tokens=_NEW_TOKENS.value,
                                          do_sample=False, num_beams=1)

        hf_tokens = hf_run()
        hf_seconds = _best_seconds(hf_run, _REPEATS.value)
        assert ours_tokens.shape[1] == hf_tokens.shape[1] - 1 == _NEW_TOKENS.value
        tokens = batch * _NEW_TOKENS.value
        print(f"| {batch} | {tokens / ours_seconds:,.0f} | {tokens / hf_seconds:,.0f} | "
              f"{hf_seconds / ours_seconds:.1f}x | {compile_seconds:.1f} |")
        bounds.append((batch, tokens / hf_seconds))
    state = nnx.to_pure_dict(nnx.state(ours))
    per_token = sum(x.nbytes for name in ("decoder", "decoder_norm", "embedding")
                    for x in jax.tree.leaves(state[name]))  # the LM head is the (tied) embedding or lm_head
    per_token += sum(x.nbytes for x in jax.tree.leaves(state.get("lm_head", {})))
    bandwidth = _read_bandwidth()
    print(f"\nweights read per generated token: {per_token / 1e6:.0f} MB; memory read bandwidth here: "
          f"{bandwidth / 1e9:.1f} GB/s")
    for batch, hf_rate in bounds:
        bound = batch * bandwidth / per_token
        print(f"batch {batch}: bandwidth bound {bound:,.0f} tokens/s = {bound / hf_rate:.1f}x HF")


def _read_bandwidth(gigabytes: float = 1.0, repeats: int = 5) -> float:
    """Bytes/s of a jitted reduction over a large fp32 array (a stream of reads, like a decode step)."""
    x = jnp.ones((int(gigabytes * 2**30) // 4,), jnp.float32)
    total = jax.jit(jnp.sum)
    total(x).block_until_ready()
    return x.nbytes / _best_seconds(lambda: total(x).block_until_ready(), repeats)


if __name__ == "__main__":
    app.run(main)
