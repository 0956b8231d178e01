#!/usr/bin/env bash
# The GPU check on a fresh GPU machine, within 8 minutes with the install: this checkout installed with .[cuda12]
# into .venv by launch/install_venv.sh (or the Python in $PYTHON, when it already has jax with CUDA), then
# bench/device_check.py, whose JSON goes to $OUT (default device_check.json). Further arguments go to
# device_check.py.
#
#   bash bench/device_check.sh
#   PYTHON=python3 OUT=/tmp/check.json bash bench/device_check.sh --steps=20
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
  bash launch/install_venv.sh cuda12
  python=.venv/bin/python
fi
"$python" -c 'import jax; assert jax.default_backend() == "gpu", jax.devices()' \
  || { echo "error: JAX sees no GPU here (pip install -e '.[cuda12]' on a machine with NVIDIA GPUs)" >&2; exit 1; }
exec "$python" bench/device_check.py --out="${OUT:-device_check.json}" "$@"
