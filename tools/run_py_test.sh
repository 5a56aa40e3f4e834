#!/usr/bin/env bash
# Runs a Python test file with the project venv (see tools/defs.bzl).
set -euo pipefail
if [ -z "${SPATIALID_PYTHON:-}" ] || [ ! -x "$SPATIALID_PYTHON" ]; then
  echo "SPATIALID_PYTHON is not set to the project venv's python; run tools/setup.sh and source ~/.cache/spatialid/env.sh (test.sh does both)" >&2
  exit 1
fi
export PYTHONPATH="$PWD/tests/python:$PWD:${PYTHONPATH:-}"
export PYTHONDONTWRITEBYTECODE=1
exec "$SPATIALID_PYTHON" "$@"
