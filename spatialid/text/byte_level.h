// The GPT-2 byte <-> character table of byte-level BPE.
//
// Byte-level tokenizers (Llama 3, Qwen) never see raw bytes: every byte of
// the text is first mapped to one printable character (printable ASCII and
// most of Latin-1 map to themselves, the other 68 bytes to U+0100..U+0143,
// so a space becomes `Ġ` and a newline `Ċ`). Vocabulary entries are written
// in these characters, which is why token strings look like `Ġfrog`. The
// pre-tokenizer applies the table forwards and the decoder backwards.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "spatialid/text/unicode.h"

namespace spatialid::text {

class ByteLevelTable {
 public:
  static const ByteLevelTable& Get() {
    static const ByteLevelTable table;
    return table;
  }

  // The character byte `b` stands for, and its UTF-8 spelling.
  char32_t CharFor(uint8_t b) const { return byte_to_char_[b]; }
  std::string_view Utf8For(uint8_t b) const {
    return std::string_view(utf8_[b].data(), utf8_len_[b]);
  }

  // The byte character `c` stands for, or -1 when `c` is not in the table.
  int ByteFor(char32_t c) const {
    if (c < char_to_byte_.size()) return char_to_byte_[c];
    return -1;
  }

  // Maps every byte of `text` to its character.
  void AppendEncoded(std::string& out, std::string_view text) const {
    for (char ch : text) {
      const auto b = static_cast<uint8_t>(ch);
      out.append(utf8_[b].data(), utf8_len_[b]);
    }
  }

 private:
  ByteLevelTable() {
    char_to_byte_.fill(-1);
    auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    int next_extra = 0;
    for (int b = 0; b < 256; ++b) {
      const char32_t c = printable(b) ? static_cast<char32_t>(b) : 256 + next_extra++;
      byte_to_char_[b] = c;
      char_to_byte_[c] = b;
      std::string s = Utf8(c);
      utf8_len_[b] = static_cast<uint8_t>(s.size());
      for (size_t k = 0; k < s.size(); ++k) utf8_[b][k] = s[k];
    }
  }

  std::array<char32_t, 256> byte_to_char_{};
  std::array<int, 324> char_to_byte_{};
  std::array<std::array<char, 2>, 256> utf8_{};
  std::array<uint8_t, 256> utf8_len_{};
};

}  // namespace spatialid::text
