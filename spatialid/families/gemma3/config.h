// Gemma 3 (vision) configuration: a SigLIP vision tower, an average-pooling
// projector to mm_tokens_per_image soft tokens, and a Gemma 3 text model
// that interleaves sliding-window and global attention layers with separate
// RoPE settings.
//
// Ports transformers 5.3.0 `Gemma3Config` / `Gemma3TextConfig`
// (models/gemma3/configuration_gemma3.py) and `SiglipVisionConfig`
// (models/siglip/configuration_siglip.py). Layer kinds come from
// `layer_types`, else from `sliding_window_pattern` (every n-th layer is
// global); RoPE comes per kind from `rope_parameters`, or from the legacy
// `rope_theta` (global layers), `rope_local_base_freq` (sliding layers) and
// `rope_scaling` (global layers only).
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(Gemma3Config cfg, LoadConfig<Gemma3Config>(model_dir));
//   bool global = cfg.text_config.layer_types[i] == "full_attention";
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "spatialid/config/fields.h"
#include "spatialid/config/processor_config.h"
#include "spatialid/config/rope.h"
#include "spatialid/io/json_file.h"

namespace spatialid::families {

struct SiglipVisionConfig {
  using IsConfig = void;

  std::string model_type = "siglip_vision_model";
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t num_channels = 3;
  int64_t image_size = 224;
  int64_t patch_size = 16;
  std::string hidden_act = "gelu_pytorch_tanh";
  double layer_norm_eps = 1e-6;
  double attention_dropout = 0.0;

  template <class V>
  void VisitFields(V& v) {
    v.Derived("model_type", model_type);
    v("hidden_size", hidden_size);
    v("intermediate_size", intermediate_size);
    v("num_hidden_layers", num_hidden_layers);
    v("num_attention_heads", num_attention_heads);
    v("num_channels", num_channels);
    v("image_size", image_size);
    v("patch_size", patch_size);
    v("hidden_act", hidden_act);
    v("layer_norm_eps", layer_norm_eps);
    v("attention_dropout", attention_dropout);
  }
  void ResolveDefaults(io::JsonFields& f) { config::CheckModelType(f, {"siglip_vision_model"}); }
};

struct Gemma3TextConfig {
  using IsConfig = void;

  std::string model_type = "gemma3_text";
  int64_t vocab_size = 262208;
  int64_t hidden_size = 2304;
  int64_t intermediate_size = 9216;
  int64_t num_hidden_layers = 26;
  int64_t num_attention_heads = 8;
  int64_t num_key_value_heads = 4;
  int64_t head_dim = 256;
  std::string hidden_activation = "gelu_pytorch_tanh";
  int64_t max_position_embeddings = 131072;
  double initializer_range = 0.02;
  double rms_norm_eps = 1e-6;
  bool use_cache = true;
  std::optional<int64_t> pad_token_id = 0;
  std::vector<int64_t> eos_token_id = {1};
  std::optional<int64_t> bos_token_id = 2;
  bool attention_bias = false;
  double attention_dropout = 0.0;
  // Attention scores are scaled by query_pre_attn_scalar^-0.5.
  std::optional<double> query_pre_attn_scalar = 256;
  std::optional<int64_t> sliding_window = 4096;
  // Every sliding_window_pattern-th layer is global (used when layer_types is absent).
  int64_t sliding_window_pattern = 6;
  std::vector<std::string> layer_types;
  std::optional<double> final_logit_softcapping;
  std::optional<double> attn_logit_softcapping;
  bool use_bidirectional_attention = false;
  bool tie_word_embeddings = true;
  // "full_attention" and "sliding_attention" settings.
  std::map<std::string, config::RopeParameters> rope_parameters;

  // The base frequency of the sliding (local) layers' RoPE.
  double rope_local_base_freq() const { return rope_parameters.at("sliding_attention").rope_theta; }

  template <class V>
  void VisitFields(V& v) {
    v.Derived("model_type", model_type);
    v("vocab_size", vocab_size);
    v("hidden_size", hidden_size);
    v("intermediate_size", intermediate_size);
    v("num_hidden_layers", num_hidden_layers);
    v("num_attention_heads", num_attention_heads);
    v("num_key_value_heads", num_key_value_heads);
    v("head_dim", head_dim);
    v("hidden_activation", hidden_activation);
    v("max_position_embeddings", max_position_embeddings);
    v("initializer_range", initializer_range);
    v("rms_norm_eps", rms_norm_eps);
    v("use_cache", use_cache);
    v("pad_token_id", pad_token_id);
    v.Derived("eos_token_id", eos_token_id);
    v("bos_token_id", bos_token_id);
    v("attention_bias", attention_bias);
    v("attention_dropout", attention_dropout);
    v("query_pre_attn_scalar", query_pre_attn_scalar);
    v("sliding_window", sliding_window);
    v("sliding_window_pattern", sliding_window_pattern);
    v.Derived("layer_types", layer_types);
    v("final_logit_softcapping", final_logit_softcapping);
    v("attn_logit_softcapping", attn_logit_softcapping);
    v("use_bidirectional_attention", use_bidirectional_attention);
    v("tie_word_embeddings", tie_word_embeddings);
    v.Derived("rope_parameters", rope_parameters);
  }

  void ResolveDefaults(io::JsonFields& f) {
    config::CheckModelType(f, {"gemma3_text"});
    config::ReadIntOrList(f, "eos_token_id", &eos_token_id);
    if (use_bidirectional_attention && sliding_window) *sliding_window = *sliding_window / 2 + 1;
    bool layer_types_ok = true;
    if (f.HasValue("layer_types")) {
      layer_types_ok = f.Get("layer_types", &layer_types);
    } else if (sliding_window_pattern <= 0) {
      f.Fail("sliding_window_pattern", "must be positive");
    } else {
      layer_types.clear();
      for (int64_t i = 0; i < num_hidden_layers && i < config::kMaxComputedLayers; ++i) {
        layer_types.push_back((i + 1) % sliding_window_pattern ? "sliding_attention"
                                                               : "full_attention");
      }
    }
    if (layer_types_ok) config::ValidateLayerTypes(f, layer_types, num_hidden_layers);
    rope_parameters = config::ReadPerLayerTypeRope(f, /*full_theta=*/1000000.0, /*sliding_theta=*/10000.0,
                                           max_position_embeddings);
  }
};

struct Gemma3Config {
  using IsConfig = void;
  static constexpr char kModelType[] = "gemma3";

  std::string model_type = kModelType;
  Gemma3TextConfig text_config;
  SiglipVisionConfig vision_config;
  int64_t mm_tokens_per_image = 256;
  int64_t boi_token_index = 255999;    // alias: boi_token_id
  int64_t eoi_token_index = 256000;    // alias: eoi_token_id
  int64_t image_token_index = 262144;  // alias: image_token_id
  double initializer_range = 0.02;
  bool tie_word_embeddings = true;
  std::optional<std::string> dtype;

  template <class V>
  void VisitFields(V& v) {
    v.Derived("model_type", model_type);
    v("text_config", text_config);
    v("vision_config", vision_config);
    v("mm_tokens_per_image", mm_tokens_per_image);
    v("boi_token_index", boi_token_index);
    v("eoi_token_index", eoi_token_index);
    v("image_token_index", image_token_index);
    v("initializer_range", initializer_range);
    v("tie_word_embeddings", tie_word_embeddings);
    v.Derived("dtype", dtype);
  }
  void ResolveDefaults(io::JsonFields& f) {
    f.Get("boi_token_id", &boi_token_index);
    f.Get("eoi_token_id", &eoi_token_index);
    f.Get("image_token_id", &image_token_index);
    dtype = config::ReadDtype(f);
  }
};

// preprocessor_config.json of this family.
// Gemma 3: square resize to the SigLIP resolution; optional pan-and-scan crops.
struct Gemma3ImageProcessorConfig : config::CommonImageProcessorFields {
  using IsConfig = void;

  std::optional<bool> do_pan_and_scan;
  std::optional<int64_t> pan_and_scan_min_crop_size;
  std::optional<int64_t> pan_and_scan_max_num_crops;
  std::optional<double> pan_and_scan_min_ratio_to_activate;

  Gemma3ImageProcessorConfig() { UseBilinear224HalfNormalization(); }

  template <class V>
  void VisitFields(V& v) {
    VisitCommonFields(v);
    v("do_pan_and_scan", do_pan_and_scan);
    v("pan_and_scan_min_crop_size", pan_and_scan_min_crop_size);
    v("pan_and_scan_max_num_crops", pan_and_scan_max_num_crops);
    v("pan_and_scan_min_ratio_to_activate", pan_and_scan_min_ratio_to_activate);
  }
  void ResolveDefaults(io::JsonFields& f) { ResolveCommon(f, /*size_default_to_square=*/true); }
};

}  // namespace spatialid::families
