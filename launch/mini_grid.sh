#!/usr/bin/env bash
# The paper's comparison in miniature (at most 60 minutes on 2 CPU cores): CoTD, PoTD, EoTD and ETD students
# trained from scratch with equal budgets (quickstart:<method>, the same steps and batch) on the
# quickstart's synthetic data and tokenizer, each evaluated on 200 in-distribution test problems and 200 of
# templates never trained on (ETD with its fallback, and majority vote); then a Markdown table and a plot:
# workdir/mini_grid/results.md and results.png. Run after launch/quickstart.sh (it reuses its .venv, data and
# tokenizer, and builds them when missing). Environment: STEPS (default: the quickstart config's), LIMIT (200
# test questions per split), METHODS ("cotd potd eotd etd"), GRID (workdir/mini_grid), DATA, TOKENIZER, PYTHON;
# extra arguments go to every trainer. Re-running resumes: finished trainings and evals are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
STEPS=${STEPS:-}
LIMIT=${LIMIT:-200}
METHODS=${METHODS:-cotd potd eotd etd}
GRID=${GRID:-workdir/mini_grid}
DATA=${DATA:-workdir/quickstart/data}
TOKENIZER=${TOKENIZER:-workdir/quickstart/tokenizer}
if [ ! -f "$DATA/manifest.json" ]; then
  "$PYTHON" -m data_gen.build --teacher=gold --dataset=synthetic --synthetic_count=4000 --thoughts=cot,pot,eot \
      --out="$DATA" --progress=false
fi
if [ ! -f "$TOKENIZER/tokenizer.json" ]; then
  "$PYTHON" -m eotd_jax.train_tokenizer --data="$DATA" --out="$TOKENIZER"
fi
declare -A STRATEGIES=([cotd]=cot [potd]=pot [eotd]=eot [etd]="cot,pot,eot,etd,vote")
for method in $METHODS; do
  echo "== $method: training ${STEPS:-the quickstart config} steps"
  "$PYTHON" -m eotd_jax.train --config="quickstart:$method" --workdir="$GRID/$method" \
      --config.data.dir="$DATA" --config.tokenizer="$TOKENIZER" ${STEPS:+--config.train.steps="$STEPS"} \
      --config.progress=false "$@"
  echo "== $method: evaluating"
  "$PYTHON" -m eotd_jax.eval --workdir="$GRID/$method" --step=best --eval_dir="$GRID/$method/eval" \
      --datasets=synthetic/test,synthetic/test_unseen --limit="$LIMIT" --strategies="${STRATEGIES[$method]}" \
      --max_new_tokens=80 --batch_size=50 > "$GRID/$method/eval.log"
done
"$PYTHON" -m eotd_jax.grid_report --grid_dir="$GRID"
