// InternVL3 (-hf checkpoints) configuration: an InternViT vision tower, a
// pixel-shuffle projector and a Qwen2 text model.
//
// Ports transformers 5.3.0 `InternVLConfig` and `InternVLVisionConfig`
// (models/internvl/configuration_internvl.py) and `Qwen2Config`
// (models/qwen2/configuration_qwen2.py): same keys, nesting and defaults.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(InternVLConfig cfg, LoadConfig<InternVLConfig>(model_dir));
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "spatialid/config/fields.h"
#include "spatialid/config/processor_config.h"
#include "spatialid/config/qwen2_text.h"
#include "spatialid/config/rope.h"
#include "spatialid/io/json_file.h"

namespace spatialid::families {

struct InternVLVisionConfig {
  using IsConfig = void;

  std::string model_type = "internvl_vision";
  int64_t hidden_size = 1024;
  int64_t num_hidden_layers = 24;
  int64_t num_attention_heads = 16;
  bool attention_bias = false;
  bool use_qk_norm = false;
  int64_t intermediate_size = 4096;
  std::string hidden_act = "gelu";
  double hidden_dropout_prob = 0.0;
  double attention_dropout = 0.0;
  double projection_dropout = 0.0;
  double initializer_range = 0.02;
  std::string norm_type = "layer_norm";  // or "rms_norm"
  double layer_norm_eps = 1e-6;
  std::vector<int64_t> image_size = {448, 448};  // [height, width]; an int means square
  std::vector<int64_t> patch_size = {14, 14};
  int64_t num_channels = 3;
  bool use_mask_token = false;
  bool use_absolute_position_embeddings = true;
  double layer_scale_init_value = 0.1;
  bool use_mean_pooling = true;

  template <class V>
  void VisitFields(V& v) {
    v.Derived("model_type", model_type);
    v("hidden_size", hidden_size);
    v("num_hidden_layers", num_hidden_layers);
    v("num_attention_heads", num_attention_heads);
    v("attention_bias", attention_bias);
    v("use_qk_norm", use_qk_norm);
    v("intermediate_size", intermediate_size);
    v("hidden_act", hidden_act);
    v("hidden_dropout_prob", hidden_dropout_prob);
    v("attention_dropout", attention_dropout);
    v("projection_dropout", projection_dropout);
    v("initializer_range", initializer_range);
    v("norm_type", norm_type);
    v("layer_norm_eps", layer_norm_eps);
    v.Derived("image_size", image_size);
    v.Derived("patch_size", patch_size);
    v("num_channels", num_channels);
    v("use_mask_token", use_mask_token);
    v("use_absolute_position_embeddings", use_absolute_position_embeddings);
    v("layer_scale_init_value", layer_scale_init_value);
    v("use_mean_pooling", use_mean_pooling);
  }
  void ResolveDefaults(io::JsonFields& f) {
    config::CheckModelType(f, {"internvl_vision"});
    config::ReadIntOrPair(f, "image_size", &image_size);
    config::ReadIntOrPair(f, "patch_size", &patch_size);
  }
};

// transformers' Qwen2Config: its defaults, plus tie_word_embeddings.
struct Qwen2Config : config::Qwen2TextFields {
  using IsConfig = void;

  bool tie_word_embeddings = false;

  Qwen2Config() {
    model_type = "qwen2";
    vocab_size = 151936;
    hidden_size = 4096;
    intermediate_size = 22016;
    num_hidden_layers = 32;
    num_attention_heads = 32;
    num_key_value_heads = 32;
    rms_norm_eps = 1e-6;
    max_window_layers = 28;
  }

  template <class V>
  void VisitFields(V& v) {
    VisitQwen2TextFields(v);
    v("tie_word_embeddings", tie_word_embeddings);
  }
  void ResolveDefaults(io::JsonFields& f) {
    config::CheckModelType(f, {"qwen2"});
    ResolveQwen2Text(f, /*default_rope_theta=*/10000.0, /*mrope=*/false);
  }
};

struct InternVLConfig {
  using IsConfig = void;
  static constexpr char kModelType[] = "internvl";

  std::string model_type = kModelType;
  InternVLVisionConfig vision_config;
  Qwen2Config text_config;
  int64_t image_token_id = 151667;
  int64_t image_seq_length = 256;
  double downsample_ratio = 0.5;
  std::string projector_hidden_act = "gelu";
  std::vector<int64_t> vision_feature_layer = {-1};
  std::string vision_feature_select_strategy = "default";
  bool tie_word_embeddings = true;
  std::optional<std::string> dtype;

  template <class V>
  void VisitFields(V& v) {
    v.Derived("model_type", model_type);
    v("vision_config", vision_config);
    v("text_config", text_config);
    v("image_token_id", image_token_id);
    v("image_seq_length", image_seq_length);
    v("downsample_ratio", downsample_ratio);
    v("projector_hidden_act", projector_hidden_act);
    v.Derived("vision_feature_layer", vision_feature_layer);
    v("vision_feature_select_strategy", vision_feature_select_strategy);
    v("tie_word_embeddings", tie_word_embeddings);
    v.Derived("dtype", dtype);
  }
  void ResolveDefaults(io::JsonFields& f) {
    config::ReadIntOrList(f, "vision_feature_layer", &vision_feature_layer);
    dtype = config::ReadDtype(f);
  }
};

// preprocessor_config.json of this family.
// InternVL3: fixed-size resize, optionally tiled into up to max_patches crops.
struct GotOcr2ImageProcessorConfig : config::CommonImageProcessorFields {
  using IsConfig = void;

  bool crop_to_patches = false;
  int64_t min_patches = 1;
  int64_t max_patches = 12;

  GotOcr2ImageProcessorConfig() { size = config::ImageSizeDict::HeightWidth(384, 384); }

  template <class V>
  void VisitFields(V& v) {
    VisitCommonFields(v);
    v("crop_to_patches", crop_to_patches);
    v("min_patches", min_patches);
    v("max_patches", max_patches);
  }
  void ResolveDefaults(io::JsonFields& f) { ResolveCommon(f, /*size_default_to_square=*/true); }
};

}  // namespace spatialid::families
