// chat_template_render: prints the prompt a checkpoint's chat template makes.
//
// Background: every model of the pipeline sees one user turn (an image, then
// the question) rendered by its own chat template with the generation prompt.
// This tool shows that text exactly, which file it came from, and whether
// the processor would add special tokens when tokenizing it, so a user can
// check a prompt before running a model.
//
// Example:
//   bazel run //spatialid/text:chat_template_render --
//     --model_dir=/models/llava-1.5-7b-hf
//     --text="Is the frog to the left or right of the camel?"
//   bazel run //spatialid/text:chat_template_render -- --model_dir=...
//     --text="..." --no_image --system_clock
//
// With --requests it instead reads one JSON request per stdin line and
// writes one JSON answer per line (the oracle test drives it this way):
//   {"kind": "render", "template": T, "variables": {...}, "options":
//    {"trim_blocks": b, "lstrip_blocks": b, "keep_trailing_newline": b,
//     "loop_controls": b, "generation_tag": b},
//    "hf_globals": b, "clock": "YYYY-MM-DD" | "system"}
//   {"kind": "chat", "template": T, "special_tokens": {...}, "messages": [...],
//    "add_generation_prompt": b, "extra": {...}, "clock": ...}
//   {"kind": "model_dir", "model_dir": D, "lookup": "auto|processor|tokenizer",
//    "template_name": N, "messages": [...], "add_generation_prompt": b,
//    "extra": {...}, "clock": ...}
//   {"kind": "prompt", "model_dir": D, "text": Q, "with_image": b, "clock": ...}
//   {"kind": "special_tokens", "model_dir": D}
// Answers: {"ok": true, "text": ..., ...} or {"ok": false, "error": ...}.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "spatialid/text/chat_template.h"
#include "spatialid/text/prompt.h"

ABSL_FLAG(std::string, model_dir, "",
          "Checkpoint folder: its chat template (processor_config.json, chat_template.json, chat_template.jinja, "
          "tokenizer_config.json) and its tokenizer's special tokens.");
ABSL_FLAG(std::string, template_file, "",
          "Use this Jinja file as the chat template instead of the checkpoint's (special tokens still come from "
          "--model_dir when given).");
ABSL_FLAG(std::string, text, "", "The user's question.");
ABSL_FLAG(bool, no_image, false, "Render a text-only turn instead of image-then-text.");
ABSL_FLAG(std::string, lookup, "auto",
          "Where to find the template: processor (transformers' AutoProcessor), tokenizer (AutoTokenizer), or auto "
          "(processor, then tokenizer).");
ABSL_FLAG(std::string, template_name, "", "A named template of the checkpoint; empty means \"default\".");
ABSL_FLAG(std::string, date, "2024-07-26",
          "The date strftime_now() reports, YYYY-MM-DD (Llama 3.2 prints it for text-only turns).");
ABSL_FLAG(bool, system_clock, false, "Let strftime_now() read the real clock, as transformers does.");
ABSL_FLAG(bool, requests, false, "Batch mode: JSON requests on stdin, one JSON answer per line on stdout.");

namespace {

using spatialid::text::ChatClock;
using spatialid::text::ChatTemplate;
using spatialid::text::ChatTemplateLookup;
using spatialid::text::ChatTemplateOptions;
using Json = nlohmann::ordered_json;

absl::StatusOr<ChatClock> ParseClock(const std::string& date, bool system) {
  if (system || date == "system") return ChatClock::System();
  int y = 0, m = 0, d = 0;
  if (std::sscanf(date.c_str(), "%d-%d-%d", &y, &m, &d) != 3 || m < 1 || m > 12 || d < 1 || d > 31) {
    return absl::InvalidArgumentError("--date must be YYYY-MM-DD, got '" + date + "'");
  }
  return ChatClock::Fixed(y, m, d);
}

absl::StatusOr<ChatTemplateLookup> ParseLookup(const std::string& s) {
  if (s == "auto" || s.empty()) return ChatTemplateLookup::kProcessorThenTokenizer;
  if (s == "processor") return ChatTemplateLookup::kProcessor;
  if (s == "tokenizer") return ChatTemplateLookup::kTokenizer;
  return absl::InvalidArgumentError("--lookup must be auto, processor or tokenizer, got '" + s + "'");
}

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(path + ": cannot open file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

absl::StatusOr<ChatTemplate> LoadTemplate(const std::string& model_dir, const std::string& template_file,
                                          const ChatTemplateOptions& options) {
  if (template_file.empty()) {
    if (model_dir.empty()) return absl::InvalidArgumentError("give --model_dir or --template_file");
    return ChatTemplate::FromModelDir(model_dir, options);
  }
  auto source = ReadText(template_file);
  if (!source.ok()) return source.status();
  Json tokens = Json::object();
  if (!model_dir.empty()) {
    auto loaded = spatialid::text::LoadSpecialTokens(model_dir);
    if (!loaded.ok()) return loaded.status();
    tokens = *loaded;
  }
  return ChatTemplate::FromString(*source, tokens, options.clock, template_file);
}

Json Error(const absl::Status& status) {
  return Json{{"ok", false}, {"error", std::string(status.message())}, {"code", absl::StatusCodeToString(status.code())}};
}

absl::StatusOr<ChatClock> RequestClock(const Json& request) {
  return ParseClock(request.value("clock", std::string("2024-07-26")), false);
}

Json Answer(const Json& request) {
  const std::string kind = request.value("kind", std::string());
  auto clock = RequestClock(request);
  if (!clock.ok()) return Error(clock.status());
  if (kind == "render") {
    spatialid::text::JinjaOptions options;
    const Json opts = request.value("options", Json::object());
    options.trim_blocks = opts.value("trim_blocks", false);
    options.lstrip_blocks = opts.value("lstrip_blocks", false);
    options.keep_trailing_newline = opts.value("keep_trailing_newline", false);
    options.loop_controls = opts.value("loop_controls", false);
    options.generation_tag = opts.value("generation_tag", false);
    auto t = spatialid::text::JinjaTemplate::Parse(request.value("template", std::string()), options);
    if (!t.ok()) return Error(t.status());
    spatialid::text::JinjaGlobals globals;
    if (request.value("hf_globals", false)) globals = spatialid::text::HuggingFaceChatGlobals(*clock);
    auto r = t->Render(request.value("variables", Json::object()), globals);
    if (!r.ok()) return Error(r.status());
    return Json{{"ok", true}, {"text", *r}};
  }
  if (kind == "chat" || kind == "model_dir") {
    absl::StatusOr<ChatTemplate> t = absl::UnknownError("unreachable");
    if (kind == "chat") {
      t = ChatTemplate::FromString(request.value("template", std::string()),
                                   request.value("special_tokens", Json::object()), *clock);
    } else {
      ChatTemplateOptions options;
      auto lookup = ParseLookup(request.value("lookup", std::string("auto")));
      if (!lookup.ok()) return Error(lookup.status());
      options.lookup = *lookup;
      options.template_name = request.value("template_name", std::string());
      options.clock = *clock;
      t = ChatTemplate::FromModelDir(request.value("model_dir", std::string()), options);
    }
    if (!t.ok()) return Error(t.status());
    auto r = t->Apply(request.value("messages", Json::array()), request.value("add_generation_prompt", false),
                      request.value("extra", Json::object()));
    if (!r.ok()) return Error(r.status());
    Json answer{{"ok", true}, {"text", *r}, {"origin", t->origin()}, {"special_tokens", t->special_tokens()}};
    answer["add_special_tokens"] = spatialid::text::ProcessorAddsSpecialTokens(*r, t->bos_token());
    return answer;
  }
  if (kind == "special_tokens") {
    auto tokens = spatialid::text::LoadSpecialTokens(request.value("model_dir", std::string()));
    if (!tokens.ok()) return Error(tokens.status());
    return Json{{"ok", true}, {"special_tokens", *tokens}};
  }
  if (kind == "prompt") {
    ChatTemplateOptions options;
    options.clock = *clock;
    auto t = ChatTemplate::FromModelDir(request.value("model_dir", std::string()), options);
    if (!t.ok()) return Error(t.status());
    auto p = spatialid::text::RenderUserPrompt(*t, request.value("text", std::string()),
                                               request.value("with_image", true));
    if (!p.ok()) return Error(p.status());
    return Json{{"ok", true}, {"text", p->text}, {"add_special_tokens", p->add_special_tokens}};
  }
  return Error(absl::InvalidArgumentError("unknown request kind '" + kind + "'"));
}

int RunRequests() {
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    Json request = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    Json answer = request.is_object() ? Answer(request)
                                      : Error(absl::InvalidArgumentError("request is not a JSON object"));
    std::cout << answer.dump(-1, ' ', /*ensure_ascii=*/true, Json::error_handler_t::replace) << "\n";
  }
  std::cout.flush();
  return std::cout.good() ? 0 : 1;
}

int RunOnce() {
  auto lookup = ParseLookup(absl::GetFlag(FLAGS_lookup));
  auto clock = ParseClock(absl::GetFlag(FLAGS_date), absl::GetFlag(FLAGS_system_clock));
  if (!lookup.ok() || !clock.ok()) {
    std::cerr << "error: " << (lookup.ok() ? clock.status() : lookup.status()).message() << "\n";
    return 2;
  }
  ChatTemplateOptions options;
  options.lookup = *lookup;
  options.template_name = absl::GetFlag(FLAGS_template_name);
  options.clock = *clock;
  auto t = LoadTemplate(absl::GetFlag(FLAGS_model_dir), absl::GetFlag(FLAGS_template_file), options);
  if (!t.ok()) {
    std::cerr << "error: " << t.status().message() << "\n";
    return 1;
  }
  auto p = spatialid::text::RenderUserPrompt(*t, absl::GetFlag(FLAGS_text), !absl::GetFlag(FLAGS_no_image));
  if (!p.ok()) {
    std::cerr << "error: " << p.status().message() << "\n";
    return 1;
  }
  std::cerr << "template: " << t->origin() << "\nadd_special_tokens: " << (p->add_special_tokens ? "true" : "false")
            << "\n";
  std::cout << p->text;
  if (!p->text.empty() && p->text.back() != '\n') std::cout << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Prints the prompt a checkpoint's chat template renders for one user turn (image then text, or "
      "--no_image), and whether the processor adds special tokens.\n"
      "  chat_template_render --model_dir=DIR --text=\"Is the frog to the left or right of the camel?\"");
  absl::ParseCommandLine(argc, argv);
  return absl::GetFlag(FLAGS_requests) ? RunRequests() : RunOnce();
}
