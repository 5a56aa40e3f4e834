// One model of the paper: its command-line alias, Hugging Face checkpoint,
// the dtype the reference ran it in and the hidden states the reference
// keeps (docs/reference_pipeline.md section 3). Each family lists its
// models in its traits (`kPresets`); the registry (registry.h) finds them.
// libtorch-free.
#pragma once

#include <string_view>

namespace spatialid::families {

struct ModelPreset {
  std::string_view alias;       // --model=llava-7b
  std::string_view checkpoint;  // Hugging Face repo id
  std::string_view dtype;       // the reference's torch dtype ("float16")
  int reference_last_layer;     // last hidden-state index the reference keeps
  int num_hidden_states;        // num_layers + 1 of the real checkpoint
};

}  // namespace spatialid::families
