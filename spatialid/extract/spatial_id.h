// Spatial IDs, model-agnostic: from per-image hidden vectors to the files
// of the reference pipeline (docs/reference_pipeline.md sections 4 to 7).
//
// A vision-language model sees two objects A and B on a 4 x 4 grid; for
// each image the extractor hands over, per kept layer, the hidden vector
// of a target token. This header brings together:
//   spatial_id_layout.h     CellKey (x, y, size) and a checked walk over
//                           {layer: {token: {(x, y, s): vector}}} dicts
//   spatial_id_pair.h       PairIdAccumulator: per-A-folder mean-centring
//                           and averaging over A folders, streamed
//   spatial_id_universal.h  UniversalIdAccumulator: mean over pairs
//   spatial_id_axes.h       ComputeAxes: x and y axes (reference or strict)
//   spatial_id_text.h       TextEmbeddings: text-only token vectors
//   spatial_id_files.h      output paths, writers, shard states
// Accumulation is float32 running sums and counts (no image's vector is
// kept, arrival order does not matter, shards merge exactly); outputs are
// cast to the model's dtype and written as torch.load-compatible .pt files.
//
// Example (one pair, then universal IDs and axes):
//   PairIdAccumulator pair(layers);
//   for (const auto& img : images)  // img.vectors: [L, D] at the target token
//     SPATIALID_RETURN_IF_ERROR(pair.Add(img.a_folder, "rog", img.key, img.vectors));
//   SPATIALID_RETURN_IF_ERROR(WritePairIds(out, "camel", "frog", model, pair, at::kHalf));
//   UniversalIdAccumulator universal;
//   SPATIALID_RETURN_IF_ERROR(universal.AddPairFile(PairIdPath(out, "camel", "frog", model)));
//   SPATIALID_ASSIGN_OR_RETURN(io::PtDict ids, universal.Result(at::kHalf));
//   SPATIALID_ASSIGN_OR_RETURN(Axes axes, ComputeAxes(ids));
//   SPATIALID_RETURN_IF_ERROR(WriteAxes(out + "/" + model, axes));
#pragma once

#include "spatialid/extract/spatial_id_axes.h"
#include "spatialid/extract/spatial_id_files.h"
#include "spatialid/extract/spatial_id_layout.h"
#include "spatialid/extract/spatial_id_pair.h"
#include "spatialid/extract/spatial_id_text.h"
#include "spatialid/extract/spatial_id_universal.h"
