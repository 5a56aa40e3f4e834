// A checkpoint's chat template, found and rendered the way transformers
// 5.3.0 does it (libtorch-free).
//
// Where the template lives (transformers 5.3.0, read from its source):
// - The processor (`AutoProcessor.from_pretrained(dir).apply_chat_template`)
//   takes, in order: the "chat_template" key of processor_config.json; else
//   chat_template.json's "chat_template" (the legacy file; it may not be
//   combined with additional_chat_templates/); else chat_template.jinja as
//   "default" plus additional_chat_templates/*.jinja by file stem. It does
//   not fall back to the tokenizer's template.
// - The tokenizer (`AutoTokenizer...apply_chat_template`) takes
//   tokenizer_config.json's "chat_template" (a string, or a list of
//   {"name", "template"}), replaced entirely by chat_template.jinja and
//   additional_chat_templates/*.jinja when those files exist.
// - With several named templates, "default" is used (the tokenizer prefers
//   "tool_use" when tools are given; spatialid never passes tools).
// spatialid's default lookup is the processor's, then the tokenizer's when
// the processor has none (transformers would fail there); the lookup used and
// the file the template came from are reported.
//
// Rendering: the environment transformers builds in
// utils/chat_template_utils.py (trim_blocks, lstrip_blocks, loopcontrols,
// the `generation` tag, globals `raise_exception` and `strftime_now`, its
// own `tojson`), with variables messages, tools=None, documents=None,
// add_generation_prompt, the tokenizer's special tokens (bos_token,
// eos_token, unk_token, pad_token, and every other "*_token" or
// extra_special_tokens entry of tokenizer_config.json; tokens a tokenizer
// class sets by default without the file naming them are not known here), and
// any extra variables the caller passes (they win over special tokens, as in
// transformers).
//
// `strftime_now` reads a ChatClock. transformers uses the real clock, so the
// Llama 3.2 template's "Today Date: ..." line (text-only prompts) changes
// every day; spatialid's default clock is fixed at 2024-07-26 ("26 Jul 2024",
// the date that template falls back to itself) so prompts are reproducible.
// ChatClock::System() gives transformers' behaviour.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(text::ChatTemplate t,
//       text::ChatTemplate::FromModelDir("/models/llava-1.5-7b-hf"));
//   SPATIALID_ASSIGN_OR_RETURN(std::string prompt,
//       t.Apply(messages_json, /*add_generation_prompt=*/true));
#pragma once

#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spatialid/io/json_file.h"
#include "spatialid/text/jinja_template.h"
#include "spatialid/text/tokenizer_config.h"

namespace spatialid::text {

// The time `strftime_now(format)` formats.
class ChatClock {
 public:
  // A fixed local date and time.
  static ChatClock Fixed(int year, int month, int day, int hour = 0, int minute = 0, int second = 0) {
    ChatClock c;
    c.fixed_.tm_year = year - 1900;
    c.fixed_.tm_mon = month - 1;
    c.fixed_.tm_mday = day;
    c.fixed_.tm_hour = hour;
    c.fixed_.tm_min = minute;
    c.fixed_.tm_sec = second;
    time_t t = timegm(&c.fixed_);  // fills weekday and day of year
    gmtime_r(&t, &c.fixed_);
    return c;
  }
  // The current local time, as Python's datetime.now().
  static ChatClock System() {
    ChatClock c;
    c.system_ = true;
    return c;
  }
  // spatialid's default: 2024-07-26, the fallback date of the Llama 3.2
  // template, so text-only Mllama prompts do not depend on the day.
  static ChatClock Default() { return Fixed(2024, 7, 26); }

  bool is_system() const { return system_; }

  // C strftime in the "C" locale, as Python's datetime.strftime (%f is
  // Python's microseconds, always 000000 here).
  std::string Strftime(std::string_view format) const {
    std::tm tm = fixed_;
    if (system_) {
      time_t now = std::time(nullptr);
      localtime_r(&now, &tm);
    }
    std::string fmt;
    for (size_t i = 0; i < format.size(); ++i) {
      if (format[i] == '%' && i + 1 < format.size() && format[i + 1] == 'f') {
        fmt += "000000";
        ++i;
      } else if (format[i] == '%' && i + 1 < format.size() && format[i + 1] == '%') {
        fmt += "%%";
        ++i;
      } else {
        fmt.push_back(format[i]);
      }
    }
    if (fmt.empty()) return "";
    std::vector<char> buf(256 + fmt.size() * 16);
    size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
    return std::string(buf.data(), n);
  }

 private:
  bool system_ = false;
  std::tm fixed_{};
};

// transformers' chat-template globals: raise_exception(message) and
// strftime_now(format).
inline JinjaGlobals HuggingFaceChatGlobals(const ChatClock& clock) {
  using jinja::CallArgs;
  using jinja::Value;
  JinjaGlobals globals;
  globals.emplace_back("raise_exception", Value::Function("raise_exception", [](CallArgs& args) -> Value {
    jinja::internal::Params p("raise_exception", args, {"message"});
    p.Require(0);
    throw jinja::TemplateError(jinja::TemplateError::Kind::kRaised, jinja::Str(p[0]));
  }));
  globals.emplace_back("strftime_now", Value::Function("strftime_now", [clock](CallArgs& args) -> Value {
    jinja::internal::Params p("strftime_now", args, {"format"});
    p.Require(0);
    if (!p[0].is_string()) jinja::TypeFail("strftime() argument 1 must be str, not " + jinja::TypeName(p[0]));
    return Value(clock.Strftime(p[0].str()));
  }));
  return globals;
}

// Which of transformers' two loaders to imitate.
enum class ChatTemplateLookup {
  kProcessor,               // AutoProcessor
  kTokenizer,               // AutoTokenizer
  kProcessorThenTokenizer,  // spatialid's default
};

// Every template a checkpoint folder offers to each loader, by name
// ("default" for the unnamed one), with the file each set came from.
struct CheckpointChatTemplates {
  std::map<std::string, std::string> processor;
  std::string processor_origin;
  std::map<std::string, std::string> tokenizer;
  std::string tokenizer_origin;
};

namespace chat_template_internal {

inline absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path.string(), ": cannot open file"));
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(path.string(), ": read failed"));
  return buffer.str();
}

// A JSON object file (io::ReadJsonFile reports syntax errors by line).
inline absl::StatusOr<nlohmann::json> ReadJsonObject(const std::filesystem::path& path) {
  auto j = io::ReadJsonFile(path.string());
  if (!j.ok()) return j.status();
  if (!j->is_object()) return absl::InvalidArgumentError(absl::StrCat(path.string(), ": expected a JSON object"));
  return j;
}

// additional_chat_templates/*.jinja, by file stem, sorted.
inline absl::StatusOr<std::map<std::string, std::string>> ReadAdditionalTemplates(const std::filesystem::path& dir) {
  std::map<std::string, std::string> out;
  std::filesystem::path sub = dir / "additional_chat_templates";
  std::error_code ec;
  if (!std::filesystem::is_directory(sub, ec)) return out;
  for (const auto& entry : std::filesystem::directory_iterator(sub, ec)) {
    if (entry.path().extension() != ".jinja") continue;
    auto text = ReadFile(entry.path());
    if (!text.ok()) return text.status();
    out[entry.path().stem().string()] = *text;
  }
  if (ec) return absl::InternalError(absl::StrCat(sub.string(), ": ", ec.message()));
  return out;
}

// A "chat_template" JSON value: a string, a {name: template} object, or a
// list of {"name", "template"}.
inline absl::Status AddTemplates(const nlohmann::json& value, const std::string& origin,
                                 std::map<std::string, std::string>& out) {
  if (value.is_string()) {
    out["default"] = value.get<std::string>();
    return absl::OkStatus();
  }
  if (value.is_object()) {
    for (const auto& [name, t] : value.items()) {
      if (!t.is_string()) return absl::InvalidArgumentError(absl::StrCat(origin, ": template '", name, "' is not a string"));
      out[name] = t.get<std::string>();
    }
    return absl::OkStatus();
  }
  if (value.is_array()) {
    for (const auto& entry : value) {
      if (!entry.is_object() || !entry.contains("name") || !entry.contains("template") ||
          !entry["name"].is_string() || !entry["template"].is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(origin, ": \"chat_template\" list entries need string \"name\" and \"template\""));
      }
      out[entry["name"].get<std::string>()] = entry["template"].get<std::string>();
    }
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(origin, ": \"chat_template\" must be a string, a list or an object"));
}

// The templates under the "chat_template" key of a JSON file, if the file
// exists and the key is set (non-null); returns whether it was.
inline absl::StatusOr<bool> ReadTemplateKey(const std::filesystem::path& path, std::map<std::string, std::string>& out) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  auto j = ReadJsonObject(path);
  if (!j.ok()) return j.status();
  auto it = j->find("chat_template");
  if (it == j->end() || it->is_null()) return false;
  auto st = AddTemplates(*it, path.string(), out);
  if (!st.ok()) return st;
  return true;
}

}  // namespace chat_template_internal

// Reads what each loader would see in `dir`. Missing files are fine; a file
// that exists but cannot be read or parsed is an error naming it.
inline absl::StatusOr<CheckpointChatTemplates> LoadCheckpointChatTemplates(const std::filesystem::path& dir) {
  namespace ci = chat_template_internal;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat(dir.string(), ": not a directory"));
  }
  CheckpointChatTemplates out;
  auto additional = ci::ReadAdditionalTemplates(dir);
  if (!additional.ok()) return additional.status();
  const std::filesystem::path jinja_file = dir / "chat_template.jinja";
  const bool has_jinja = std::filesystem::is_regular_file(jinja_file, ec);
  std::optional<std::string> jinja_text;
  if (has_jinja) {
    auto text = ci::ReadFile(jinja_file);
    if (!text.ok()) return text.status();
    jinja_text = *text;
  }

  // Processor.
  const std::filesystem::path processor_config = dir / "processor_config.json";
  const std::filesystem::path legacy_json = dir / "chat_template.json";
  auto from_processor_config = ci::ReadTemplateKey(processor_config, out.processor);
  if (!from_processor_config.ok()) return from_processor_config.status();
  bool processor_done = *from_processor_config;
  if (processor_done) out.processor_origin = processor_config.string();
  if (!processor_done && std::filesystem::is_regular_file(legacy_json, ec)) {
    if (!additional->empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          dir.string(), ": a legacy chat_template.json cannot be combined with additional_chat_templates/ "
                        "(transformers refuses this checkpoint too)"));
    }
    auto found = ci::ReadTemplateKey(legacy_json, out.processor);
    if (!found.ok()) return found.status();
    if (!*found) {
      return absl::InvalidArgumentError(absl::StrCat(legacy_json.string(), ": no \"chat_template\" key"));
    }
    out.processor_origin = legacy_json.string();
    processor_done = true;
  }
  if (!processor_done && (has_jinja || !additional->empty())) {
    out.processor = *additional;
    if (jinja_text) out.processor["default"] = *jinja_text;
    out.processor_origin = has_jinja ? jinja_file.string() : (dir / "additional_chat_templates").string();
  }

  // Tokenizer.
  if (has_jinja || !additional->empty()) {
    out.tokenizer = *additional;
    if (jinja_text) out.tokenizer["default"] = *jinja_text;
    out.tokenizer_origin = has_jinja ? jinja_file.string() : (dir / "additional_chat_templates").string();
  } else {
    const std::filesystem::path tokenizer_config = dir / "tokenizer_config.json";
    auto found = ci::ReadTemplateKey(tokenizer_config, out.tokenizer);
    if (!found.ok()) return found.status();
    if (*found) out.tokenizer_origin = tokenizer_config.string();
  }
  return out;
}

// The special tokens of a tokenizer_config.json (and a legacy
// special_tokens_map.json for names the config lacks), as template variables.
inline absl::StatusOr<nlohmann::ordered_json> LoadSpecialTokens(const std::filesystem::path& dir) {
  nlohmann::ordered_json tokens = nlohmann::ordered_json::object();
  std::error_code ec;
  const std::filesystem::path config_path = dir / "tokenizer_config.json";
  if (std::filesystem::is_regular_file(config_path, ec)) {
    auto config = TokenizerConfig::FromFile(config_path.string());
    if (!config.ok()) return config.status();
    auto put = [&](const char* name, const std::optional<std::string>& value) {
      if (value) tokens[name] = *value;
    };
    put("bos_token", config->bos_token);
    put("eos_token", config->eos_token);
    put("unk_token", config->unk_token);
    put("pad_token", config->pad_token);
    for (const auto& [name, value] : config->named_tokens) tokens[name] = value;
  }
  const std::filesystem::path map_path = dir / "special_tokens_map.json";
  if (std::filesystem::is_regular_file(map_path, ec)) {
    auto j = chat_template_internal::ReadJsonObject(map_path);
    if (!j.ok()) return j.status();
    for (const auto& [name, value] : j->items()) {
      if (tokens.contains(name) || name.size() < 6 || name.compare(name.size() - 6, 6, "_token") != 0) continue;
      if (auto content = TokenizerConfig::TokenContent(value)) tokens[name] = *content;
    }
  }
  return tokens;
}

struct ChatTemplateOptions {
  ChatTemplateLookup lookup = ChatTemplateLookup::kProcessorThenTokenizer;
  // A named template; empty picks "default".
  std::string template_name;
  ChatClock clock = ChatClock::Default();
};

class ChatTemplate {
 public:

  // The template transformers would use for `dir`, with its special tokens.
  static absl::StatusOr<ChatTemplate> FromModelDir(const std::filesystem::path& dir,
                                                   const ChatTemplateOptions& options = {}) {
    auto all = LoadCheckpointChatTemplates(dir);
    if (!all.ok()) return all.status();
    const bool try_processor = options.lookup != ChatTemplateLookup::kTokenizer;
    const bool try_tokenizer = options.lookup != ChatTemplateLookup::kProcessor;
    const std::map<std::string, std::string>* set = nullptr;
    std::string origin;
    if (try_processor && !all->processor.empty()) {
      set = &all->processor;
      origin = all->processor_origin;
    } else if (try_tokenizer && !all->tokenizer.empty()) {
      set = &all->tokenizer;
      origin = all->tokenizer_origin;
    }
    if (set == nullptr) {
      return absl::NotFoundError(absl::StrCat(
          dir.string(), ": no chat template (looked for processor_config.json \"chat_template\", chat_template.json, "
                        "chat_template.jinja, additional_chat_templates/ and tokenizer_config.json \"chat_template\")"));
    }
    auto text = Pick(*set, options.template_name, origin);
    if (!text.ok()) return text.status();
    auto tokens = LoadSpecialTokens(dir);
    if (!tokens.ok()) return tokens.status();
    return FromString(*text, *tokens, options.clock, origin);
  }

  // A template given as text; `special_tokens` is a JSON object of
  // variables such as {"bos_token": "<s>"}.
  static absl::StatusOr<ChatTemplate> FromString(std::string source, nlohmann::ordered_json special_tokens,
                                                 ChatClock clock = ChatClock::Default(),
                                                 std::string origin = "chat_template") {
    if (!special_tokens.is_object()) return absl::InvalidArgumentError("special tokens must be a JSON object");
    auto parsed = JinjaTemplate::Parse(source, JinjaOptions::HuggingFace(), origin);
    if (!parsed.ok()) return parsed.status();
    return ChatTemplate(std::move(source), std::move(*parsed), std::move(special_tokens), clock, std::move(origin));
  }

  // transformers' apply_chat_template(messages, add_generation_prompt=...,
  // tokenize=False, **extra_variables): the rendered prompt text.
  absl::StatusOr<std::string> Apply(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                    const nlohmann::ordered_json& extra_variables = nlohmann::ordered_json::object()) const {
    if (!messages.is_array()) return absl::InvalidArgumentError(absl::StrCat(origin_, ": messages must be a JSON list"));
    if (!extra_variables.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(origin_, ": extra variables must be a JSON object"));
    }
    nlohmann::ordered_json vars = nlohmann::ordered_json::object();
    vars["messages"] = messages;
    vars["tools"] = nullptr;
    vars["documents"] = nullptr;
    vars["add_generation_prompt"] = add_generation_prompt;
    for (const auto& [key, value] : extra_variables.items()) vars[key] = value;
    for (const auto& [key, value] : special_tokens_.items()) {
      if (!extra_variables.contains(key)) vars[key] = value;
    }
    return template_.Render(vars, globals_);
  }

  const std::string& source() const { return source_; }
  // The file the template came from (or the name given to FromString).
  const std::string& origin() const { return origin_; }
  const nlohmann::ordered_json& special_tokens() const { return special_tokens_; }
  std::optional<std::string> bos_token() const {
    auto it = special_tokens_.find("bos_token");
    if (it == special_tokens_.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  }
  const ChatClock& clock() const { return clock_; }

 private:
  ChatTemplate(std::string source, JinjaTemplate parsed, nlohmann::ordered_json special_tokens, ChatClock clock,
               std::string origin)
      : source_(std::move(source)),
        template_(std::move(parsed)),
        special_tokens_(std::move(special_tokens)),
        clock_(clock),
        origin_(std::move(origin)),
        globals_(HuggingFaceChatGlobals(clock_)) {}

  static absl::StatusOr<std::string> Pick(const std::map<std::string, std::string>& set, const std::string& name,
                                          const std::string& origin) {
    std::vector<std::string> names;
    for (const auto& entry : set) names.push_back(entry.first);
    if (!name.empty()) {
      auto it = set.find(name);
      if (it == set.end()) {
        return absl::NotFoundError(absl::StrCat(origin, ": no chat template named '", name,
                                                "'; available: ", absl::StrJoin(names, ", ")));
      }
      return it->second;
    }
    if (auto it = set.find("default"); it != set.end()) return it->second;
    return absl::InvalidArgumentError(absl::StrCat(
        origin, ": several chat templates and none named \"default\"; pick one of: ", absl::StrJoin(names, ", ")));
  }

  std::string source_;
  JinjaTemplate template_;
  nlohmann::ordered_json special_tokens_;
  ChatClock clock_;
  std::string origin_;
  JinjaGlobals globals_;
};

}  // namespace spatialid::text
