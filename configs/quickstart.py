"""Quickstart: a tiny byte-level T5 on synthetic problems, minutes on 2 CPU cores.

    python -m data_gen.build --dataset=synthetic --synthetic_count=2000 --out=workdir/quickstart/data
    python -m eotd_jax.train --config=configs/quickstart.py --workdir=workdir/quickstart/train
"""

from ml_collections import ConfigDict


def get_config() -> ConfigDict:
    config = ConfigDict()
    config.model = "t5-quickstart"
    config.model_overrides = ConfigDict({"dropout_rate": 0.0})
    config.init_from_hf = ""  # a local HF model directory to start from (weights + tokenizer)
    config.tokenizer = "byte"
    config.progress = True
    config.log_every_steps = 25

    config.data = ConfigDict()
    config.data.dir = "workdir/quickstart/data"  # one data_gen output directory ...
    config.data.thoughts = "eot"  # ... and the thoughts to train on (ETD: "cot,pot,eot")
    config.data.sources = []  # or a mixture: [{"dir": ..., "weight": 1.0, "thoughts": "cot,pot,eot"}, ...]
    config.data.source_length = 512
    config.data.target_length = 128

    config.mesh = ConfigDict({"shape": (-1, 1, 1)})  # (data, fsdp, tensor); -1: all remaining devices

    config.train = ConfigDict()
    config.train.batch_size = 16
    config.train.steps = 300  # ~10.5 min of the quickstart's 15 on 2 cores
    config.train.learning_rate = 3e-3
    config.train.warmup_steps = 50
    config.train.schedule = "cosine"
    config.train.final_lr_fraction = 0.05
    config.train.weight_decay = 0.01
    config.train.adam_b1 = 0.9
    config.train.adam_b2 = 0.98
    config.train.max_grad_norm = 1.0
    config.train.grad_accum_steps = 1
    config.train.seed = 0
    config.train.peak_flops_per_device = 0.0  # 0: look up the device kind (CPU: no MFU)

    config.eval = ConfigDict()  # periodic held-out eval during training (the eval binary's ETD code)
    config.eval.every_steps = 100  # 0: off; a multiple of checkpoint.every_steps when checkpoint.keep_best > 0
    config.eval.datasets = "synthetic"  # comma-separated: synthetic (held-out split), gsm8k, asdiv, svamp, multiarith
    config.eval.data_dir = "../shared/datasets"  # benchmark files (local or gs://), "hub" or "hub:<dir>"
    config.eval.limit = 50  # first N problems of each dataset
    config.eval.thoughts = ""  # "": the thoughts the student is trained on
    config.eval.max_new_tokens = 96
    config.eval.batch_size = 50
    config.eval.workers = 0  # sandbox processes; 0: CPU count

    config.checkpoint = ConfigDict()
    config.checkpoint.every_steps = 100
    config.checkpoint.keep = 2
    config.checkpoint.keep_best = 1  # by held-out ETD accuracy
    config.checkpoint.asynchronous = True
    return config
