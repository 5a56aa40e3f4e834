#!/usr/bin/env bash
# Batch extraction over every GPU of one or several nodes with torchrun, then
# the merge. torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; batch_extraction
# takes its shard from them and, with --device=cuda, uses cuda:LOCAL_RANK.
# No process group is formed: the shards only share the output folder.
#
# One node, all its GPUs:
#   examples/launch/torchrun.sh llava-7b /models/llava-1.5-7b-hf data/extraction_data embeds/universal_id
# Two nodes (same command on each, the output folder on a shared filesystem):
#   NNODES=2 NODE_RANK=0 RDZV=node0:29500 examples/launch/torchrun.sh llava-7b /models/llava-1.5-7b-hf ...
#   NNODES=2 NODE_RANK=1 RDZV=node0:29500 examples/launch/torchrun.sh llava-7b /models/llava-1.5-7b-hf ...
# Node 0 merges once every node's workers are done (torchrun's agents wait
# for each other before they exit). Arguments after the fourth go to
# batch_extraction (e.g. --layers=reference); --name, --axis_size and
# --strict_axes go to the merge too.
#
# Environment: GPUS (processes per node; default: the GPUs nvidia-smi lists,
# at least 1), NNODES, NODE_RANK, RDZV (host:port of node 0 when NNODES > 1),
# DEVICE (default cuda), TORCHRUN (default torchrun, e.g.
# "python -m torch.distributed.run"), SPATIALID_BIN (folder of the binaries,
# default bazel-bin/examples).
set -euo pipefail
if (( $# < 2 )); then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
fi
MODEL=$1; MODEL_DIR=$2; IMAGES=${3:-data/extraction_data}; OUT=${4:-embeds/universal_id}
shift $(( $# < 4 ? $# : 4 ))
BIN=${SPATIALID_BIN:-bazel-bin/examples}
read -r -a TORCHRUN_CMD <<< "${TORCHRUN:-torchrun}"
GPUS=${GPUS:-$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)}
(( ${GPUS:-0} >= 1 )) || GPUS=1
NNODES=${NNODES:-1}; NODE_RANK=${NODE_RANK:-0}
if (( NNODES > 1 )); then
  RDZV_ARGS=(--nnodes="$NNODES" --node_rank="$NODE_RANK" --rdzv_backend=c10d
             --rdzv_endpoint="${RDZV:?set RDZV=host:port of node 0 when NNODES > 1}")
else
  RDZV_ARGS=(--standalone)
fi
MERGE_ARGS=()  # the flags the merge shares with the extraction
for a in "$@"; do
  case $a in --name=* | --axis_size=* | --strict_axes | --strict_axes=*) MERGE_ARGS+=("$a") ;; esac
done

"${TORCHRUN_CMD[@]}" --no-python "${RDZV_ARGS[@]}" --nproc_per_node="$GPUS" \
  "$BIN/batch_extraction" --model="$MODEL" --model_dir="$MODEL_DIR" --images="$IMAGES" \
  --out="$OUT" --device="${DEVICE:-cuda}" "$@"
if (( NODE_RANK == 0 )); then
  "$BIN/merge_shards" --out="$OUT" --model="$MODEL" "${MERGE_ARGS[@]}"
fi
