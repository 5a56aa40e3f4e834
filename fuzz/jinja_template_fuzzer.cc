// Fuzzes chat templates (spatialid/text/jinja_template.h): lexing, parsing,
// constant folding and rendering with a chat-like context, with the options
// transformers uses. Hostile templates must give errors, not crashes or
// unbounded recursion.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "spatialid/text/jinja_template.h"

namespace {

const nlohmann::ordered_json& Context() {
  static const nlohmann::ordered_json* ctx = new nlohmann::ordered_json(nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Is the frog left of the camel?"}]},
      {"role": "assistant", "content": "Yes."}
    ],
    "add_generation_prompt": true,
    "bos_token": "<s>",
    "eos_token": "</s>",
    "tools": null,
    "n": 3,
    "f": 1.5
  })"));
  return *ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;  // templates are short; keep renders fast
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  spatialid::text::JinjaOptions options;
  options.trim_blocks = true;
  options.lstrip_blocks = true;
  options.loop_controls = true;
  auto t = spatialid::text::JinjaTemplate::Parse(source, options);
  if (!t.ok()) return 0;
  auto out = t->Render(Context());
  (void)out;
  return 0;
}
