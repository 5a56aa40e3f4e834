// Qwen2-VL and Qwen2.5-VL configuration: a windowed ViT with 2x2 patch
// merging and a Qwen2 text model with multimodal RoPE (mrope_section).
//
// Ports transformers 5.3.0 `Qwen2VLConfig` / `Qwen2VLVisionConfig` /
// `Qwen2VLTextConfig` (models/qwen2_vl/configuration_qwen2_vl.py) and the
// Qwen2_5_VL equivalents (models/qwen2_5_vl/configuration_qwen2_5_vl.py).
// The two families share the text config and the top-level layout, so they
// are one template instantiated twice; only the vision tower differs.
//
// Quirks kept from transformers: checkpoints written before the
// text_config/vision_config split keep the text fields at the top level
// (read from there when `text_config` is absent); `rope_scaling.type =
// "mrope"` means default RoPE with `mrope_section`; the RoPE default theta is
// 1,000,000.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(Qwen2_5_VLConfig cfg, LoadConfig<Qwen2_5_VLConfig>(model_dir));
//   const std::vector<int64_t>& sections = *cfg.text_config.rope_parameters.mrope_section;
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

struct Qwen2VLVisionConfig {
  using IsConfig = void;

  std::string model_type = "qwen2_vl";
  int64_t depth = 32;
  int64_t embed_dim = 1280;
  int64_t hidden_size = 3584;  // the merger's output width (= text hidden size)
  std::string hidden_act = "quick_gelu";
  double mlp_ratio = 4;
  int64_t num_heads = 16;
  int64_t in_channels = 3;
  int64_t patch_size = 14;
  int64_t spatial_merge_size = 2;
  int64_t temporal_patch_size = 2;
  double initializer_range = 0.02;

  template <class V>
  void VisitFields(V& v) {
    v.Derived("model_type", model_type);
    v("depth", depth);
    v("embed_dim", embed_dim);
    v("hidden_size", hidden_size);
    v("hidden_act", hidden_act);
    v("mlp_ratio", mlp_ratio);
    v("num_heads", num_heads);
    v("in_channels", in_channels);
    v("patch_size", patch_size);
    v("spatial_merge_size", spatial_merge_size);
    v("temporal_patch_size", temporal_patch_size);
    v("initializer_range", initializer_range);
  }
  void ResolveDefaults(io::JsonFields& f) { config::CheckModelType(f, {"qwen2_vl"}); }
};

struct Qwen2_5_VLVisionConfig {
  using IsConfig = void;

  std::string model_type = "qwen2_5_vl";
  int64_t depth = 32;
  int64_t hidden_size = 3584;
  std::string hidden_act = "silu";
  int64_t intermediate_size = 3420;
  int64_t num_heads = 16;
  int64_t in_channels = 3;
  int64_t patch_size = 14;
  int64_t spatial_merge_size = 2;
  int64_t temporal_patch_size = 2;
  int64_t tokens_per_second = 4;
  int64_t window_size = 112;
  int64_t out_hidden_size = 3584;
  std::vector<int64_t> fullatt_block_indexes = {7, 15, 23, 31};
  double initializer_range = 0.02;

  template <class V>
  void VisitFields(V& v) {
    v.Derived("model_type", model_type);
    v("depth", depth);
    v("hidden_size", hidden_size);
    v("hidden_act", hidden_act);
    v("intermediate_size", intermediate_size);
    v("num_heads", num_heads);
    v("in_channels", in_channels);
    v("patch_size", patch_size);
    v("spatial_merge_size", spatial_merge_size);
    v("temporal_patch_size", temporal_patch_size);
    v("tokens_per_second", tokens_per_second);
    v("window_size", window_size);
    v("out_hidden_size", out_hidden_size);
    v("fullatt_block_indexes", fullatt_block_indexes);
    v("initializer_range", initializer_range);
  }
  void ResolveDefaults(io::JsonFields& f) { config::CheckModelType(f, {"qwen2_5_vl"}); }
};

// Qwen2VLTextConfig and Qwen2_5_VLTextConfig (identical but for model_type).
template <const char* kTextModelType>
struct Qwen2VLTextConfigT : config::Qwen2TextFields {
  using IsConfig = void;

  Qwen2VLTextConfigT() {
    model_type = kTextModelType;
    vocab_size = 152064;
    hidden_size = 8192;
    intermediate_size = 29568;
    num_hidden_layers = 80;
    num_attention_heads = 64;
    num_key_value_heads = 8;
    rms_norm_eps = 1e-5;
    max_window_layers = 80;
    bos_token_id = 151643;
    eos_token_id = {151645};
  }

  template <class V>
  void VisitFields(V& v) {
    VisitQwen2TextFields(v);
  }
  void ResolveDefaults(io::JsonFields& f) {
    // Read from the top level of old checkpoints, whose model_type is the
    // composite's; only a real text_config object names its own.
    if (!f.path().empty()) config::CheckModelType(f, {kTextModelType});
    ResolveQwen2Text(f, /*default_rope_theta=*/1000000.0, /*mrope=*/true);
  }
};

inline constexpr char kQwen2VLTextModelType[] = "qwen2_vl_text";
inline constexpr char kQwen2_5_VLTextModelType[] = "qwen2_5_vl_text";
using Qwen2VLTextConfig = Qwen2VLTextConfigT<kQwen2VLTextModelType>;
using Qwen2_5_VLTextConfig = Qwen2VLTextConfigT<kQwen2_5_VLTextModelType>;

// Qwen2VLConfig and Qwen2_5_VLConfig.
template <const char* kType, class VisionConfig, class TextConfig>
struct Qwen2VLFamilyConfig {
  using IsConfig = void;
  static constexpr const char* kModelType = kType;

  std::string model_type = kType;
  VisionConfig vision_config;
  TextConfig text_config;
  int64_t image_token_id = 151655;
  int64_t video_token_id = 151656;
  int64_t vision_start_token_id = 151652;
  int64_t vision_end_token_id = 151653;
  bool tie_word_embeddings = false;
  std::optional<std::string> dtype;

  template <class V>
  void VisitFields(V& v) {
    v.Derived("model_type", model_type);
    v("vision_config", vision_config);
    v.Derived("text_config", text_config);
    v("image_token_id", image_token_id);
    v("video_token_id", video_token_id);
    v("vision_start_token_id", vision_start_token_id);
    v("vision_end_token_id", vision_end_token_id);
    v("tie_word_embeddings", tie_word_embeddings);
    v.Derived("dtype", dtype);
  }
  void ResolveDefaults(io::JsonFields& f) {
    if (f.HasValue("text_config")) {
      io::JsonFields tf = f.Child("text_config");
      text_config = config::ReadConfig<TextConfig>(tf);
    } else {
      text_config = config::ReadConfig<TextConfig>(f);
    }
    dtype = config::ReadDtype(f);
  }
};

inline constexpr char kQwen2VLModelType[] = "qwen2_vl";
inline constexpr char kQwen2_5_VLModelType[] = "qwen2_5_vl";
using Qwen2VLConfig = Qwen2VLFamilyConfig<kQwen2VLModelType, Qwen2VLVisionConfig, Qwen2VLTextConfig>;
using Qwen2_5_VLConfig =
    Qwen2VLFamilyConfig<kQwen2_5_VLModelType, Qwen2_5_VLVisionConfig, Qwen2_5_VLTextConfig>;

// preprocessor_config.json of this family.
// Qwen2-VL / Qwen2.5-VL: "smart resize" to a pixel budget, multiples of
// patch_size * merge_size. min_pixels / max_pixels override size's
// shortest_edge / longest_edge (which hold pixel counts, not lengths).
struct Qwen2VLImageProcessorConfig : config::CommonImageProcessorFields {
  using IsConfig = void;

  int64_t min_pixels = 56 * 56;
  int64_t max_pixels = 28 * 28 * 1280;
  int64_t patch_size = 14;
  int64_t temporal_patch_size = 2;
  int64_t merge_size = 2;

  template <class V>
  void VisitFields(V& v) {
    VisitCommonFields(v);
    v.Derived("min_pixels", min_pixels);
    v.Derived("max_pixels", max_pixels);
    v("patch_size", patch_size);
    v("temporal_patch_size", temporal_patch_size);
    v("merge_size", merge_size);
  }
  void ResolveDefaults(io::JsonFields& f) {
    ResolveCommon(f, /*size_default_to_square=*/true);
    if (f.HasValue("size")) {
      if (!size.shortest_edge || !size.longest_edge) {
        f.Fail("size", "must contain shortest_edge and longest_edge");
        return;
      }
    } else {
      size = config::ImageSizeDict();
      size.shortest_edge = 56 * 56;
      size.longest_edge = 28 * 28 * 1280;
    }
    std::optional<int64_t> lo, hi;
    f.Get("min_pixels", &lo);
    f.Get("max_pixels", &hi);
    if (lo) size.shortest_edge = *lo;
    if (hi) size.longest_edge = *hi;
    min_pixels = *size.shortest_edge;
    max_pixels = *size.longest_edge;
  }
};

}  // namespace spatialid::families
