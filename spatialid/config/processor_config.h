// Image preprocessing settings from `preprocessor_config.json`, one struct
// per transformers image processor our families use.
//
// Each struct ports the `__init__` defaults of its transformers 5.3.0 class:
// `CLIPImageProcessor` (LLaVA), `GotOcr2ImageProcessor` (InternVL),
// `Qwen2VLImageProcessor` (Qwen2-VL and Qwen2.5-VL), `Gemma3ImageProcessor`
// and `MllamaImageProcessor`. `size` and `crop_size` follow
// `get_size_dict`: an int means a square (or, for CLIP's size, the shortest
// edge), a list means [height, width], a dict must use one of the key sets
// transformers accepts. `resample` is PIL's filter number (2 bilinear,
// 3 bicubic). A scalar image_mean/image_std applies to all three channels.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(auto pp, LoadProcessorConfig<Qwen2VLImageProcessorConfig>(model_dir));
//   int64_t max_pixels = pp.max_pixels;
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spatialid/config/fields.h"
#include "spatialid/io/json_file.h"

namespace spatialid::config {

// PIL resampling filter numbers as stored in preprocessor_config.json.
inline constexpr int64_t kResampleNearest = 0;
inline constexpr int64_t kResampleLanczos = 1;
inline constexpr int64_t kResampleBilinear = 2;
inline constexpr int64_t kResampleBicubic = 3;

inline const std::vector<double> kOpenAiClipMean = {0.48145466, 0.4578275, 0.40821073};
inline const std::vector<double> kOpenAiClipStd = {0.26862954, 0.26130258, 0.27577711};
inline const std::vector<double> kImageNetStandardMean = {0.5, 0.5, 0.5};
inline const std::vector<double> kImageNetStandardStd = {0.5, 0.5, 0.5};

// A transformers size dict; exactly one of its valid key sets is present.
struct ImageSizeDict {
  using IsConfig = void;

  std::optional<int64_t> height;
  std::optional<int64_t> width;
  std::optional<int64_t> shortest_edge;
  std::optional<int64_t> longest_edge;
  std::optional<int64_t> max_height;
  std::optional<int64_t> max_width;

  static ImageSizeDict HeightWidth(int64_t h, int64_t w) {
    ImageSizeDict s;
    s.height = h;
    s.width = w;
    return s;
  }
  static ImageSizeDict ShortestEdge(int64_t e) {
    ImageSizeDict s;
    s.shortest_edge = e;
    return s;
  }

  template <class V>
  void VisitFields(V& v) {
    v("height", height);
    v("width", width);
    v("shortest_edge", shortest_edge);
    v("longest_edge", longest_edge);
    v("max_height", max_height);
    v("max_width", max_width);
  }
};

// transformers' get_size_dict: reads `key` if present into `*out`.
inline void ReadSizeDict(io::JsonFields& f, std::string_view key, bool default_to_square,
                         ImageSizeDict* out) {
  const nlohmann::json* v = f.Find(key);
  if (v == nullptr || v->is_null()) return;
  if (v->is_object()) {
    io::JsonFields sf = f.Child(key);
    ImageSizeDict s = ReadConfig<ImageSizeDict>(sf);
    std::set<std::string> keys;
    for (auto it = v->begin(); it != v->end(); ++it) keys.insert(it.key());
    const std::set<std::set<std::string>> valid = {{"height", "width"},
                                                   {"shortest_edge"},
                                                   {"shortest_edge", "longest_edge"},
                                                   {"longest_edge"},
                                                   {"max_height", "max_width"}};
    if (valid.count(keys) == 0) {
      f.Fail(key, absl::StrCat("keys {", absl::StrJoin(keys, ", "),
                               "} are not one of {height, width}, {shortest_edge}, "
                               "{shortest_edge, longest_edge}, {longest_edge}, {max_height, max_width}"));
      return;
    }
    *out = s;
  } else if (v->is_array()) {
    std::vector<int64_t> hw;
    if (!f.Get(key, &hw)) return;
    if (hw.size() != 2) {
      f.Fail(key, "expected [height, width]");
      return;
    }
    *out = ImageSizeDict::HeightWidth(hw[0], hw[1]);
  } else {
    int64_t n = 0;
    if (!f.Get(key, &n)) return;
    *out = default_to_square ? ImageSizeDict::HeightWidth(n, n) : ImageSizeDict::ShortestEdge(n);
  }
}

// image_mean / image_std: a list, or one number for every channel.
inline void ReadChannelValues(io::JsonFields& f, std::string_view key, std::vector<double>* out) {
  const nlohmann::json* v = f.Find(key);
  if (v == nullptr || v->is_null()) return;
  if (v->is_array()) {
    f.Get(key, out);
  } else {
    double x = 0;
    if (f.Get(key, &x)) *out = {x, x, x};
  }
}

// Fields every image processor here shares, with BaseImageProcessor names.
// The owning struct sets the class's defaults before reading.
struct CommonImageProcessorFields {
  std::optional<std::string> image_processor_type;
  bool do_resize = true;
  ImageSizeDict size;
  int64_t resample = kResampleBicubic;
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  std::vector<double> image_mean = kOpenAiClipMean;
  std::vector<double> image_std = kOpenAiClipStd;
  std::optional<bool> do_convert_rgb = true;

  template <class V>
  void VisitCommonFields(V& v) {
    v("image_processor_type", image_processor_type);
    v("do_resize", do_resize);
    v.Derived("size", size);
    v("resample", resample);
    v("do_rescale", do_rescale);
    v("rescale_factor", rescale_factor);
    v("do_normalize", do_normalize);
    v.Derived("image_mean", image_mean);
    v.Derived("image_std", image_std);
    v("do_convert_rgb", do_convert_rgb);
  }
  // The defaults Gemma3ImageProcessor and MllamaImageProcessor share: 224x224,
  // bilinear, IMAGENET_STANDARD mean/std (0.5).
  void UseBilinear224HalfNormalization() {
    size = ImageSizeDict::HeightWidth(224, 224);
    resample = kResampleBilinear;
    image_mean = kImageNetStandardMean;
    image_std = kImageNetStandardStd;
  }
  void ResolveCommon(io::JsonFields& f, bool size_default_to_square) {
    ReadSizeDict(f, "size", size_default_to_square, &size);
    ReadChannelValues(f, "image_mean", &image_mean);
    ReadChannelValues(f, "image_std", &image_std);
  }
};

// LLaVA-1.5: resize the shortest edge, centre-crop, normalise with CLIP stats.
struct CLIPImageProcessorConfig : CommonImageProcessorFields {
  using IsConfig = void;

  bool do_center_crop = true;
  ImageSizeDict crop_size = ImageSizeDict::HeightWidth(224, 224);

  CLIPImageProcessorConfig() { size = ImageSizeDict::ShortestEdge(224); }

  template <class V>
  void VisitFields(V& v) {
    VisitCommonFields(v);
    v("do_center_crop", do_center_crop);
    v.Derived("crop_size", crop_size);
  }
  void ResolveDefaults(io::JsonFields& f) {
    ResolveCommon(f, /*size_default_to_square=*/false);
    ReadSizeDict(f, "crop_size", /*default_to_square=*/true, &crop_size);
  }
};

// InternVL3: fixed-size resize, optionally tiled into up to max_patches crops.
struct GotOcr2ImageProcessorConfig : CommonImageProcessorFields {
  using IsConfig = void;

  bool crop_to_patches = false;
  int64_t min_patches = 1;
  int64_t max_patches = 12;

  GotOcr2ImageProcessorConfig() { size = ImageSizeDict::HeightWidth(384, 384); }

  template <class V>
  void VisitFields(V& v) {
    VisitCommonFields(v);
    v("crop_to_patches", crop_to_patches);
    v("min_patches", min_patches);
    v("max_patches", max_patches);
  }
  void ResolveDefaults(io::JsonFields& f) { ResolveCommon(f, /*size_default_to_square=*/true); }
};

// Qwen2-VL / Qwen2.5-VL: "smart resize" to a pixel budget, multiples of
// patch_size * merge_size. min_pixels / max_pixels override size's
// shortest_edge / longest_edge (which hold pixel counts, not lengths).
struct Qwen2VLImageProcessorConfig : CommonImageProcessorFields {
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
      size = ImageSizeDict();
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

// Gemma 3: square resize to the SigLIP resolution; optional pan-and-scan crops.
struct Gemma3ImageProcessorConfig : CommonImageProcessorFields {
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

// Llama 3.2 Vision: aspect-ratio-preserving resize onto up to max_image_tiles
// tiles of size.height x size.width, padded.
struct MllamaImageProcessorConfig : CommonImageProcessorFields {
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
      size = ReadConfig<ImageSizeDict>(sf);
    }
    ReadChannelValues(f, "image_mean", &image_mean);
    ReadChannelValues(f, "image_std", &image_std);
    if (do_resize && (!size.height || !size.width)) {
      f.Fail("size", "must contain height and width");
    }
    if (max_image_tiles <= 0) f.Fail("max_image_tiles", "must be positive");
    // transformers raises for this too: tiles are always padded to size.
    if (!do_pad) f.Fail("do_pad", "false is not supported by MllamaImageProcessor");
  }
};

// Parses a preprocessor_config.json object as T. `file` names it in errors.
template <ConfigStruct T>
absl::StatusOr<T> ParseProcessorConfigJson(const nlohmann::json& json, const std::string& file) {
  io::JsonFields f(json, file);
  if (!f.ok()) return f.status();
  T cfg = ReadConfig<T>(f);
  if (!f.ok()) return f.status();
  return cfg;
}

// Reads `path` (a preprocessor_config.json, or a model folder holding one) as T.
template <ConfigStruct T>
absl::StatusOr<T> LoadProcessorConfig(const std::string& path) {
  const std::string file = JsonPathIn(path, "preprocessor_config.json");
  absl::StatusOr<nlohmann::json> json = io::ReadJsonFile(file);
  if (!json.ok()) return json.status();
  return ParseProcessorConfigJson<T>(*json, file);
}

}  // namespace spatialid::config
