// The fields of `tokenizer_config.json` that prompts need.
//
// transformers keeps the model's BOS/EOS strings, whether the slow
// tokenizer adds BOS, extra named tokens (Gemma 3's `image_token`,
// `boi_token`) and the chat template in tokenizer_config.json, not in
// tokenizer.json. Token fields are written either as a plain string or as
// an AddedToken object (`{"__type": "AddedToken", "content": "<s>", ...}`);
// both read as the content string here. `chat_template` is a string or a
// list of `{"name", "template"}`; the list's "default" entry is the
// default template.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(text::TokenizerConfig config,
//       text::TokenizerConfig::FromFile(dir + "/tokenizer_config.json"));
//   std::string bos = config.bos_token.value_or("");
#pragma once

#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace spatialid::text {

struct TokenizerConfig {
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  std::optional<std::string> pad_token;
  std::optional<std::string> unk_token;
  // Absent means the tokenizer class decides (tokenizer.json's
  // post-processor for fast tokenizers).
  std::optional<bool> add_bos_token;
  std::optional<bool> add_eos_token;
  bool clean_up_tokenization_spaces = false;
  std::optional<std::string> tokenizer_class;
  std::vector<std::string> additional_special_tokens;
  // `extra_special_tokens` plus top-level "*_token" strings not listed
  // above (image_token, boi_token, eoi_token ...), by field name.
  std::map<std::string, std::string> named_tokens;
  // The default chat template, and every named one.
  std::optional<std::string> chat_template;
  std::map<std::string, std::string> chat_templates;
  // The whole file, for fields not lifted out above.
  nlohmann::json raw;

  static absl::StatusOr<TokenizerConfig> FromFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open tokenizer config"));
    std::stringstream buffer;
    buffer << in.rdbuf();
    auto config = FromJsonText(buffer.str());
    if (!config.ok()) {
      return absl::Status(config.status().code(),
                          absl::StrCat(path, ": ", config.status().message()));
    }
    return config;
  }

  static absl::StatusOr<TokenizerConfig> FromJsonText(std::string_view text) {
    nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return absl::InvalidArgumentError("not valid JSON");
    if (!j.is_object()) return absl::InvalidArgumentError("top level must be a JSON object");
    TokenizerConfig c;
    auto token = [&](const char* key) -> absl::StatusOr<std::optional<std::string>> {
      auto it = j.find(key);
      if (it == j.end() || it->is_null()) return std::optional<std::string>();
      auto content = TokenContent(*it);
      if (!content.has_value()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "\"", key, "\" must be a string or an AddedToken object with \"content\""));
      }
      return content;
    };
    auto flag = [&](const char* key) -> absl::StatusOr<std::optional<bool>> {
      auto it = j.find(key);
      if (it == j.end() || it->is_null()) return std::optional<bool>();
      if (!it->is_boolean()) {
        return absl::InvalidArgumentError(absl::StrCat("\"", key, "\" must be true or false"));
      }
      return std::optional<bool>(it->get<bool>());
    };
#define SPATIALID_CONFIG_FIELD_(field, reader)  \
  {                                             \
    auto value = reader(#field);                \
    if (!value.ok()) return value.status();     \
    c.field = *value;                           \
  }
    SPATIALID_CONFIG_FIELD_(bos_token, token)
    SPATIALID_CONFIG_FIELD_(eos_token, token)
    SPATIALID_CONFIG_FIELD_(pad_token, token)
    SPATIALID_CONFIG_FIELD_(unk_token, token)
    SPATIALID_CONFIG_FIELD_(add_bos_token, flag)
    SPATIALID_CONFIG_FIELD_(add_eos_token, flag)
#undef SPATIALID_CONFIG_FIELD_
    {
      auto cleanup = flag("clean_up_tokenization_spaces");
      if (!cleanup.ok()) return cleanup.status();
      c.clean_up_tokenization_spaces = cleanup->value_or(false);
    }
    if (auto it = j.find("tokenizer_class"); it != j.end() && it->is_string()) {
      c.tokenizer_class = it->get<std::string>();
    }
    if (auto it = j.find("additional_special_tokens"); it != j.end() && it->is_array()) {
      for (const auto& t : *it) {
        if (auto content = TokenContent(t)) c.additional_special_tokens.push_back(*content);
      }
    }
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& key = it.key();
      if (key.size() > 6 && key.compare(key.size() - 6, 6, "_token") == 0 &&
          key != "bos_token" && key != "eos_token" && key != "pad_token" && key != "unk_token") {
        if (auto content = TokenContent(it.value())) c.named_tokens[key] = *content;
      }
    }
    if (auto it = j.find("extra_special_tokens"); it != j.end() && it->is_object()) {
      for (auto e = it->begin(); e != it->end(); ++e) {
        if (auto content = TokenContent(e.value())) c.named_tokens[e.key()] = *content;
      }
    }
    if (auto it = j.find("chat_template"); it != j.end() && !it->is_null()) {
      if (it->is_string()) {
        c.chat_template = it->get<std::string>();
      } else if (it->is_array()) {
        for (const auto& entry : *it) {
          auto name = entry.find("name");
          auto tmpl = entry.find("template");
          if (name == entry.end() || tmpl == entry.end() || !name->is_string() ||
              !tmpl->is_string()) {
            return absl::InvalidArgumentError(
                "\"chat_template\" list entries need string \"name\" and \"template\"");
          }
          c.chat_templates[name->get<std::string>()] = tmpl->get<std::string>();
        }
        if (auto d = c.chat_templates.find("default"); d != c.chat_templates.end()) {
          c.chat_template = d->second;
        }
      } else {
        return absl::InvalidArgumentError("\"chat_template\" must be a string or a list");
      }
    }
    c.raw = std::move(j);
    return c;
  }

  // The content of a token field: a string, or an object's "content".
  static std::optional<std::string> TokenContent(const nlohmann::json& v) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object()) {
      auto it = v.find("content");
      if (it != v.end() && it->is_string()) return it->get<std::string>();
    }
    return std::nullopt;
  }
};

}  // namespace spatialid::text
