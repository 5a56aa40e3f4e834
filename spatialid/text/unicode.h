// UTF-8 and Unicode helpers for the tokenizer.
//
// The tokenizer must agree byte for byte with Hugging Face `tokenizers`
// (Rust), so the helpers here copy Rust's behaviour where it differs from
// what a C++ programmer might write by hand: invalid UTF-8 is repaired the
// way `String::from_utf8_lossy` does it (one U+FFFD per maximal invalid
// subpart), `char::is_whitespace` / `is_alphanumeric` / `is_numeric` use the
// Unicode properties Rust uses, and normalisation forms come from utf8proc
// (the Unicode data tables HF uses come from `unicode-normalization`).
//
// Example:
//   std::string clean = text::ToValidUtf8(raw_bytes);
//   std::string nfc = text::Normalize(clean, text::NormalForm::kNfc);
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <utf8proc.h>

#include "absl/strings/string_view.h"

namespace spatialid::text {

// Debian's abseil has its own string_view type; this bridges std -> absl
// for absl::StrCat and heterogeneous lookups in absl hash containers.
inline absl::string_view AbslView(std::string_view s) { return {s.data(), s.size()}; }

// Byte length of the UTF-8 sequence a lead byte starts (1 for ASCII and for
// bytes that cannot start a sequence, so that loops always advance).
inline size_t Utf8SequenceLength(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xF0) return 4;
  if (lead >= 0xE0) return 3;
  if (lead >= 0xC0) return 2;
  return 1;
}

// Decodes the code point starting at `pos` of a string that is valid UTF-8
// and advances `pos` past it.
inline char32_t DecodeUtf8(std::string_view s, size_t& pos) {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  if (b0 < 0x80) {
    ++pos;
    return b0;
  }
  const size_t n = Utf8SequenceLength(b0);
  char32_t cp = (n == 2) ? (b0 & 0x1F) : (n == 3) ? (b0 & 0x0F) : (b0 & 0x07);
  for (size_t k = 1; k < n && pos + k < s.size(); ++k) {
    cp = (cp << 6) | (static_cast<unsigned char>(s[pos + k]) & 0x3F);
  }
  pos += n;
  return cp;
}

inline void AppendUtf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

inline std::string Utf8(char32_t cp) {
  std::string s;
  AppendUtf8(s, cp);
  return s;
}

namespace internal {

// Length of the valid UTF-8 sequence at `pos`, or 0 with `*invalid_len` set
// to the length of the maximal invalid subpart (the bytes Rust's
// `Utf8Chunks` reports as one error).
inline size_t ValidSequenceAt(std::string_view s, size_t pos, size_t* invalid_len) {
  auto at = [&](size_t i) -> unsigned {
    return i < s.size() ? static_cast<unsigned char>(s[i]) : 0u;
  };
  const unsigned b0 = at(pos);
  if (b0 < 0x80) return 1;
  auto cont = [](unsigned b) { return b >= 0x80 && b <= 0xBF; };
  const unsigned b1 = at(pos + 1);
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    if (cont(b1)) return 2;
    *invalid_len = 1;
    return 0;
  }
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    bool ok1 = (b0 == 0xE0)   ? (b1 >= 0xA0 && b1 <= 0xBF)
               : (b0 == 0xED) ? (b1 >= 0x80 && b1 <= 0x9F)
                              : cont(b1);
    if (!ok1) {
      *invalid_len = 1;
      return 0;
    }
    if (!cont(at(pos + 2))) {
      *invalid_len = 2;
      return 0;
    }
    return 3;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    bool ok1 = (b0 == 0xF0)   ? (b1 >= 0x90 && b1 <= 0xBF)
               : (b0 == 0xF4) ? (b1 >= 0x80 && b1 <= 0x8F)
                              : cont(b1);
    if (!ok1) {
      *invalid_len = 1;
      return 0;
    }
    if (!cont(at(pos + 2))) {
      *invalid_len = 2;
      return 0;
    }
    if (!cont(at(pos + 3))) {
      *invalid_len = 3;
      return 0;
    }
    return 4;
  }
  *invalid_len = 1;
  return 0;
}

}  // namespace internal

inline bool IsValidUtf8(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    if (static_cast<unsigned char>(s[pos]) < 0x80) {
      ++pos;
      continue;
    }
    size_t bad = 0;
    const size_t n = internal::ValidSequenceAt(s, pos, &bad);
    if (n == 0) return false;
    pos += n;
  }
  return true;
}

// Rust's `String::from_utf8_lossy`: each maximal invalid subpart becomes one
// U+FFFD (Python's `bytes.decode("utf-8", "replace")` agrees).
inline std::string ToValidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) {
    size_t bad = 0;
    const size_t n = internal::ValidSequenceAt(s, pos, &bad);
    if (n > 0) {
      out.append(s.substr(pos, n));
      pos += n;
    } else {
      out.append("\xEF\xBF\xBD");
      pos += bad;
    }
  }
  return out;
}

inline bool IsAscii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

enum class NormalForm { kNfc, kNfd, kNfkc, kNfkd };

// Unicode normalisation of valid UTF-8 (ASCII is returned unchanged without
// a call into utf8proc).
inline std::string Normalize(std::string_view s, NormalForm form) {
  if (IsAscii(s)) return std::string(s);
  int options = UTF8PROC_STABLE;
  switch (form) {
    case NormalForm::kNfc: options |= UTF8PROC_COMPOSE; break;
    case NormalForm::kNfd: options |= UTF8PROC_DECOMPOSE; break;
    case NormalForm::kNfkc: options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case NormalForm::kNfkd: options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                   static_cast<utf8proc_ssize_t>(s.size()), &out,
                   static_cast<utf8proc_option_t>(options));
  if (n < 0 || out == nullptr) {
    // Only invalid UTF-8 fails, and callers pass valid text; keep it as is.
    std::free(out);
    return std::string(s);
  }
  std::string result(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return result;
}

// Rust `char::is_whitespace`: the Unicode White_Space property.
inline bool IsWhitespace(char32_t c) {
  switch (c) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20:
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
    case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

// Byte length of the whitespace run that starts `s` (Rust `^\s*`).
inline size_t LeadingWhitespaceLength(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    size_t next = pos;
    if (!IsWhitespace(DecodeUtf8(s, next))) break;
    pos = next;
  }
  return pos;
}

// Where the whitespace run that ends `s` starts (Rust `\s*$`), `s.size()`
// when `s` does not end in whitespace.
inline size_t TrailingWhitespaceStart(std::string_view s) {
  size_t start = s.size(), pos = 0;
  bool in_run = false;
  while (pos < s.size()) {
    const size_t at = pos;
    const bool ws = IsWhitespace(DecodeUtf8(s, pos));
    if (ws && !in_run) start = at;
    in_run = ws;
  }
  return in_run ? start : s.size();
}

// Rust `char::is_numeric`: general categories Nd, Nl and No.
inline bool IsNumeric(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL ||
         cat == UTF8PROC_CATEGORY_NO;
}

// A combining mark (general category Mn, Mc or Me), as StripAccents uses.
inline bool IsCombiningMark(char32_t c) {
  if (c < 0x300) return false;
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_MC ||
         cat == UTF8PROC_CATEGORY_ME;
}

// Punctuation as HF's Punctuation pre-tokenizer sees it: ASCII punctuation
// or any general category P*.
inline bool IsPunctuation(char32_t c) {
  if (c < 0x80) {
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
           (c >= 0x7B && c <= 0x7E);
  }
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

// Rust `char::to_lowercase` (full mapping): the simple mapping everywhere
// except U+0130, the one code point whose unconditional lowercase is two
// characters.
inline void AppendLowercase(std::string& out, char32_t c) {
  if (c == 0x130) {
    out.append("i\xCC\x87");
    return;
  }
  if (c < 0x80) {
    out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
    return;
  }
  AppendUtf8(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
}

}  // namespace spatialid::text
