#!/usr/bin/env bash
# Submit training to a SLURM GPU cluster: one process per GPU on NODES nodes of GPUS_PER_NODE GPUs each.
#
#   NODES=2 GPUS_PER_NODE=8 bash launch/slurm.sh --config=paper:codet5-large,etd \
#       --workdir=/shared/runs/etd-codet5-large --config.init_from_hf=/shared/models/codet5p-770m-py \
#       --config.data.dir=/shared/data/gsm8k_gpt35 --config.eval.data_dir=/shared/benchmarks
#
#   NODES=2 bash launch/slurm.sh eval --workdir=/shared/runs/etd-codet5-large --step=best \
#       --data_dir=/shared/benchmarks       # the eval binary on every GPU of the job
#   NODES=2 bash launch/slurm.sh check     # every process joins and prints its process index and devices
#
# The arguments go to `python -m eotd_jax.train` (or, after `eval`, `eotd_jax.eval`) on every process (from .venv,
# or $PYTHON). Export needs no GPU: `python -m eotd_jax.export --workdir=... --out=...` on any node. The job's output goes to
# $LOG_DIR/eotd-train-<job id>.out (LOG_DIR default logs/, created here: SLURM does not create it). Partition,
# account, QoS and time limit come from sbatch's own variables (SBATCH_PARTITION, SBATCH_ACCOUNT, SBATCH_QOS,
# SBATCH_TIMELIMIT). Submitting the same command again resumes from the workdir's last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
log_dir="${LOG_DIR:-logs}"
gpus="${GPUS_PER_NODE:-8}"
mkdir -p "$log_dir"
sbatch --nodes="${NODES:-2}" --ntasks-per-node="$gpus" --gpus-per-node="$gpus" \
  --output="$log_dir/%x-%j.out" launch/slurm_gpu.sbatch "$@"
