"""Every training field, its default and its meaning, in one table; other configs override it.

    python -m eotd_jax.train --config=default --workdir=DIR --config.data.dir=SHARDS

`quickstart` and `paper` start from `get_config()` and
change only what they need. `describe()` is the field reference that
`python -m eotd_jax.train --help` prints.
"""

from __future__ import annotations

from ml_collections import ConfigDict

from eotd_jax.input.student_input import SELECTORS, TEMPLATE

# The paper's students by the thoughts they learn (`data.thoughts`): `quickstart:<method>`, `paper:<model>,<method>`.
METHODS = {"cotd": "cot", "potd": "pot", "eotd": "eot", "etd": "cot,pot,eot"}

# (dotted name, default, meaning). Add a field here, once; read it in the code that needs it.
FIELDS: tuple[tuple[str, object, str], ...] = (
    ("model", "t5-quickstart", "a named model shape (eotd_jax/model/config.py), used when init_from_hf is empty"),
    ("model_overrides", {"dropout_rate": 0.0, "remat": False, "scan_layers": True},
     "T5Config fields replaced on the named model or the HF one (dropout_rate, dtype: float32 | bfloat16, remat: "
     "recompute each layer's activations in the backward pass, less memory for about 1/3 more FLOPs, scan_layers: "
     "compile one layer and loop over them, not every layer unrolled, ...)"),
    ("init_from_hf", "", "a local Hugging Face model directory to start from (weights and tokenizer); empty or "
                         "'none': random weights"),
    ("require_init_from_hf", False, "refuse an empty init_from_hf (a config that fine-tunes a pretrained student; "
                                    "'none' still trains from random weights on purpose)"),
    ("require_accelerator", False, "refuse to start when JAX finds only the CPU (an accelerator-scale config)"),
    ("tokenizer", "byte", "'byte', or an HF tokenizer directory; empty: the tokenizer of init_from_hf (both read "
                          "once: the run keeps a copy in <workdir>/tokenizer)"),
    ("input.template", TEMPLATE, "the student's input text: {question} and {selector} are filled in "
                                 "(eotd_jax/input/student_input.py)"),
    ("input.selectors", SELECTORS, "per thought (cot, pot, eot), the text telling the student which thought to "
                                   "write; the defaults are the paper's released ETD student's. Saved with every "
                                   "checkpoint; the eval binary reads them back"),
    ("progress", True, "show a progress bar when the output is a terminal"),
    ("log_every_steps", 25, "every N steps process 0 logs one line (step, loss, learning rate, step time, real "
                            "tokens/s, MFU, held-out accuracy when there is one) and writes TensorBoard scalars"),
    ("profile_steps", "", "A,B: a jax.profiler trace of training steps A to B (counted from 1) in "
                          "{workdir}/profile, for TensorBoard's profile tab or XProf; empty: off"),
    ("compilation_cache_dir", "{workdir}/compilation_cache", "JAX's persistent compilation cache, so a restart "
                                                             "skips compiling; {workdir} is --workdir; empty: off"),

    ("data.dir", "workdir/quickstart/data", "one data_gen output directory (used when data.sources is empty)"),
    ("data.thoughts", "eot", "thoughts to train on from data.dir: cot, pot, eot, or a comma list (ETD: "
                             "cot,pot,eot)"),
    ("data.sources", [], "a mixture instead of data.dir: [{'dir': ..., 'weight': 1.0, 'thoughts': "
                         "'cot,pot,eot'}, ...]"),
    ("data.source_length", 512, "tokens per packed encoder row (several questions share a row)"),
    ("data.target_length", 128, "tokens per packed decoder row"),

    ("mesh.shape", (-1, 1, 1), "device mesh within one TPU slice or GPU node (data, fsdp, tensor); -1 takes all "
                               "remaining devices"),
    ("mesh.dcn_shape", (-1, 1, 1), "the slices (multislice TPU) or nodes (SLURM) over the same axes, the slower "
                                   "network's factor of each; -1 takes all remaining. Default: data parallel across "
                                   "them (gradients cross once a step), mesh.shape within each"),

    ("train.batch_size", 16, "packed rows per training step, over all devices and processes (the global batch)"),
    ("train.per_device_batch_size", 0, "when > 0, the global batch is this many rows per data-parallel device "
                                       "(mesh data x fsdp), so a config runs unchanged on 8, 16 or 32 chips"),
    ("train.steps", 300, "training steps (batches); one optimizer update per train.grad_accum_steps of them"),
    ("train.learning_rate", 3e-3, "peak learning rate (AdamW)"),
    ("train.warmup_steps", 50, "linear warm-up, in training steps (the schedule counts optimizer updates)"),
    ("train.schedule", "cosine", "decay after warm-up: cosine | linear | constant"),
    ("train.final_lr_fraction", 0.05, "the learning rate of the last optimizer update, as a fraction of the peak"),
    ("train.weight_decay", 0.01, "AdamW decoupled weight decay"),
    ("train.adam_b1", 0.9, "Adam beta1"),
    ("train.adam_b2", 0.98, "Adam beta2"),
    ("train.max_grad_norm", 1.0, "global gradient-norm clip; 0: off"),
    ("train.grad_accum_steps", 1, "training steps (micro-batches) accumulated into one optimizer update; "
                                  "divides train.steps"),
    ("train.seed", 0, "seed for init, data order and dropout"),
    ("train.peak_flops_per_device", 0.0, "dense bf16 FLOP/s of one device for MFU; 0: the chip table of "
                                         "eotd_jax/planning/slices.py by JAX's device kind (none for the CPU)"),

    ("eval.every_steps", 100, "held-out ETD eval every N steps (the eval binary's code); 0: off. A multiple "
                              "of checkpoint.every_steps when checkpoint.keep_best > 0"),
    ("eval.datasets", "synthetic", "comma list of name[/split] (default split: test): synthetic, "
                                   "synthetic/validation, synthetic/test_unseen, gsm8k, asdiv, svamp, multiarith"),
    ("eval.data_dir", "../shared/datasets", "where the benchmarks are: a directory (local or gs://) as "
                                            "`python -m eotd_jax.stage_benchmarks` leaves it"),
    ("eval.limit", 50, "the first N problems of each eval dataset"),
    ("eval.thoughts", "", "thoughts to decode; empty: the thoughts the student is trained on"),
    ("eval.max_new_tokens", 96, "decoding length limit"),
    ("eval.batch_size", 50, "questions decoded together"),
    ("eval.workers", 0, "sandbox processes that run programs and solve equations; 0: one per usable CPU"),

    ("checkpoint.every_steps", 100, "save every N steps (and at the end, and on SIGTERM)"),
    ("checkpoint.keep", 2, "most recent checkpoints kept"),
    ("checkpoint.keep_best", 1, "checkpoints kept by held-out ETD accuracy, besides the recent ones"),
    ("checkpoint.asynchronous", True, "save in the background while training goes on"),
)


def get_config() -> ConfigDict:
    config = ConfigDict()
    for name, default, _ in FIELDS:
        *parents, leaf = name.split(".")
        node = config
        for parent in parents:
            if parent not in node:
                node[parent] = ConfigDict()
            node = node[parent]
        node[leaf] = ConfigDict(default) if isinstance(default, dict) else default
    return config


def describe() -> str:
    """The field reference: one line per field, `name (default): meaning`."""
    return "\n".join(f"  {name} ({default!r}): {meaning}" for name, default, meaning in FIELDS)
