// Prints a parsed config as JSON (every field spatialid reads), for the
// transformers oracle test.
//
//   config_dump --config=DIR/config.json [--family=auto|llava|internvl|...]
//   config_dump --preprocessor=DIR/preprocessor_config.json --processor=clip|got_ocr2|qwen2_vl|gemma3|mllama
#include <cstdio>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "spatialid/config/processor_config.h"
#include "spatialid/families/registry.h"

ABSL_FLAG(std::string, config, "", "config.json file (or model folder) to parse.");
ABSL_FLAG(std::string, family, "auto",
          "Config class by model_type: auto (config.json's), or one the registry knows (llava, "
          "qwen2_vl, qwen2_5_vl, mllama, internvl, gemma3).");
ABSL_FLAG(std::string, preprocessor, "", "preprocessor_config.json file (or model folder) to parse.");
ABSL_FLAG(std::string, processor, "",
          "Image processor class for --preprocessor: clip, got_ocr2, qwen2_vl, gemma3, mllama.");

namespace {

using namespace spatialid::config;

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "config_dump: %s\n", std::string(s.message()).c_str());
  return 1;
}

template <typename T>
int Print(const absl::StatusOr<T>& cfg) {
  if (!cfg.ok()) return Fail(cfg.status());
  std::cout << ConfigToJson(*cfg).dump(1) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Parses a Hugging Face config with spatialid and prints every field as JSON.");
  absl::ParseCommandLine(argc, argv);
  const std::string config = absl::GetFlag(FLAGS_config);
  const std::string pre = absl::GetFlag(FLAGS_preprocessor);
  if (!pre.empty()) {
    const std::string p = absl::GetFlag(FLAGS_processor);
    if (p == "clip") return Print(LoadProcessorConfig<CLIPImageProcessorConfig>(pre));
    if (p == "got_ocr2") return Print(LoadProcessorConfig<spatialid::families::GotOcr2ImageProcessorConfig>(pre));
    if (p == "qwen2_vl") return Print(LoadProcessorConfig<spatialid::families::Qwen2VLImageProcessorConfig>(pre));
    if (p == "gemma3") return Print(LoadProcessorConfig<spatialid::families::Gemma3ImageProcessorConfig>(pre));
    if (p == "mllama") return Print(LoadProcessorConfig<spatialid::families::MllamaImageProcessorConfig>(pre));
    return Fail(absl::InvalidArgumentError("--processor must be clip, got_ocr2, qwen2_vl, gemma3 or mllama"));
  }
  if (config.empty()) return Fail(absl::InvalidArgumentError("--config or --preprocessor is required"));
  std::string family = absl::GetFlag(FLAGS_family);
  if (family == "auto") {
    absl::StatusOr<std::string> type = spatialid::families::ReadModelType(config);
    if (!type.ok()) return Fail(type.status());
    family = *type;
  }
  int rc = 0;
  const absl::Status s = spatialid::families::DispatchModelType(family, [&]<class F>() {
    rc = Print(LoadConfig<typename F::Config>(config));
    return absl::OkStatus();
  });
  if (!s.ok()) return Fail(absl::InvalidArgumentError("unknown --family " + family));
  return rc;
}
