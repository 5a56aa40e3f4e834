#!/usr/bin/env bash
# Builds spatialid's built-in default model: a small random-weight LLaVA-1.5
# checkpoint folder made by transformers (tools/make_tiny_llava.py). Rebuilt
# only when that script changes.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
script="$repo/tools/make_tiny_llava.py"
stamp=$(sha256sum "$script" | cut -c1-12)
dest="$SPATIALID_HOME/models/llava-tiny-random"
if [ -f "$dest/.stamp" ] && [ "$(cat "$dest/.stamp")" = "$stamp" ]; then
  echo "[setup] default model: $dest" >&2
  exit 0
fi
echo "[setup] making the built-in default model (random weights) in $dest" >&2
HF_HUB_OFFLINE=1 "$SPATIALID_PYTHON" "$script" "$dest" --size default >/dev/null 2>&1 ||
  { echo "[setup] failed: $SPATIALID_PYTHON $script $dest" >&2; exit 1; }
echo "$stamp" > "$dest/.stamp"
