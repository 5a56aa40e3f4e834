// The thirteen models of the paper: alias -> checkpoint, family, dtype and
// the hidden-state range the reference keeps (REFERENCE.md section 3).
//
// Binaries take `--model=ALIAS`; extract/registry.h turns the preset's
// family into a compile-time family type. libtorch-free so tools and tests
// can list models cheaply.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace spatialid::extract {

enum class FamilyId { kLlava, kQwen2VL, kQwen2_5VL, kMllama, kInternVL, kGemma3 };

inline constexpr std::string_view FamilyModelType(FamilyId f) {
  // config.json's `model_type` of each family's checkpoints.
  switch (f) {
    case FamilyId::kLlava: return "llava";
    case FamilyId::kQwen2VL: return "qwen2_vl";
    case FamilyId::kQwen2_5VL: return "qwen2_5_vl";
    case FamilyId::kMllama: return "mllama";
    case FamilyId::kInternVL: return "internvl";
    case FamilyId::kGemma3: return "gemma3";
  }
  return "";
}

struct ModelPreset {
  std::string_view alias;
  std::string_view checkpoint;  // Hugging Face repo id
  FamilyId family;
  std::string_view dtype;       // the reference's torch dtype
  int reference_last_layer;     // last hidden-state index the reference keeps
  int num_hidden_states;        // num_layers + 1 of the real checkpoint
};

inline constexpr std::array<ModelPreset, 13> kModelPresets = {{
    {"llava-7b", "llava-hf/llava-1.5-7b-hf", FamilyId::kLlava, "float16", 32, 33},
    {"llava-13b", "llava-hf/llava-1.5-13b-hf", FamilyId::kLlava, "float16", 40, 41},
    {"qwen2-2b", "Qwen/Qwen2-VL-2B-Instruct", FamilyId::kQwen2VL, "bfloat16", 28, 29},
    {"qwen-7b", "Qwen/Qwen2.5-VL-7B-Instruct", FamilyId::kQwen2_5VL, "float16", 28, 29},
    {"qwen-3b", "Qwen/Qwen2.5-VL-3B-Instruct", FamilyId::kQwen2_5VL, "float16", 36, 37},
    {"llama-11b", "meta-llama/Llama-3.2-11B-Vision-Instruct", FamilyId::kMllama, "bfloat16", 32, 41},
    {"llava-cot", "Xkev/Llama-3.2V-11B-cot", FamilyId::kMllama, "bfloat16", 40, 41},
    {"internvl-1b", "OpenGVLab/InternVL3-1B-hf", FamilyId::kInternVL, "bfloat16", 24, 25},
    {"internvl-2b", "OpenGVLab/InternVL3-2B-hf", FamilyId::kInternVL, "bfloat16", 28, 29},
    {"internvl-8b", "OpenGVLab/InternVL3-8B-hf", FamilyId::kInternVL, "bfloat16", 28, 29},
    {"internvl-14b", "OpenGVLab/InternVL3-14B-hf", FamilyId::kInternVL, "bfloat16", 48, 49},
    {"gemma-4b", "google/gemma-3-4b-it", FamilyId::kGemma3, "bfloat16", 29, 35},
    {"gemma-12b", "google/gemma-3-12b-it", FamilyId::kGemma3, "bfloat16", 39, 49},
}};

inline std::string KnownAliases() {
  std::string out;
  for (const auto& p : kModelPresets) absl::StrAppend(&out, out.empty() ? "" : ", ", std::string(p.alias));
  return out;
}

inline absl::StatusOr<ModelPreset> FindPreset(std::string_view alias) {
  for (const auto& p : kModelPresets) {
    if (p.alias == alias) return p;
  }
  return absl::NotFoundError(
      absl::StrCat("unknown model alias '", std::string(alias), "'; known: ", KnownAliases()));
}

}  // namespace spatialid::extract
