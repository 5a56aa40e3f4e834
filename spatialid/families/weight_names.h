// Where a checkpoint keeps a family's towers.
//
// The same weights come under different prefixes: real Hugging Face
// downloads and transformers' save_pretrained write one naming (for most
// families the legacy `language_model.model.*`), transformers' own module
// tree another (`model.language_model.*`, its
// `_checkpoint_conversion_mapping`), and a bare base model a third. A family
// lists its schemes in order; the first whose text embedding the checkpoint
// holds is the checkpoint's, so every naming real files use loads.
//
// Example (llava/llava.h):
//   static constexpr WeightScheme kSchemes[] = {
//       {"language_model.model", "vision_tower.vision_model", "multi_modal_projector",
//        "language_model.lm_head."}, ...};
//   SPATIALID_ASSIGN_OR_RETURN(WeightNames names,
//       DetectWeightNames(ckpt, kSchemes, "LLaVA", {".embeddings.position_ids"}));
#pragma once

#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spatialid/io/checkpoint.h"

namespace spatialid::families {

// One naming scheme: the prefix chains of the text decoder (ending before
// embed_tokens / layers / norm), the vision tower, the projector and the LM
// head (which the extraction never needs).
struct WeightScheme {
  const char* text;
  const char* vision;
  const char* projector;  // "" when the family has none of its own
  const char* lm_head;
};

struct WeightNames {
  std::string text;
  std::string vision;
  std::string projector;
  // Prefixes the loader may leave unread: the LM head and the vision
  // tower's entries named in `unused_in_vision`.
  std::vector<std::string> unused_prefixes;
};

inline absl::StatusOr<WeightNames> DetectWeightNames(
    const io::Checkpoint& ckpt, std::span<const WeightScheme> schemes, std::string_view family,
    std::initializer_list<std::string_view> unused_in_vision = {}) {
  std::vector<std::string> looked;
  for (const WeightScheme& s : schemes) {
    const std::string embedding = absl::StrCat(s.text, ".embed_tokens.weight");
    if (!ckpt.Has(embedding)) {
      looked.push_back(embedding);
      continue;
    }
    WeightNames n{s.text, s.vision, s.projector, {s.lm_head}};
    for (std::string_view suffix : unused_in_vision) {
      n.unused_prefixes.push_back(absl::StrCat(s.vision, std::string(suffix)));
    }
    return n;
  }
  return absl::InvalidArgumentError(absl::StrCat(ckpt.dir(), ": no ", std::string(family),
                                                 " text embedding found (looked for ",
                                                 absl::StrJoin(looked, ", "), ")"));
}

}  // namespace spatialid::families
