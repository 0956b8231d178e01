#!/usr/bin/env bash
# This checkout installed into .venv, with the extras named in $1 (none by default), for the scripts that start on
# a fresh machine (quickstart.sh, bench/device_check.sh):
#
#   bash launch/install_venv.sh           # .
#   bash launch/install_venv.sh cuda12    # .[cuda12]
#
# uv fetches and unpacks wheels in parallel: the quickstart's install takes under a minute from a cold cache,
# where pip takes about 2 minutes (docs/benchmarks.md, "The quickstart: wall time"). Like pip, it compiles the
# bytecode at install time, so no later process pays for it (nor recompiles it at every start where
# PYTHONDONTWRITEBYTECODE is set). uv reads its own settings (UV_INDEX_URL, UV_DEFAULT_INDEX, SSL_CERT_FILE), not
# pip's: where it cannot install, pip does, saying so.
set -euo pipefail
cd "$(dirname "$0")/.."
target=".${1:+[$1]}"
[[ -x .venv/bin/python ]] || python3 -m venv .venv
if .venv/bin/pip install -q uv \
    && .venv/bin/uv pip install -q --compile-bytecode --python .venv/bin/python -e "$target"; then
  exit 0
fi
echo "install_venv.sh: uv could not install $target; installing it with pip" >&2
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e "$target"
