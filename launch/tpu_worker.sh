#!/usr/bin/env bash
# One TPU VM worker's share of `launch/tpu_pod.sh train|eval` (started detached there): `python -m eotd_jax.train`
# or `eotd_jax.eval` with the other arguments, its output in logs/worker-<N>.log (slice-<S>-worker-<N>.log when
# the job spans several slices), that log copied to $LOGS every LOG_SYNC_SECONDS (60) and at the end with the exit
# status.
set -uo pipefail
cd "$(dirname "$0")/.." || exit
: "${LOGS:?set LOGS=gs://bucket/path}"
attribute() { curl -sf -H 'Metadata-Flavor: Google' \
  "http://${GCE_METADATA_IP:-metadata.google.internal}/computeMetadata/v1/instance/attributes/$1"; }
worker="$(attribute agent-worker-number)"
# Multislice: the runtime's tpu-env holds the slice's number (a line MEGASCALE_SLICE_ID: '1').
slice="$(attribute tpu-env | sed -n "s/^MEGASCALE_SLICE_ID: *'\{0,1\}\([0-9]*\)'\{0,1\} *$/\1/p")"
log="logs/${slice:+slice-$slice-}worker-${worker}.log"
mkdir -p logs
upload() { gcloud storage cp --quiet "$log" "$LOGS/" >/dev/null 2>&1 || echo "warning: could not copy $log to $LOGS" >&2; }

job="$1"
shift
.venv/bin/python -m "eotd_jax.$job" --cluster=gce_tpu "$@" >"$log" 2>&1 &
train_pid=$!
echo "$train_pid" >logs/train.pid
seconds=0
while kill -0 "$train_pid" 2>/dev/null; do
  sleep 1
  if (( ++seconds % ${LOG_SYNC_SECONDS:-60} == 0 )); then upload; fi
done
wait "$train_pid"
status=$?
echo "exit status $status" >>"$log"
upload
exit "$status"
