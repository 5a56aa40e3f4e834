// small_id_grid: the Figure 5 experiment (docs/reference_pipeline.md sections 2, 4, 6, 7).
//
// Asks "Is the frog to the left or right of the camel?" over every grid
// image, keeps the hidden states of frog, left and right at every kept
// layer, and writes the pair's spatial IDs, its x/y axes and the text-only
// embeddings of left and right.
//
//   bazel run //examples:small_id_grid -- --model=llava-7b \
//     --model_dir=/models/llava-1.5-7b-hf --images=data/grid_data --out=embeds/grid_id
//
// Outputs: {out}/{model}.pt, {out}/{model}_x.pt, {out}/{model}_y.pt,
// {out}/{model}_text.pt (several pairs: {out}/{a}_{b}/{model}.pt each).
#include "examples/experiment_main.h"

int main(int argc, char** argv) {
  return spatialid::examples::ExperimentMain(
      spatialid::examples::ExperimentKind::kGrid, argc, argv,
      "Spatial IDs of frog/left/right over the grid images (Figure 5).\n"
      "Example: small_id_grid --model=llava-7b --model_dir=DIR --images=data/grid_data "
      "--out=embeds/grid_id");
}
