#!/usr/bin/env bash
# The main job on its embedded default, on a fresh machine (no network beyond PyPI, no GPU):
#   1. verify the embedded sample of CoT / PoT / EoT rationales (correct, wrong, hostile) in the sandbox;
#   2. build verified CoT, PoT and EoT training shards from the synthetic benchmark with the gold teacher;
#   3. learn a BPE tokenizer on the training texts (workdir/quickstart/tokenizer, a Hugging Face tokenizer);
#   4. train the tiny quickstart student on all three thoughts (ETD, quickstart), ranking its
#      checkpoints on the validation split (TensorBoard: workdir/quickstart/train);
#   5. evaluate the best checkpoint on 200 held-out in-distribution problems and 200 of unseen templates.
# Extra arguments go to the trainer, e.g. --config.train.steps=100.
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/cpu_env.sh
bash launch/install_venv.sh
.venv/bin/python -m eotd_jax.verify
.venv/bin/python -m data_gen.build --teacher=gold --dataset=synthetic --synthetic_count=8000 --thoughts=cot,pot,eot \
    --out=workdir/quickstart/data --progress=false
.venv/bin/python -m eotd_jax.train_tokenizer --data=workdir/quickstart/data --out=workdir/quickstart/tokenizer
.venv/bin/python -m eotd_jax.train --config=quickstart --workdir=workdir/quickstart/train "$@"
.venv/bin/python -m eotd_jax.eval --workdir=workdir/quickstart/train --step=best \
    --datasets=synthetic/test,synthetic/test_unseen --limit=200 --strategies=cot,pot,eot,etd,vote
