#!/usr/bin/env bash
# Installs whatever is missing (tools/setup.sh), then builds and runs every
# test: C++ unit tests, the transformers/tokenizers/Pillow/torch oracles, and
# short fuzzing runs. Ends with one line: "N passed, N failed" (test cases).
#
# Usage: ./test.sh [bazel target patterns...]   (default: //...)
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$repo"
bash tools/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
# shellcheck disable=SC1090
source "${SPATIALID_HOME:-$HOME/.cache/spatialid}/env.sh"

targets=("$@")
((${#targets[@]})) || targets=(//...)

bep=$(mktemp)
bazel test --keep_going --build_event_json_file="$bep" "${targets[@]}"
bazel_rc=$?

"$SPATIALID_PYTHON" tools/count_tests.py --bep "$bep" "${targets[@]}"
count_rc=$?
if [ $bazel_rc -ne 0 ] || [ $count_rc -ne 0 ]; then exit 1; fi
exit 0
