#!/usr/bin/env bash
# The main job on built-in defaults: installs whatever is missing
# (tools/setup.sh), draws the Figure 5 grid data from the ten default
# objects, and runs the grid experiment on the built-in default model (a
# small random-weight LLaVA-1.5; see README.md for real checkpoints).
#
# Outputs: data/grid_data/camel_frog/... (240 PNGs) and embeds/grid_id/
# {llava-7b.pt, llava-7b_x.pt, llava-7b_y.pt, llava-7b_text.pt} and the
# Figure 5 picture embeds/grid_id/llava-7b_fig5.png (+ _sheet.png).
# Extra flags are passed to small_id_grid (e.g. ./run.sh --batch_size=16).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$repo"
bash tools/setup.sh
# shellcheck disable=SC1090
source "${SPATIALID_HOME:-$HOME/.cache/spatialid}/env.sh"

bazel build //examples:grid_data //examples:small_id_grid //examples:fig5
./bazel-bin/examples/grid_data --objects_dir=data/objects --out=data/grid_data
./bazel-bin/examples/small_id_grid --model=llava-7b --model_dir="$SPATIALID_DEFAULT_MODEL" \
  --images=data/grid_data --out=embeds/grid_id "$@"
# The default model has 6 decoder layers; a real 7B model: --layer=12.
./bazel-bin/examples/fig5 --dir=embeds/grid_id --model=llava-7b --layer=4 --sheet_layers=all
echo "[run] wrote embeds/grid_id/ (random default weights: the numbers mean nothing; see README.md)"
