#!/usr/bin/env bash
# Train on a Cloud TPU VM slice (v4, v5e, v5p, v6e), or on several slices as one job, on every worker at once.
#
#   export TPU=etd-v5e ZONE=us-west4-a TYPE=v5litepod-16 LOGS=gs://my-bucket/etd-v5e/logs
#   bash launch/tpu_pod.sh create    # the slice, with the runtime version its type needs (VERSION overrides)
#   bash launch/tpu_pod.sh setup     # this checkout's HEAD on every worker, installed with uv and Python 3.12
#                                    # ('.[tpu,hf]': libtpu, and CPU torch to read pytorch_model.bin students)
#   bash launch/tpu_pod.sh check     # every worker joins jax.distributed and prints what it sees
#   bash launch/tpu_pod.sh run 'hf download Salesforce/codet5p-770m-py --local-dir /tmp/models/codet5p-770m-py'
#                                    # any command, in the checkout on every worker, the venv first on PATH
#   bash launch/tpu_pod.sh train --config=paper:codet5-large,etd --workdir=gs://my-bucket/etd-v5e \
#       --config.init_from_hf=/tmp/models/codet5p-770m-py --config.data.dir=gs://my-bucket/data/gsm8k_gpt35 \
#       --config.eval.data_dir=gs://my-bucket/benchmarks
#                                    # detached on every worker; each worker's log is copied to $LOGS every minute
#   bash launch/tpu_pod.sh eval --workdir=gs://my-bucket/etd-v5e --step=best --data_dir=gs://my-bucket/benchmarks
#                                    # the eval binary on every worker, detached like train: the questions are
#                                    # split over the slice, worker 0 writes gs://my-bucket/etd-v5e/eval/step_<N>
#   bash launch/tpu_pod.sh export --workdir=gs://my-bucket/etd-v5e --step=best --out=gs://my-bucket/etd-export
#                                    # on worker 0 alone, on its CPU (it reads the parameters alone)
#   bash launch/tpu_pod.sh status    # running or not on each worker, and the last lines of its log
#   bash launch/tpu_pod.sh logs      # copy the workers' logs from $LOGS to logs/$TPU (or $OUT)
#   bash launch/tpu_pod.sh stop      # SIGTERM on every worker: the trainer saves a checkpoint and exits
#   bash launch/tpu_pod.sh delete    # teardown
#
# SLICES=N (default 1) makes every command act on N slices of TYPE joined over the data-centre network
# (Multislice): `create` queues them as one queued resource named $TPU (nodes $TPU-0 ... $TPU-<N-1>), the
# others reach every worker of every slice through it. JAX joins all the slices' workers into one run (the
# TPU runtime's MEGASCALE_* settings), and the trainer lays `mesh.dcn_shape` over the slices: data parallel
# across them by default, FSDP within each. A worker's log is then slice-<S>-worker-<N>.log.
#
# The benchmarks come from gs:// (the workers may have no internet): stage them once from any machine with
# `python -m eotd_jax.stage_benchmarks --source=hub --to=gs://my-bucket/benchmarks`. The run keeps its model
# config, tokenizer and student input in its workdir, so /tmp/models is read only at the first start.
# Train again with the same --workdir to resume. The workdir and the data must be on GCS (every worker reads
# and writes them). PYTHON_VERSION (default 3.12) is the Python uv installs: the images ship 3.10, jax needs 3.11+.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${TPU:?set TPU (the slice name)}" "${ZONE:?set ZONE}"

die() { echo "error: $*" >&2; exit 1; }

runtime_version() {  # https://cloud.google.com/tpu/docs/runtimes
  case "$1" in
    v2-*|v3-*|v4-*) echo tpu-ubuntu2204-base ;;
    v5litepod-*|v5e-*) echo v2-alpha-tpuv5-lite ;;
    v5p-*) echo v2-alpha-tpuv5 ;;
    v6e-*) echo v2-alpha-tpuv6e ;;
    *) die "unknown TPU type '$1' (v4-32, v5litepod-16, v5p-32, v6e-16, ...); set VERSION" ;;
  esac
}

SLICES="${SLICES:-1}"
[[ "$SLICES" =~ ^[1-9][0-9]*$ ]] || die "SLICES must be a positive whole number, not '$SLICES'"

on_workers() {  # one command line, run by bash on every worker of every slice (or on worker $2 of slice 0)
  if (( SLICES > 1 )); then
    local node=all
    [[ -n "${2:-}" ]] && node=0
    gcloud compute tpus queued-resources ssh "$TPU" --zone="$ZONE" --node="$node" --worker="${2:-all}" \
      --command="$1"
  else
    gcloud compute tpus tpu-vm ssh "$TPU" --zone="$ZONE" --worker="${2:-all}" --command="$1"
  fi
}

copy_to_workers() {  # a local file into every worker's home
  if (( SLICES > 1 )); then
    gcloud compute tpus queued-resources scp "$1" "$TPU:$2" --zone="$ZONE" --node=all --worker=all
  else
    gcloud compute tpus tpu-vm scp "$1" "$TPU:$2" --zone="$ZONE" --worker=all
  fi
}

command="${1:-}"
shift || true
case "$command" in
  create)
    : "${TYPE:?set TYPE (the accelerator type, e.g. v5litepod-16)}"
    version="${VERSION:-}"
    [[ -n "$version" ]] || version="$(runtime_version "$TYPE")"  # an assignment, so that set -e sees a failure
    if (( SLICES > 1 )); then  # Multislice needs a queued resource; it waits for capacity (describe shows its state)
      gcloud compute tpus queued-resources create "$TPU" --zone="$ZONE" --accelerator-type="$TYPE" \
        --runtime-version="$version" --node-count="$SLICES" --node-prefix="$TPU"
      echo "queued $SLICES slices of $TYPE as $TPU; once ACTIVE (gcloud compute tpus queued-resources describe $TPU" \
        "--zone=$ZONE), run setup"
    else
      gcloud compute tpus tpu-vm create "$TPU" --zone="$ZONE" --accelerator-type="$TYPE" --version="$version"
    fi
    ;;
  setup)
    tarball="$(mktemp -d)/eotd_jax.tar.gz"
    git archive --format=tar.gz -o "$tarball" HEAD
    copy_to_workers "$tarball" eotd_jax.tar.gz
    on_workers "set -e; rm -rf eotd_jax; mkdir eotd_jax; tar xzf eotd_jax.tar.gz -C eotd_jax; cd eotd_jax
      export PATH=\$HOME/.local/bin:\$PATH
      command -v uv >/dev/null || curl -LsSf https://astral.sh/uv/install.sh | env UV_INSTALL_DIR=\$HOME/.local/bin sh
      uv venv --quiet --python $(printf %q "${PYTHON_VERSION:-3.12}") .venv
      uv pip install --quiet --python .venv/bin/python -e '.[tpu,hf]' \
        --extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match"
    ;;
  check)
    on_workers "cd eotd_jax && .venv/bin/python -m eotd_jax.distributed --cluster=gce_tpu"
    ;;
  run)
    on_workers "cd eotd_jax && export PATH=\$PWD/.venv/bin:\$PATH && $*"
    ;;
  train|eval)
    [[ "${LOGS:-}" == gs://* ]] || die "set LOGS=gs://bucket/path (where each worker's log goes)"
    # %q quotes every argument for the workers' bash: --config.mesh.shape=(1,-1,1) arrives as one argument.
    # Only the detached command is backgrounded (not a `cd && ...` list, whose subshell would keep ssh open).
    on_workers "cd eotd_jax || exit 1
      if kill -0 \"\$(cat logs/train.pid 2>/dev/null)\" 2>/dev/null; then echo 'error: a job is running' >&2; exit 1; fi
      LOGS=$(printf %q "$LOGS") setsid nohup bash launch/tpu_worker.sh $command$(printf ' %q' "$@") \
      >/dev/null 2>&1 </dev/null &"
    echo "started on every worker of $TPU; logs: $LOGS (bash launch/tpu_pod.sh status | logs | stop)"
    ;;
  export)
    on_workers "cd eotd_jax && JAX_PLATFORMS=cpu .venv/bin/python -m eotd_jax.export$(printf ' %q' "$@")" 0
    ;;
  status)
    # shellcheck disable=SC2016  # expanded by the workers
    on_workers 'cd eotd_jax || exit 1; state=stopped; kill -0 "$(cat logs/train.pid 2>/dev/null)" 2>/dev/null && state=running
      for log in logs/*worker-*.log; do [[ -e "$log" ]] && echo "$log: $state" && tail -n 3 "$log"; done; true'
    ;;
  logs)
    [[ "${LOGS:-}" == gs://* ]] || die "set LOGS=gs://bucket/path"
    out="${OUT:-logs/$TPU}"
    mkdir -p "$out"
    gcloud storage cp "$LOGS/*.log" "$out/"
    echo "logs in $out"
    ;;
  stop)
    # shellcheck disable=SC2016  # expanded by the workers
    on_workers 'cd eotd_jax && kill -TERM "$(cat logs/train.pid)"'
    ;;
  delete)
    if (( SLICES > 1 )); then
      gcloud compute tpus queued-resources delete "$TPU" --zone="$ZONE" --force --quiet  # --force: its slices too
    else
      gcloud compute tpus tpu-vm delete "$TPU" --zone="$ZONE" --quiet
    fi
    ;;
  *)
    die "usage: bash launch/tpu_pod.sh create|setup|check|run COMMAND|train|eval|export ARGS...|status|logs|stop|delete (see its header)"
    ;;
esac
