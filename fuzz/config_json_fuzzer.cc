// Fuzzes config.json / preprocessor_config.json parsing: the JSON reader,
// every family's typed config and every image processor config, and the
// dump of whatever parses. Errors must name the file; nothing may crash.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "spatialid/config/model_config.h"
#include "spatialid/config/processor_config.h"
#include "spatialid/io/json_file.h"

namespace {

using namespace spatialid::config;

void Check(bool ok) {
  if (!ok) __builtin_trap();
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
  absl::StatusOr<ModelConfig> any = ParseModelConfigJson(*j, "fuzz.json");
  (void)any;
  // Each family's parser, whatever model_type says (mismatches are errors).
  nlohmann::json forced = *j;
  if (forced.is_object()) {
    for (ModelType t : AllModelTypes()) {
      forced["model_type"] = std::string(ModelTypeName(t));
      absl::StatusOr<ModelConfig> c = ParseModelConfigJson(forced, "fuzz.json");
      if (c.ok()) {
        std::visit([](const auto& cfg) { Check(ConfigToJson(cfg).is_object()); }, *c);
      } else {
        Check(c.status().message().find("fuzz.json") != std::string_view::npos);
      }
    }
  }
  Try(ParseConfigJson<spatialid::families::LlavaConfig>(*j, "fuzz.json"));
  Try(ParseProcessorConfigJson<CLIPImageProcessorConfig>(*j, "fuzz.json"));
  Try(ParseProcessorConfigJson<spatialid::families::GotOcr2ImageProcessorConfig>(*j, "fuzz.json"));
  Try(ParseProcessorConfigJson<spatialid::families::Qwen2VLImageProcessorConfig>(*j, "fuzz.json"));
  Try(ParseProcessorConfigJson<spatialid::families::Gemma3ImageProcessorConfig>(*j, "fuzz.json"));
  Try(ParseProcessorConfigJson<spatialid::families::MllamaImageProcessorConfig>(*j, "fuzz.json"));
  return 0;
}
