// Loading a tokenizer folder the way transformers' AutoTokenizer does.
//
// The reference pipeline tokenizes through transformers processors, and
// transformers 5.3 does not always run tokenizer.json as written: some
// tokenizer classes rebuild parts of it in `__init__` from
// tokenizer_config.json. `LoadPretrainedTokenizer(dir)` reads both files and
// applies the rebuilds that change ids for spatialid's families:
//  - `LlamaTokenizer` / `LlamaTokenizerFast` (LLaVA-1.5) drop the file's
//    normalizer and use a `Metaspace("▁", split=false)` pre-tokenizer whose
//    prepend scheme is "never" without `add_prefix_space`, else "always"
//    when `legacy` is true and "first" otherwise; the decoder becomes
//    Replace("▁", " "), ByteFallback, Fuse (+ Strip(" ", 1, 0) with the
//    prefix space). So " x" is `▁x` in transformers but `▁`,`▁x` with the
//    raw tokenizer.json of old Llama 2 files (Prepend + Replace).
//  - When tokenizer_config.json sets `add_bos_token` or `add_eos_token`
//    (or tokenizer.json has no post-processor), the post-processor becomes
//    `[bos] $A [eos]` per those flags, as `update_post_processor` does.
// Other classes (Qwen2Tokenizer, GemmaTokenizer, PreTrainedTokenizerFast)
// rebuild to the same ids as their tokenizer.json. The class-specific
// rebuild is skipped when config.json's `model_type` maps, in AutoTokenizer's
// table, to a class other than tokenizer_config.json's: AutoTokenizer then
// loads the generic `TokenizersBackend` (tokenizer.json as written). Every
// llava-hf checkpoint is such a case ("llava" -> TokenizersBackend, config
// says LlamaTokenizer): with the Llama rebuild, the text after `<image>`
// lost its `▁` and every hidden state after it moved. The oracle test checks
// every corpus string against `AutoTokenizer.from_pretrained(dir)`, with and
// without a config.json.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(text::Tokenizer tok, text::LoadPretrainedTokenizer(model_dir));
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/io/json_file.h"
#include "spatialid/text/decoder.h"
#include "spatialid/text/post_processor.h"
#include "spatialid/text/pre_tokenizer.h"
#include "spatialid/text/tokenizer.h"
#include "spatialid/text/tokenizer_config.h"
#include "spatialid/util/status.h"

namespace spatialid::text {

namespace internal {

inline bool ConfigBool(const TokenizerConfig& config, const char* key, bool fallback) {
  auto it = config.raw.find(key);
  if (it == config.raw.end() || !it->is_boolean()) return fallback;
  return it->get<bool>();
}

// transformers 5.3 `LlamaTokenizer.__init__` (tokenization_llama.py).
inline void RebuildAsLlama(const TokenizerConfig& config, Tokenizer& tokenizer) {
  namespace pt = pre_tokenizers;
  const bool add_prefix_space = ConfigBool(config, "add_prefix_space", true);
  const bool legacy = ConfigBool(config, "legacy", false);
  const pt::PrependScheme scheme = !add_prefix_space ? pt::PrependScheme::kNever
                                   : legacy          ? pt::PrependScheme::kAlways
                                                     : pt::PrependScheme::kFirst;
  const std::string meta = "\xE2\x96\x81";  // ▁
  tokenizer.set_normalizer(nullptr);
  tokenizer.set_pre_tokenizer(std::make_unique<pt::Metaspace>(meta, scheme, /*split=*/false));
  std::vector<std::unique_ptr<Decoder>> steps;
  steps.push_back(std::make_unique<decoders::Replace>(*Regex::Literal(meta), " "));
  steps.push_back(std::make_unique<decoders::ByteFallback>());
  steps.push_back(std::make_unique<decoders::Fuse>());
  if (add_prefix_space) steps.push_back(std::make_unique<decoders::Strip>(" ", 1, 0));
  tokenizer.set_decoder(std::make_unique<decoders::Sequence>(std::move(steps)));
}

// transformers 5.3 `TOKENIZER_MAPPING_NAMES` for the model types whose
// checkpoints spatialid loads (models/auto/tokenization_auto.py; "llava" is
// in its MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS). Model types absent here
// have no entry there, so tokenizer_config.json's class decides.
inline const char* AutoTokenizerClassFor(std::string_view model_type) {
  static constexpr std::pair<std::string_view, const char*> kTable[] = {
      {"llava", "TokenizersBackend"},     {"llava_next", "TokenizersBackend"},
      {"qwen2_vl", "Qwen2Tokenizer"},     {"qwen2_5_vl", "Qwen2Tokenizer"},
      {"internvl", "Qwen2Tokenizer"},     {"qwen2", "Qwen2Tokenizer"},
      {"gemma3", "GemmaTokenizer"},       {"gemma3_text", "GemmaTokenizer"},
      {"gemma", "GemmaTokenizer"},        {"gemma2", "GemmaTokenizer"},
  };
  for (const auto& [type, cls] : kTable) {
    if (type == model_type) return cls;
  }
  return nullptr;
}

inline std::string WithoutFast(std::string cls) {
  if (cls.size() >= 4 && cls.compare(cls.size() - 4, 4, "Fast") == 0) cls.resize(cls.size() - 4);
  return cls;
}

// The class AutoTokenizer instantiates for tokenizer_config.json's class
// and config.json's model_type ("" when there is no config.json).
inline std::string EffectiveTokenizerClass(const std::string& config_class,
                                           std::string_view model_type) {
  const char* mapped = AutoTokenizerClassFor(model_type);
  if (mapped != nullptr && !config_class.empty() &&
      WithoutFast(mapped) != WithoutFast(config_class)) {
    return "TokenizersBackend";
  }
  return config_class;
}

// transformers 5.3 `TokenizersBackend.update_post_processor`.
inline absl::Status RebuildPostProcessor(const TokenizerConfig& config, Tokenizer& tokenizer) {
  const bool add_bos = config.add_bos_token.value_or(false) && config.bos_token.has_value();
  const bool add_eos = config.add_eos_token.value_or(false) && config.eos_token.has_value();
  std::vector<post_processors::Template::Part> parts;
  auto special = [&](const std::string& token) -> absl::Status {
    std::optional<int32_t> id = tokenizer.TokenToId(token);
    if (!id.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("special token \"", token, "\" is not in the vocabulary"));
    }
    parts.push_back({false, {*id}});
    return absl::OkStatus();
  };
  if (add_bos) SPATIALID_RETURN_IF_ERROR(special(*config.bos_token));
  parts.push_back({true, {}});
  if (add_eos) SPATIALID_RETURN_IF_ERROR(special(*config.eos_token));
  tokenizer.set_post_processor(std::make_unique<post_processors::Template>(std::move(parts)));
  return absl::OkStatus();
}

}  // namespace internal

// Applies transformers' class-specific rebuilds to a loaded tokenizer.json.
// `model_type`: config.json's, or "" without one.
inline absl::Status ApplyTransformersRebuilds(const TokenizerConfig& config,
                                              bool file_has_post_processor,
                                              Tokenizer& tokenizer,
                                              std::string_view model_type = "") {
  const std::string cls =
      internal::EffectiveTokenizerClass(config.tokenizer_class.value_or(""), model_type);
  if (cls == "LlamaTokenizer" || cls == "LlamaTokenizerFast") {
    internal::RebuildAsLlama(config, tokenizer);
  }
  const bool explicit_flags =
      config.raw.contains("add_bos_token") || config.raw.contains("add_eos_token");
  if (explicit_flags || !file_has_post_processor) {
    return internal::RebuildPostProcessor(config, tokenizer);
  }
  return absl::OkStatus();
}

// Loads `dir`/tokenizer.json with `dir`/tokenizer_config.json applied as
// transformers' AutoTokenizer would (see above), taking the model type from
// `dir`/config.json when there is one. Without tokenizer_config.json the
// tokenizer.json is used as written.
inline absl::StatusOr<Tokenizer> LoadPretrainedTokenizer(const std::string& dir) {
  const std::string json_path = (std::filesystem::path(dir) / "tokenizer.json").string();
  const std::string config_path = (std::filesystem::path(dir) / "tokenizer_config.json").string();
  SPATIALID_ASSIGN_OR_RETURN(Tokenizer tokenizer, Tokenizer::FromFile(json_path));
  std::error_code ec;
  if (!std::filesystem::exists(config_path, ec)) return tokenizer;
  SPATIALID_ASSIGN_OR_RETURN(TokenizerConfig config, TokenizerConfig::FromFile(config_path));
  std::string model_type;
  const std::string model_config_path = (std::filesystem::path(dir) / "config.json").string();
  if (std::filesystem::exists(model_config_path, ec)) {
    SPATIALID_ASSIGN_OR_RETURN(nlohmann::json model_config, io::ReadJsonFile(model_config_path));
    if (model_config.is_object() && model_config.contains("model_type") &&
        model_config["model_type"].is_string()) {
      model_type = model_config["model_type"].get<std::string>();
    }
  }
  absl::Status status =
      ApplyTransformersRebuilds(config, tokenizer.has_post_processor(), tokenizer, model_type);
  if (!status.ok()) {
    return absl::Status(status.code(), absl::StrCat(config_path, ": ", status.message()));
  }
  return tokenizer;
}

}  // namespace spatialid::text
