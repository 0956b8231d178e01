#!/usr/bin/env bash
# Train on a Cloud TPU VM pod slice: create it, copy and install the project on every worker,
# run the trainer on all workers at once (jax.distributed finds the pod by itself), fetch the logs.
#
#   ZONE=us-central2-b TPU=etd-v4-32 TYPE=v4-32 bash launch/tpu_pod.sh \
#       --config=configs/paper.py:codet5-large,etd --workdir=gs://my-bucket/etd-codet5-large
#
# The workdir must be on GCS (every worker writes its shards of the checkpoint there), and so
# must the data: pass --config.data.dir=gs://... . Set KEEP=1 to keep the slice afterwards.
set -euo pipefail
: "${ZONE:?set ZONE}" "${TPU:?set TPU (the slice name)}" "${TYPE:=v4-32}" "${VERSION:=tpu-ubuntu2204-base}"
cd "$(dirname "$0")/.."
ssh() { gcloud compute tpus tpu-vm ssh "$TPU" --zone="$ZONE" --worker=all --command="$1"; }

if ! gcloud compute tpus tpu-vm describe "$TPU" --zone="$ZONE" >/dev/null 2>&1; then
  gcloud compute tpus tpu-vm create "$TPU" --zone="$ZONE" --accelerator-type="$TYPE" --version="$VERSION"
fi
git archive --format=tar.gz -o /tmp/eotd_jax.tar.gz HEAD
gcloud compute tpus tpu-vm scp /tmp/eotd_jax.tar.gz "$TPU":~ --zone="$ZONE" --worker=all
ssh "mkdir -p eotd_jax && tar xzf eotd_jax.tar.gz -C eotd_jax && cd eotd_jax && python3 -m venv .venv \
     && .venv/bin/pip install -q -e . 'jax[tpu]' && mkdir -p logs"
ssh "cd eotd_jax && .venv/bin/python -m eotd_jax.train $* 2>&1 | tee logs/train-\$(hostname).log"
mkdir -p "logs/$TPU"
gcloud compute tpus tpu-vm scp "$TPU":~/eotd_jax/logs/* "logs/$TPU/" --zone="$ZONE" --worker=all || true
if [[ "${KEEP:-0}" != 1 ]]; then
  gcloud compute tpus tpu-vm delete "$TPU" --zone="$ZONE" --quiet
fi
