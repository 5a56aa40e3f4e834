#!/usr/bin/env bash
# Batch extraction over every GPU of this node with torchrun, then the merge.
# torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; batch_extraction takes its
# shard from them and, with --device=cuda, uses cuda:LOCAL_RANK.
# Several nodes: run this on each with --nnodes=M --node_rank=R and a common
# --rdzv_endpoint, then run the merge once when all have finished.
#   examples/launch/torchrun.sh llava-7b /models/llava-1.5-7b-hf data/extraction_data embeds/universal_id
set -euo pipefail
MODEL=${1:?model alias}; MODEL_DIR=${2:?model folder}; IMAGES=${3:-data/extraction_data}
OUT=${4:-embeds/universal_id}; GPUS=${GPUS:-$(nvidia-smi -L 2>/dev/null | wc -l)}
torchrun --no-python --standalone --nproc_per_node="${GPUS:-1}" \
  bazel-bin/examples/batch_extraction --model="$MODEL" --model_dir="$MODEL_DIR" \
  --images="$IMAGES" --out="$OUT" --device=cuda
bazel-bin/examples/merge_shards --out="$OUT" --model="$MODEL"
