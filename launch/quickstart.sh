#!/usr/bin/env bash
# The main job on its embedded default, on a fresh machine (no network beyond PyPI, no GPU):
#   1. verify the embedded sample of CoT / PoT / EoT rationales (correct, wrong, hostile) in the sandbox;
#   2. build verified EoT training shards from the synthetic source with the gold teacher;
#   3. train the tiny byte-level quickstart student on its EoT rationales (configs/quickstart.py);
#   4. evaluate it on held-out synthetic problems and print the accuracy table.
# Extra arguments go to the trainer, e.g. --config.train.steps=100.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e .
.venv/bin/python -m eotd_jax.verify
.venv/bin/python -m data_gen.build --teacher=gold --dataset=synthetic --synthetic_count=2000 --thoughts=eot \
    --out=workdir/quickstart/data
.venv/bin/python -m eotd_jax.train --config=configs/quickstart.py --workdir=workdir/quickstart/train "$@"
.venv/bin/python -m eotd_jax.eval --config=configs/quickstart.py --checkpoint_dir=workdir/quickstart/train \
    --datasets=synthetic --limit=100 --strategies=eot,etd,vote --max_new_tokens=96
