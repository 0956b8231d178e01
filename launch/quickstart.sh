#!/usr/bin/env bash
# The main job on its embedded default, on a fresh machine: set up a virtualenv,
# install the project, and verify the embedded sample of CoT / PoT / EoT
# rationales (correct, wrong and hostile ones) in the sandbox, then build
# verified training shards from the synthetic source with the gold teacher,
# printing kept / rejected-by-reason tables. No network beyond PyPI, no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e .
.venv/bin/python -m eotd_jax.thoughts.verify
.venv/bin/python -m data_gen.build --teacher=gold --dataset=synthetic --synthetic_count=2000 \
    --out=workdir/quickstart/data "$@"
