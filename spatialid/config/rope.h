// Rotary position embedding settings, read the way transformers 5 reads them.
//
// Checkpoints spell RoPE settings two ways. Files written by transformers 4
// have a top-level `rope_theta` and an optional `rope_scaling` object (with
// `type` or `rope_type`); transformers 5 folds both into one
// `rope_parameters` object (`PreTrainedConfig.convert_rope_params_to_dict`,
// `standardize_rope_params` in modeling_rope_utils.py). `ReadRopeParameters`
// accepts either and yields the v5 form: `rope_scaling` wins over
// `rope_parameters` when both are non-empty, `rope_theta` comes from the
// object, else the top-level key, else the family's default, and the scaled
// types that need `original_max_position_embeddings` default it to
// `max_position_embeddings`. Gemma 3 keeps one set per attention kind
// (`ReadPerLayerTypeRope`).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spatialid/config/fields.h"
#include "spatialid/io/json_file.h"

namespace spatialid::config {

struct RopeParameters {
  using IsConfig = void;

  // "default", "linear", "dynamic", "yarn", "longrope" or "llama3".
  std::string rope_type = "default";
  double rope_theta = 10000.0;
  std::optional<double> factor;
  std::optional<double> partial_rotary_factor;
  std::optional<int64_t> original_max_position_embeddings;
  std::optional<double> attention_factor;
  std::optional<double> beta_fast;
  std::optional<double> beta_slow;
  std::optional<std::vector<double>> short_factor;
  std::optional<std::vector<double>> long_factor;
  std::optional<double> low_freq_factor;
  std::optional<double> high_freq_factor;
  // Qwen2-VL / Qwen2.5-VL multimodal RoPE: rotary dims per (t, h, w) section.
  std::optional<std::vector<int64_t>> mrope_section;

  template <class V>
  void VisitFields(V& v) {
    v.Derived("rope_type", rope_type);
    v.Derived("rope_theta", rope_theta);
    v("factor", factor);
    v("partial_rotary_factor", partial_rotary_factor);
    v("original_max_position_embeddings", original_max_position_embeddings);
    v("attention_factor", attention_factor);
    v("beta_fast", beta_fast);
    v("beta_slow", beta_slow);
    v("short_factor", short_factor);
    v("long_factor", long_factor);
    v("low_freq_factor", low_freq_factor);
    v("high_freq_factor", high_freq_factor);
    v("mrope_section", mrope_section);
  }
};

// How a family's text config resolves RoPE settings.
struct RopeDefaults {
  double rope_theta = 10000.0;
  int64_t max_position_embeddings = 2048;
  // Qwen2-VL's text configs store rope_type "mrope" and treat it as "default".
  bool mrope_means_default = false;
};

namespace internal {

// Reads one RoPE object `obj` (already merged from its sources) reported
// under `path`. `theta_fallback` is used when the object lacks rope_theta.
inline RopeParameters ReadRopeObject(io::JsonFields& parent, const nlohmann::json& obj,
                                     const std::string& path, double theta_fallback,
                                     const RopeDefaults& d) {
  io::JsonFields f = parent.Sibling(obj, path);
  RopeParameters rope = ReadConfig<RopeParameters>(f);
  rope.rope_type = "default";
  if (!f.Get("rope_type", &rope.rope_type)) f.Get("type", &rope.rope_type);
  rope.rope_theta = theta_fallback;
  f.Get("rope_theta", &rope.rope_theta);
  if (d.mrope_means_default && rope.rope_type == "mrope") rope.rope_type = "default";
  const std::string& t = rope.rope_type;
  if ((t == "llama3" || t == "yarn" || t == "longrope") && !rope.original_max_position_embeddings) {
    rope.original_max_position_embeddings = d.max_position_embeddings;
  }
  // The keys transformers' _validate_<type>_rope_parameters require.
  std::vector<std::string> missing;
  auto need = [&](bool present, const char* key) {
    if (!present) missing.push_back(key);
  };
  if (t == "linear" || t == "dynamic" || t == "yarn" || t == "llama3") need(rope.factor.has_value(), "factor");
  if (t == "longrope") {
    need(rope.short_factor.has_value(), "short_factor");
    need(rope.long_factor.has_value(), "long_factor");
  }
  if (t == "llama3") {
    need(rope.low_freq_factor.has_value(), "low_freq_factor");
    need(rope.high_freq_factor.has_value(), "high_freq_factor");
  }
  if (!missing.empty()) {
    f.Fail("", absl::StrCat("rope_type \"", t, "\" needs ", absl::StrJoin(missing, ", ")));
  }
  return rope;
}

// The value of a key as a non-empty object (Python's truthiness), else null.
inline const nlohmann::json* NonEmptyObject(const io::JsonFields& f, std::string_view key) {
  const nlohmann::json* v = f.Find(key);
  if (v == nullptr || v->is_null()) return nullptr;
  if (v->is_object() && v->empty()) return nullptr;
  return v;
}

}  // namespace internal

// One RoPE setting for the whole text model, from `text` (the text config's
// fields: `rope_scaling`, `rope_parameters`, `rope_theta`,
// `partial_rotary_factor`).
inline RopeParameters ReadRopeParameters(io::JsonFields& text, const RopeDefaults& d) {
  std::string key = "rope_parameters";
  const nlohmann::json* src = internal::NonEmptyObject(text, "rope_scaling");
  if (src != nullptr) {
    key = "rope_scaling";
  } else {
    src = internal::NonEmptyObject(text, "rope_parameters");
  }
  static const nlohmann::json kEmpty = nlohmann::json::object();
  nlohmann::json obj = src != nullptr ? *src : kEmpty;
  double theta = d.rope_theta;
  text.Get("rope_theta", &theta);
  if (obj.is_object() && !obj.contains("partial_rotary_factor")) {
    if (const nlohmann::json* p = text.Find("partial_rotary_factor"); p != nullptr && !p->is_null()) {
      obj["partial_rotary_factor"] = *p;
    }
  }
  const std::string path = text.path().empty() ? key : text.path() + "." + key;
  return internal::ReadRopeObject(text, obj, path, theta, d);
}

// Per-attention-kind RoPE (Gemma 3): `rope_parameters` maps "full_attention"
// and "sliding_attention" to settings. The legacy spelling is `rope_scaling`
// (merged into full_attention), `rope_theta` (full) and
// `rope_local_base_freq` (sliding), as Gemma3TextConfig.convert_rope_params_to_dict does.
inline std::map<std::string, RopeParameters> ReadPerLayerTypeRope(io::JsonFields& text,
                                                                  double full_theta,
                                                                  double sliding_theta,
                                                                  int64_t max_position_embeddings) {
  nlohmann::json full = {{"rope_type", "default"}};
  nlohmann::json sliding = {{"rope_type", "default"}};
  const std::string base = text.path().empty() ? "rope_parameters" : text.path() + ".rope_parameters";
  if (const nlohmann::json* p = text.Find("rope_parameters"); p != nullptr && !p->is_null()) {
    if (!p->is_object()) {
      text.Fail("rope_parameters", "expected an object with full_attention / sliding_attention");
    } else {
      if (auto it = p->find("full_attention"); it != p->end() && !it->is_null()) full = *it;
      if (auto it = p->find("sliding_attention"); it != p->end() && !it->is_null()) sliding = *it;
    }
  }
  if (const nlohmann::json* s = text.Find("rope_scaling"); s != nullptr && !s->is_null()) {
    if (!s->is_object()) {
      text.Fail("rope_scaling", "expected an object");
    } else if (full.is_object()) {
      full.update(*s);
    }
  }
  text.Get("rope_theta", &full_theta);
  text.Get("rope_local_base_freq", &sliding_theta);
  RopeDefaults d;
  d.max_position_embeddings = max_position_embeddings;
  std::map<std::string, RopeParameters> out;
  out["full_attention"] = internal::ReadRopeObject(text, full, base + ".full_attention", full_theta, d);
  out["sliding_attention"] =
      internal::ReadRopeObject(text, sliding, base + ".sliding_attention", sliding_theta, d);
  return out;
}

}  // namespace spatialid::config
