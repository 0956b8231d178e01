"""The paper-reproduction grid: {codet5-small, -base, -large, flan-t5-*} x {cotd, potd, eotd, etd}.

    python -m eotd_jax.train --config=paper:codet5-large,etd --workdir=... \\
        --config.init_from_hf=/models/codet5p-770m-py --config.data.dir=/data/gsm8k_gpt35

`init_from_hf` must point at the pretrained student (a local Hugging Face
directory; its tokenizer is used too): Salesforce/codet5-small, codet5-base,
codet5p-770m-py, or google/flan-t5-*; `--config.init_from_hf=none` trains from
random weights on purpose. The config refuses to start on a CPU-only JAX. The data dir is a data_gen output built
from GSM8K train with a teacher. The optimisation values below are this
project's starting point for T5-family fine-tuning (AdamW, linear decay),
not numbers taken from the EoTD paper; record what you change in the workdir's
config.json (the trainer writes it).
"""

from ml_collections import ConfigDict

from eotd_jax.configs import default

MODELS = ("codet5-small", "codet5-base", "codet5-large", "flan-t5-small", "flan-t5-base", "flan-t5-large")


def get_config(arguments: str = "codet5-large,etd") -> ConfigDict:
    model, _, method = arguments.partition(",")
    if model not in MODELS or method not in default.METHODS:
        raise ValueError(f"paper:<model>,<method> with model in {MODELS} and method in {tuple(default.METHODS)}")
    config = default.get_config()
    config.model = model
    config.model_overrides = ConfigDict({"dropout_rate": 0.1, "dtype": "bfloat16", "remat": False, "scan_layers": True})
    config.tokenizer = ""  # the tokenizer of init_from_hf
    config.require_init_from_hf = True  # a CodeT5-shaped model from random weights on bytes is not the paper's run
    config.require_accelerator = True
    config.data.dir = "data/gsm8k_teacher"
    config.data.thoughts = default.METHODS[method]
    # Packed rows of 512 / 320 tokens hold about 7 GSM8K examples with 9.2% padding (bench/packing_padding.py
    # with a 32k byte-level BPE, docs/benchmarks.md); 256 / 256 rows would be 22.6% padding.
    config.data.source_length = 512
    config.data.target_length = 320
    # FSDP over a slice's or node's devices; across slices or nodes (SLURM's 2 x 8 H100) data parallelism, the
    # default mesh.dcn_shape: the weights stay on NVLink / ICI and only the gradients cross the slower network once a
    # step (python -m eotd_jax.aot --topology=h100-2x8 plans both layouts). Set tensor > 1 for large models on many
    # chips.
    config.mesh.shape = (1, -1, 1)
    # One global batch on every slice, so a run's optimisation does not depend on the slice it ran on: 64 packed
    # rows (about 450 examples) a step, 16 rows a chip on 4 chips (v4-8, v5p-8), 8 on v5e-8, 4 on v5e-16, 2 on 32
    # chips. Planned with `python -m eotd_jax.aot` (docs/planning.md): without remat a v5e chip holds
    # 12 rows of codet5-large, a v4 chip 19, so every planned slice fits the largest model without remat, whose
    # 21 to 27% more matmul FLOPs a token would buy only batch. Where a chip cannot hold its share, halve
    # train.batch_size and double train.grad_accum_steps, steps and warmup_steps: the same optimizer updates.
    config.train.batch_size = 64
    config.train.per_device_batch_size = 0
    # About 10 epochs of ~88k ETD rationales (4 samples x 3 thoughts x 7.5k questions, ~7 a packed row).
    config.train.steps = 2_000
    config.train.learning_rate = 5e-4 if "small" in model else 3e-4
    config.train.warmup_steps = 200
    config.train.schedule = "linear"
    config.train.final_lr_fraction = 0.0
    config.train.adam_b2 = 0.999
    # Checkpoint selection needs a held-out set: 300 SVAMP problems by default (the hub copy's test split). SVAMP is
    # also a reported benchmark, so its numbers for the selected checkpoint are optimistic; point eval at a split you
    # do not report.
    config.eval.every_steps = 500
    config.eval.datasets = "svamp"
    config.eval.data_dir = ""  # required: where `python -m eotd_jax.stage_benchmarks` put them (workers are offline)
    config.eval.limit = 300
    config.eval.max_new_tokens = 256
    config.eval.batch_size = 64
    config.checkpoint.every_steps = 500
    config.checkpoint.keep = 3
    config.log_every_steps = 50
    return config
