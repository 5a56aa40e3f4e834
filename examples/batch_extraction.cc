// batch_extraction: per-pair and universal spatial IDs and x/y axes for one
// model (docs/reference_pipeline.md sections 2, 4, 5, 6).
//
// For every pair folder {a}_{b} asks "Is {b} to the left or right of {a}?"
// and keeps the hidden states of {b}; writes {out}/{a}_{b}/{model}.pt per
// pair, then {out}/{model}.pt (universal IDs, indexed
// ids[layer]["universal"][(x, y, size)]) and {out}/{model}_x.pt /
// {out}/{model}_y.pt. A rerun skips pairs already written (resume).
//
//   bazel run //examples:batch_extraction -- --model=qwen-7b \
//     --model_dir=/models/Qwen2.5-VL-7B-Instruct --images=data/extraction_data \
//     --out=embeds/universal_id --device=cuda
#include "examples/experiment_main.h"

int main(int argc, char** argv) {
  return spatialid::examples::ExperimentMain(
      spatialid::examples::ExperimentKind::kBatch, argc, argv,
      "Per-pair and universal spatial IDs and axes for one model.\n"
      "Example: batch_extraction --model=llava-7b --model_dir=DIR "
      "--images=data/extraction_data --out=embeds/universal_id");
}
