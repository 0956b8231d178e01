"""Full-eval throughput on a tiny model: questions/s, and the share of time in decoding vs verification.

    python bench/eval_throughput.py [--questions=128] [--max_new_tokens=96] [--model=t5-quickstart]

A random tiny student writes all three thoughts for held-out synthetic
questions (decode), then every rationale is executed / solved / extracted in
the sandbox pool and the strategies are applied (verify). Decoding is timed
after a warm-up (compile) pass on the same shapes.
"""

from __future__ import annotations

import os
import time

from absl import app, flags
from flax import nnx

from eotd_jax.benchmarks.synthetic import synthetic_problems
from eotd_jax.evaluation import DecodeSettings, generate, score
from eotd_jax.input.student_input import StudentInput
from eotd_jax.model.config import get_config
from eotd_jax.model.t5 import T5
from eotd_jax.strategies import STRATEGIES
from eotd_jax.thoughts.sandbox import SandboxPool
from eotd_jax.tokenizer import ByteTokenizer

_QUESTIONS = flags.DEFINE_integer("questions", 128, "held-out synthetic questions")
_MAX_NEW_TOKENS = flags.DEFINE_integer("max_new_tokens", 96, "rationale length limit")
_MODEL = flags.DEFINE_string("model", "t5-quickstart", "named (byte-vocabulary) config")


def main(argv):
    del argv
    problems = synthetic_problems(_QUESTIONS.value, seed=0, split="test")
    model = T5(get_config(_MODEL.value, dropout_rate=0.0), nnx.Rngs(0))
    tokenizer, settings = ByteTokenizer(), DecodeSettings(max_new_tokens=_MAX_NEW_TOKENS.value, batch_size=32)
    questions = [p.question for p in problems]
    for thought in ("cot", "pot", "eot"):
        generate(model, tokenizer, questions[:32], thought, settings, StudentInput())  # compile
    start = time.perf_counter()
    rationales = {t: generate(model, tokenizer, questions, t, settings, StudentInput()) for t in ("cot", "pot", "eot")}
    decode_seconds = time.perf_counter() - start
    with SandboxPool() as pool:
        start = time.perf_counter()
        score(problems, rationales, STRATEGIES, pool)
        verify_seconds = time.perf_counter() - start
    total = decode_seconds + verify_seconds
    print(f"machine: {os.cpu_count()} CPUs; model {_MODEL.value} (random weights), {len(problems)} questions x 3 "
          f"thoughts, up to {_MAX_NEW_TOKENS.value} new tokens")
    print(f"questions/s: {len(problems) / total:.1f}  (decode {decode_seconds:.1f} s = {decode_seconds / total:.0%}, "
          f"verify {verify_seconds:.1f} s = {verify_seconds / total:.0%})")


if __name__ == "__main__":
    app.run(main)
