"""Quickstart: a tiny T5 with a BPE learnt on its training texts, on the synthetic benchmark, minutes on 2 CPU cores.

    python -m data_gen.build --dataset=synthetic --synthetic_count=8000 --out=workdir/quickstart/data
    python -m eotd_jax.train_tokenizer --data=workdir/quickstart/data --out=workdir/quickstart/tokenizer
    python -m eotd_jax.train --config=quickstart --workdir=workdir/quickstart/train

`quickstart:<method>` trains one of the paper's students: cotd, potd,
eotd or etd (the default: CoT, PoT and EoT together), as `launch/mini_grid.sh`
does. Only the overrides of `default` are here; every field is
explained there. Checkpoints are ranked on the validation split, never on test.
"""

from ml_collections import ConfigDict

from eotd_jax.configs import default


def get_config(method: str = "etd") -> ConfigDict:
    if method not in default.METHODS:
        raise ValueError(f"quickstart:<method> with method in {tuple(default.METHODS)}, not {method!r}")
    config = default.get_config()
    config.tokenizer = "workdir/quickstart/tokenizer"  # python -m eotd_jax.train_tokenizer writes it
    # The BPE's 2,048 ids; 3 unrolled layers compile in seconds and step ~10% faster on a CPU than scanned ones.
    config.model_overrides = ConfigDict({"dropout_rate": 0.0, "vocab_size": 2048, "scan_layers": False})
    config.data.thoughts = default.METHODS[method]
    # BPE sources average 51 tokens (at most 69), targets 29 (CoT up to 67). Rows of 112 / 72 hold 1.96 examples
    # with 15% padding, where 128 / 80 held 2.07 with 20%: 12% fewer slots a step, as accurate (docs/benchmarks.md,
    # "The quickstart: row lengths").
    config.data.source_length = 112
    config.data.target_length = 72
    # The student learns to copy numbers in optimizer updates more than in rows seen: on the 8,000 problems of
    # launch/quickstart.sh, 1,600 steps of 16 rows reach 99% validation ETD in 70% of the time of 1,200 of 32;
    # 1,200 of 16 reach 82%, 2,000 of 8 84% (docs/benchmarks.md, "The quickstart: batch against steps").
    config.train.batch_size = 16
    config.train.steps = 1600
    config.train.learning_rate = 3e-3
    # Below it the student memorises its problems and reads new ones badly: on 4,000 problems validation ETD at
    # step 2,000 was 62% at weight decay 0.01, 80% at 0.1, 98% at 0.3 (docs/benchmarks.md, the weight-decay table).
    config.train.weight_decay = 0.3
    config.train.warmup_steps = 60
    config.eval.datasets = "synthetic/validation"
    config.eval.limit = 100
    config.eval.every_steps = 400
    config.eval.max_new_tokens = 80
    config.checkpoint.every_steps = 400
    return config
