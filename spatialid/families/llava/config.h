// LLaVA-1.5 configuration: a CLIP vision tower, a two-layer projector and a
// Llama text model, as `config.json` of llava-hf checkpoints spells it.
//
// Ports transformers 5.3.0 `LlavaConfig` (models/llava/configuration_llava.py),
// `CLIPVisionConfig` (models/clip/configuration_clip.py) and `LlamaConfig`
// (models/llama/configuration_llama.py): same keys, same nesting
// (`vision_config`, `text_config`), same defaults when a key is absent,
// including LlavaConfig's own default vision tower (CLIP ViT-L/14-336) when
// `vision_config` is missing altogether.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(LlavaConfig cfg, LoadConfig<LlavaConfig>(model_dir));
//   int64_t layers = cfg.text_config.num_hidden_layers;
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "spatialid/config/fields.h"
#include "spatialid/config/rope.h"
#include "spatialid/io/json_file.h"

namespace spatialid::families {

struct CLIPVisionConfig {
  using IsConfig = void;

  std::string model_type = "clip_vision_model";
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t projection_dim = 512;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t num_channels = 3;
  int64_t image_size = 224;
  int64_t patch_size = 32;
  std::string hidden_act = "quick_gelu";
  double layer_norm_eps = 1e-5;
  double attention_dropout = 0.0;
  double initializer_range = 0.02;
  double initializer_factor = 1.0;

  template <class V>
  void VisitFields(V& v) {
    v.Derived("model_type", model_type);
    v("hidden_size", hidden_size);
    v("intermediate_size", intermediate_size);
    v("projection_dim", projection_dim);
    v("num_hidden_layers", num_hidden_layers);
    v("num_attention_heads", num_attention_heads);
    v("num_channels", num_channels);
    v("image_size", image_size);
    v("patch_size", patch_size);
    v("hidden_act", hidden_act);
    v("layer_norm_eps", layer_norm_eps);
    v("attention_dropout", attention_dropout);
    v("initializer_range", initializer_range);
    v("initializer_factor", initializer_factor);
  }
  void ResolveDefaults(io::JsonFields& f) { config::CheckModelType(f, {"clip_vision_model"}); }
};

struct LlamaConfig {
  using IsConfig = void;

  std::string model_type = "llama";
  int64_t vocab_size = 32000;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 11008;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 0;  // absent or null: num_attention_heads
  std::string hidden_act = "silu";
  int64_t max_position_embeddings = 2048;
  double initializer_range = 0.02;
  double rms_norm_eps = 1e-6;
  bool use_cache = true;
  std::optional<int64_t> pad_token_id;
  std::optional<int64_t> bos_token_id = 1;
  std::vector<int64_t> eos_token_id = {2};
  int64_t pretraining_tp = 1;
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  double attention_dropout = 0.0;
  bool mlp_bias = false;
  int64_t head_dim = 0;  // absent or null: hidden_size / num_attention_heads
  config::RopeParameters rope_parameters;

  template <class V>
  void VisitFields(V& v) {
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
    v("pad_token_id", pad_token_id);
    v("bos_token_id", bos_token_id);
    v.Derived("eos_token_id", eos_token_id);
    v("pretraining_tp", pretraining_tp);
    v("tie_word_embeddings", tie_word_embeddings);
    v("attention_bias", attention_bias);
    v("attention_dropout", attention_dropout);
    v("mlp_bias", mlp_bias);
    v.Derived("head_dim", head_dim);
    v.Derived("rope_parameters", rope_parameters);
  }

  void ResolveDefaults(io::JsonFields& f) {
    config::CheckModelType(f, {"llama"});
    std::optional<int64_t> kv, hd;
    f.Get("num_key_value_heads", &kv);
    num_key_value_heads = kv.value_or(num_attention_heads);
    f.Get("head_dim", &hd);
    if (hd) {
      head_dim = *hd;
    } else if (num_attention_heads > 0) {
      head_dim = hidden_size / num_attention_heads;
    } else {
      f.Fail("num_attention_heads", "must be positive");
    }
    config::ReadIntOrList(f, "eos_token_id", &eos_token_id);
    rope_parameters = config::ReadRopeParameters(
        f, config::RopeDefaults{.rope_theta = 10000.0, .max_position_embeddings = max_position_embeddings});
  }
};

struct LlavaConfig {
  using IsConfig = void;
  static constexpr char kModelType[] = "llava";

  std::string model_type = kModelType;
  // LlavaConfig's default tower when vision_config is absent (CLIP ViT-L/14-336).
  CLIPVisionConfig vision_config = [] {
    CLIPVisionConfig c;
    c.intermediate_size = 4096;
    c.hidden_size = 1024;
    c.patch_size = 14;
    c.image_size = 336;
    c.num_hidden_layers = 24;
    c.num_attention_heads = 16;
    c.projection_dim = 768;
    return c;
  }();
  LlamaConfig text_config;
  int64_t image_token_index = 32000;  // alias: image_token_id
  std::string projector_hidden_act = "gelu";
  std::string vision_feature_select_strategy = "default";  // or "full"
  // One layer index, or several whose features are concatenated.
  std::vector<int64_t> vision_feature_layer = {-2};
  int64_t image_seq_length = 576;
  bool multimodal_projector_bias = true;
  bool tie_word_embeddings = false;
  std::optional<std::string> dtype;

  template <class V>
  void VisitFields(V& v) {
    v.Derived("model_type", model_type);
    v.Derived("vision_config", vision_config);
    v("text_config", text_config);
    v("image_token_index", image_token_index);
    v("projector_hidden_act", projector_hidden_act);
    v("vision_feature_select_strategy", vision_feature_select_strategy);
    v.Derived("vision_feature_layer", vision_feature_layer);
    v("image_seq_length", image_seq_length);
    v("multimodal_projector_bias", multimodal_projector_bias);
    v("tie_word_embeddings", tie_word_embeddings);
    v.Derived("dtype", dtype);
  }

  void ResolveDefaults(io::JsonFields& f) {
    if (f.HasValue("vision_config")) {
      io::JsonFields vf = f.Child("vision_config");
      vision_config = config::ReadConfig<CLIPVisionConfig>(vf);
    }
    f.Get("image_token_id", &image_token_index);
    config::ReadIntOrList(f, "vision_feature_layer", &vision_feature_layer);
    if (vision_feature_select_strategy != "default" && vision_feature_select_strategy != "full") {
      f.Fail("vision_feature_select_strategy",
             "expected \"default\" or \"full\", got \"" + vision_feature_select_strategy + "\"");
    }
    if (!tie_word_embeddings && text_config.tie_word_embeddings) tie_word_embeddings = true;
    dtype = config::ReadDtype(f);
  }
};

}  // namespace spatialid::families
