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
