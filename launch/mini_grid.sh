#!/usr/bin/env bash
# The paper's comparison in miniature on the synthetic families: CoTD, PoTD, EoTD and ETD students trained from
# scratch with equal budgets (quickstart:<method>: the same steps, batch and data) on all the families
# at once, once per seed, each evaluated on every family's test split (new numbers) and held-out split (forward:
# templates never trained on; the others: compositions of trained steps never trained on), ETD with its fallback
# and the vote; then per family the mean and range over seeds as Markdown tables and a plot:
# $GRID/results.md and $GRID/results.png (python -m eotd_jax.grid_report).
#
# Environment: FAMILIES (default: all five), SEEDS ("0 1": the students' seeds; the data are drawn once),
# METHODS ("cotd potd eotd etd"), STEPS (1200) and BATCH (16 rows, as the quickstart; 32 take about twice as
# long), COUNT (training problems per family, 1000), LIMIT (test questions per split, 50),
# VAL_LIMIT (validation questions per family that rank checkpoints, 20),
# MAX_NEW_TOKENS (decoding limit of the final eval, 112: a gold CoT of a held-out composition runs to ~100 tokens),
# GRID (workdir/mini_grid), PYTHON (.venv/bin/python, as launch/quickstart.sh makes it); extra arguments go to
# every trainer. The data and the BPE tokenizer are built under $GRID when missing. Re-running resumes: finished
# trainings and evals are kept. A smoke run of the whole path in minutes:
#   STEPS=4 BATCH=8 COUNT=10 LIMIT=2 VAL_LIMIT=2 SEEDS=0 GRID=/tmp/grid bash launch/mini_grid.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/cpu_env.sh
PYTHON=${PYTHON:-.venv/bin/python}
FAMILIES=${FAMILIES:-forward start_from_end two_unknowns part_whole backward_rates}
SEEDS=${SEEDS:-0 1}
METHODS=${METHODS:-cotd potd eotd etd}
STEPS=${STEPS:-1200}
BATCH=${BATCH:-16}
COUNT=${COUNT:-1000}
LIMIT=${LIMIT:-50}
VAL_LIMIT=${VAL_LIMIT:-20}
MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-112}
GRID=${GRID:-workdir/mini_grid}
DATA=$GRID/data
TOKENIZER=$GRID/tokenizer
read -ra families <<< "$FAMILIES"
read -ra seeds <<< "$SEEDS"
read -ra methods <<< "$METHODS"
join() { local IFS=,; echo "$*"; }
validation=() tests=()
for family in "${families[@]}"; do
  held_out=test_compositional
  [ "$family" = forward ] && held_out=test_unseen
  validation+=("synthetic/$family/validation")
  tests+=("synthetic/$family/test" "synthetic/$family/$held_out")
done
if [ ! -f "$DATA/manifest.json" ]; then
  "$PYTHON" -m data_gen.build --teacher=gold --dataset=synthetic --synthetic_families="$(join "${families[@]}")" \
      --synthetic_count="$COUNT" --thoughts=cot,pot,eot --out="$DATA" --progress=false
fi
if [ ! -f "$TOKENIZER/tokenizer.json" ]; then
  "$PYTHON" -m eotd_jax.train_tokenizer --data="$DATA" --out="$TOKENIZER"
fi
declare -A STRATEGIES=([cotd]=cot [potd]=pot [eotd]=eot [etd]="cot,pot,eot,etd,vote")
for seed in "${seeds[@]}"; do
  for method in "${methods[@]}"; do
    run=$GRID/$method/seed$seed
    echo "== $method, seed $seed: training $STEPS steps"
    "$PYTHON" -m eotd_jax.train --config="quickstart:$method" --workdir="$run" \
        --config.data.dir="$DATA" --config.tokenizer="$TOKENIZER" --config.train.seed="$seed" \
        --config.eval.datasets="$(join "${validation[@]}")" --config.eval.limit="$VAL_LIMIT" \
        --config.train.steps="$STEPS" --config.train.batch_size="$BATCH" --config.progress=false "$@"
    echo "== $method, seed $seed: evaluating"
    "$PYTHON" -m eotd_jax.eval --workdir="$run" --step=best --eval_dir="$run/eval" \
        --datasets="$(join "${tests[@]}")" --limit="$LIMIT" --strategies="${STRATEGIES[$method]}" \
        --max_new_tokens="$MAX_NEW_TOKENS" > "$run/eval.log"
  done
done
"$PYTHON" -m eotd_jax.grid_report --grid_dir="$GRID"
