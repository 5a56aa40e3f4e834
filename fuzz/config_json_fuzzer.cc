// Fuzzes config.json / preprocessor_config.json parsing: the JSON reader,
// every family's typed config and every image processor config, and the
// dump of whatever parses. Errors must name the file; nothing may crash.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "spatialid/config/processor_config.h"
#include "spatialid/families/gemma3/config.h"
#include "spatialid/families/internvl/config.h"
#include "spatialid/families/llava/config.h"
#include "spatialid/families/mllama/config.h"
#include "spatialid/families/qwen2_vl/config.h"
#include "spatialid/io/json_file.h"

namespace {

using namespace spatialid::config;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

// The config.json types this fuzzer feeds (the family registry itself needs
// libtorch, which this libtorch-free target does not link).
template <class Visit>
void ForEachFamilyConfig(Visit&& visit) {
  namespace f = spatialid::families;
  visit.template operator()<f::LlavaConfig>();
  visit.template operator()<f::Qwen2VLConfig>();
  visit.template operator()<f::Qwen2_5_VLConfig>();
  visit.template operator()<f::MllamaConfig>();
  visit.template operator()<f::InternVLConfig>();
  visit.template operator()<f::Gemma3Config>();
}

// Runs one parser; a parsed config must dump, an error must name the file.
template <typename T>
void Try(const absl::StatusOr<T>& c) {
  if (c.ok()) {
    Check(ConfigToJson(*c).is_object());
  } else {
    Check(c.status().message().find("fuzz.json") != std::string_view::npos);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<nlohmann::json> j = spatialid::io::ParseJson(text, "fuzz.json");
  if (!j.ok()) {
    Check(j.status().message().find("fuzz.json") != std::string_view::npos);
    return 0;
  }
  // Each family's parser, whatever model_type says, and with its own
  // model_type forced (mismatches are errors).
  nlohmann::json forced = *j;
  ForEachFamilyConfig([&]<class Config>() {
    Try(ParseConfigJson<Config>(*j, "fuzz.json"));
    if (forced.is_object()) {
      forced["model_type"] = std::string(Config::kModelType);
      absl::StatusOr<Config> c = ParseConfigJson<Config>(forced, "fuzz.json");
      if (c.ok()) {
        Check(ConfigToJson(*c).is_object());
      } else {
        Check(c.status().message().find("fuzz.json") != std::string_view::npos);
      }
    }
  });
  Try(ParseProcessorConfigJson<CLIPImageProcessorConfig>(*j, "fuzz.json"));
  Try(ParseProcessorConfigJson<spatialid::families::GotOcr2ImageProcessorConfig>(*j, "fuzz.json"));
  Try(ParseProcessorConfigJson<spatialid::families::Qwen2VLImageProcessorConfig>(*j, "fuzz.json"));
  Try(ParseProcessorConfigJson<spatialid::families::Gemma3ImageProcessorConfig>(*j, "fuzz.json"));
  Try(ParseProcessorConfigJson<spatialid::families::MllamaImageProcessorConfig>(*j, "fuzz.json"));
  return 0;
}
