// The Qwen2 text-model fields shared by `Qwen2Config` (InternVL's language
// model) and `Qwen2VLTextConfig` / `Qwen2_5_VLTextConfig` (Qwen-VL's).
//
// transformers 5.3.0 spells these classes out separately
// (models/qwen2/configuration_qwen2.py, models/qwen2_vl/...); they share
// every key and the sliding-window rule and differ only in defaults, the
// RoPE default theta and Qwen-VL's multimodal RoPE. The owning struct sets
// its class's defaults in its constructor and calls the two helpers here.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "spatialid/config/fields.h"
#include "spatialid/config/rope.h"
#include "spatialid/io/json_file.h"

namespace spatialid::config {

struct Qwen2TextFields {
  std::string model_type;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // null: num_attention_heads
  std::string hidden_act = "silu";
  int64_t max_position_embeddings = 32768;
  double initializer_range = 0.02;
  double rms_norm_eps = 1e-6;
  bool use_cache = true;
  bool use_sliding_window = false;
  // 4096 by default, but null unless use_sliding_window.
  std::optional<int64_t> sliding_window = 4096;
  int64_t max_window_layers = 0;
  std::vector<std::string> layer_types;
  double attention_dropout = 0.0;
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_id;
  std::optional<int64_t> pad_token_id;
  RopeParameters rope_parameters;

  // These configs have no head_dim key; attention uses hidden / heads.
  int64_t head_dim() const { return num_attention_heads > 0 ? hidden_size / num_attention_heads : 0; }

  template <class V>
  void VisitQwen2TextFields(V& v) {
    v.Derived("model_type", model_type);
    v("vocab_size", vocab_size);
    v("hidden_size", hidden_size);
    v("intermediate_size", intermediate_size);
    v("num_hidden_layers", num_hidden_layers);
    v("num_attention_heads", num_attention_heads);
    v.Derived("num_key_value_heads", num_key_value_heads);
    v("hidden_act", hidden_act);
    v("max_position_embeddings", max_position_embeddings);
    v("initializer_range", initializer_range);
    v("rms_norm_eps", rms_norm_eps);
    v("use_cache", use_cache);
    v("use_sliding_window", use_sliding_window);
    v("sliding_window", sliding_window);
    v("max_window_layers", max_window_layers);
    v.Derived("layer_types", layer_types);
    v("attention_dropout", attention_dropout);
    v("bos_token_id", bos_token_id);
    v.Derived("eos_token_id", eos_token_id);
    v("pad_token_id", pad_token_id);
    v.Derived("rope_parameters", rope_parameters);
  }

  // Derived fields: kv heads, eos list, the sliding window (which applies
  // only with use_sliding_window, and then from layer max_window_layers on,
  // unless layer_types lists the layers) and RoPE.
  void ResolveQwen2Text(io::JsonFields& f, double default_rope_theta, bool mrope) {
    std::optional<int64_t> kv = num_key_value_heads;
    f.Get("num_key_value_heads", &kv);
    num_key_value_heads = kv.value_or(num_attention_heads);
    ReadIntOrList(f, "eos_token_id", &eos_token_id);
    if (!use_sliding_window) sliding_window.reset();
    bool layer_types_ok = true;
    if (f.HasValue("layer_types")) {
      layer_types_ok = f.Get("layer_types", &layer_types);
    } else {
      layer_types.clear();
      for (int64_t i = 0; i < num_hidden_layers && i < kMaxComputedLayers; ++i) {
        layer_types.push_back(sliding_window.has_value() && i >= max_window_layers ? "sliding_attention"
                                                                                   : "full_attention");
      }
    }
    if (layer_types_ok) ValidateLayerTypes(f, layer_types, num_hidden_layers);
    rope_parameters = ReadRopeParameters(f, RopeDefaults{.rope_theta = default_rope_theta,
                                                         .max_position_embeddings = max_position_embeddings,
                                                         .mrope_means_default = mrope});
  }
};

}  // namespace spatialid::config
