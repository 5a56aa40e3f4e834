// Fuzzes tokenizer.json loading (model, normalizer, pre-tokenizer, added
// tokens, post-processor, decoder) and, for whatever loads, encoding and
// decoding a short prompt. Errors must name the file; nothing may crash.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "spatialid/text/tokenizer.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<spatialid::text::Tokenizer> tok =
      spatialid::text::Tokenizer::FromJsonText(text, "fuzz/tokenizer.json");
  if (!tok.ok()) {
    Check(tok.status().message().find("tokenizer.json") != std::string_view::npos);
    return 0;
  }
  for (bool special : {false, true}) {
    std::vector<int32_t> ids = tok->Encode("Is the frog left of the camel? \xc3\xa9\xe2\x9c\x93 <image>\n", special);
    (void)tok->Decode(ids, /*skip_special_tokens=*/special);
  }
  return 0;
}
