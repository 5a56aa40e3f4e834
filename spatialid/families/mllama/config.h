// Llama 3.2 Vision (Mllama) configuration: a tiled ViT with local and gated
// global layers, and a Llama 3 text model with cross-attention layers
// interleaved at `cross_attention_layers`.
//
// Ports transformers 5.3.0 `MllamaConfig`, `MllamaVisionConfig` and
// `MllamaTextConfig` (models/mllama/configuration_mllama.py). Quirk kept:
// the vision config's head count is stored as `attention_heads` (written
// back under that name), read from `num_attention_heads` too; RoPE is
// usually llama3-scaled (`rope_scaling.rope_type = "llama3"`).
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(MllamaConfig cfg, LoadConfig<MllamaConfig>(model_dir));
//   const std::vector<int64_t>& xattn = cfg.text_config.cross_attention_layers;
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "spatialid/config/fields.h"
#include "spatialid/config/processor_config.h"
#include "spatialid/config/rope.h"
#include "spatialid/io/json_file.h"

namespace spatialid::families {

struct MllamaVisionConfig {
  using IsConfig = void;

  std::string model_type = "mllama_vision_model";
  int64_t hidden_size = 1280;
  std::string hidden_act = "gelu";
  int64_t num_hidden_layers = 32;
  int64_t num_global_layers = 8;
  int64_t attention_heads = 16;  // key num_attention_heads, or attention_heads (wins)
  int64_t num_channels = 3;
  int64_t intermediate_size = 5120;
  int64_t vision_output_dim = 7680;
  int64_t image_size = 448;
  int64_t patch_size = 14;
  double norm_eps = 1e-5;
  int64_t max_num_tiles = 4;
  std::vector<int64_t> intermediate_layers_indices = {3, 7, 15, 23, 30};
  // [rows, cols] tile layouts; aspect-ratio ids are 1-based indices into it.
  std::vector<std::vector<int64_t>> supported_aspect_ratios = {{1, 1}, {1, 2}, {1, 3}, {1, 4},
                                                               {2, 1}, {2, 2}, {3, 1}, {4, 1}};
  double initializer_range = 0.02;

  int64_t max_aspect_ratio_id() const { return static_cast<int64_t>(supported_aspect_ratios.size()); }

  template <class V>
  void VisitFields(V& v) {
    v.Derived("model_type", model_type);
    v("hidden_size", hidden_size);
    v("hidden_act", hidden_act);
    v("num_hidden_layers", num_hidden_layers);
    v("num_global_layers", num_global_layers);
    v.Derived("attention_heads", attention_heads);
    v("num_channels", num_channels);
    v("intermediate_size", intermediate_size);
    v("vision_output_dim", vision_output_dim);
    v("image_size", image_size);
    v("patch_size", patch_size);
    v("norm_eps", norm_eps);
    v("max_num_tiles", max_num_tiles);
    v.Derived("intermediate_layers_indices", intermediate_layers_indices);
    v.Derived("supported_aspect_ratios", supported_aspect_ratios);
    v("initializer_range", initializer_range);
  }
  void ResolveDefaults(io::JsonFields& f) {
    config::CheckModelType(f, {"mllama_vision_model"});
    f.Get("num_attention_heads", &attention_heads);
    f.Get("attention_heads", &attention_heads);
    if (f.HasValue("supported_aspect_ratios")) {
      f.Get("supported_aspect_ratios", &supported_aspect_ratios);
      for (const std::vector<int64_t>& r : supported_aspect_ratios) {
        if (r.size() != 2) {
          f.Fail("supported_aspect_ratios", "each entry must be [rows, cols]");
          break;
        }
      }
    } else if (max_num_tiles != 4) {
      f.Fail("supported_aspect_ratios",
             "required when max_num_tiles is not 4 (the default list is for 4 tiles)");
    }
    if (f.HasValue("intermediate_layers_indices")) {
      f.Get("intermediate_layers_indices", &intermediate_layers_indices);
    }
  }
};

struct MllamaTextConfig {
  using IsConfig = void;

  std::string model_type = "mllama_text_model";
  int64_t vocab_size = 128256;
  int64_t hidden_size = 4096;
  std::string hidden_act = "silu";
  int64_t num_hidden_layers = 40;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 8;
  int64_t intermediate_size = 14336;
  double rms_norm_eps = 1e-5;
  int64_t max_position_embeddings = 131072;
  double initializer_range = 0.02;
  bool use_cache = true;
  bool tie_word_embeddings = false;
  // Decoder layer indices that are cross-attention layers (into the image).
  std::vector<int64_t> cross_attention_layers = {3, 8, 13, 18, 23, 28, 33, 38};
  double dropout = 0;
  std::optional<int64_t> bos_token_id = 128000;
  std::vector<int64_t> eos_token_id = {128001};
  std::optional<int64_t> pad_token_id = 128004;
  config::RopeParameters rope_parameters;

  int64_t head_dim() const { return num_attention_heads > 0 ? hidden_size / num_attention_heads : 0; }

  template <class V>
  void VisitFields(V& v) {
    v.Derived("model_type", model_type);
    v("vocab_size", vocab_size);
    v("hidden_size", hidden_size);
    v("hidden_act", hidden_act);
    v("num_hidden_layers", num_hidden_layers);
    v("num_attention_heads", num_attention_heads);
    v("num_key_value_heads", num_key_value_heads);
    v("intermediate_size", intermediate_size);
    v("rms_norm_eps", rms_norm_eps);
    v("max_position_embeddings", max_position_embeddings);
    v("initializer_range", initializer_range);
    v("use_cache", use_cache);
    v("tie_word_embeddings", tie_word_embeddings);
    v.Derived("cross_attention_layers", cross_attention_layers);
    v("dropout", dropout);
    v("bos_token_id", bos_token_id);
    v.Derived("eos_token_id", eos_token_id);
    v("pad_token_id", pad_token_id);
    v.Derived("rope_parameters", rope_parameters);
  }
  void ResolveDefaults(io::JsonFields& f) {
    config::CheckModelType(f, {"mllama_text_model"});
    if (f.HasValue("cross_attention_layers")) f.Get("cross_attention_layers", &cross_attention_layers);
    config::ReadIntOrList(f, "eos_token_id", &eos_token_id);
    rope_parameters = config::ReadRopeParameters(
        f, config::RopeDefaults{.rope_theta = 500000.0, .max_position_embeddings = max_position_embeddings});
  }
};

struct MllamaConfig {
  using IsConfig = void;
  static constexpr char kModelType[] = "mllama";

  std::string model_type = kModelType;
  MllamaVisionConfig vision_config;
  MllamaTextConfig text_config;
  int64_t image_token_index = 128256;  // alias: image_token_id
  std::optional<std::string> dtype;

  template <class V>
  void VisitFields(V& v) {
    v.Derived("model_type", model_type);
    v("vision_config", vision_config);
    v("text_config", text_config);
    v("image_token_index", image_token_index);
    v.Derived("dtype", dtype);
  }
  void ResolveDefaults(io::JsonFields& f) {
    f.Get("image_token_id", &image_token_index);
    dtype = config::ReadDtype(f);
  }
};

// preprocessor_config.json of this family.
// Llama 3.2 Vision: aspect-ratio-preserving resize onto up to max_image_tiles
// tiles of size.height x size.width, padded.
struct MllamaImageProcessorConfig : config::CommonImageProcessorFields {
  using IsConfig = void;

  bool do_pad = true;
  int64_t max_image_tiles = 4;

  MllamaImageProcessorConfig() { UseBilinear224HalfNormalization(); }

  template <class V>
  void VisitFields(V& v) {
    VisitCommonFields(v);
    v("do_pad", do_pad);
    v("max_image_tiles", max_image_tiles);
  }
  void ResolveDefaults(io::JsonFields& f) {
    // MllamaImageProcessor keeps size as given (no get_size_dict), then
    // requires height and width.
    if (f.HasValue("size")) {
      io::JsonFields sf = f.Child("size");
      size = config::ReadConfig<config::ImageSizeDict>(sf);
    }
    config::ReadChannelValues(f, "image_mean", &image_mean);
    config::ReadChannelValues(f, "image_std", &image_std);
    if (do_resize && (!size.height || !size.width)) {
      f.Fail("size", "must contain height and width");
    }
    if (max_image_tiles <= 0) f.Fail("max_image_tiles", "must be positive");
    // transformers raises for this too: tiles are always padded to size.
    if (!do_pad) f.Fail("do_pad", "false is not supported by MllamaImageProcessor");
  }
};

}  // namespace spatialid::families
