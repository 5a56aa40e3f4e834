// Python `str` semantics over UTF-8 for the Jinja interpreter.
//
// Chat templates call Python string methods (`.upper()`, `.strip()`,
// `.split()`, slicing by character, `|length`), so the interpreter needs
// Python's definitions of whitespace, printable, cased and the case
// mappings. Strings stay UTF-8 everywhere; these helpers decode to code
// points only where Python works on characters. Case mappings come from
// utf8proc (simple mappings) plus the unconditional full mappings of Unicode's
// SpecialCasing.txt that change a string's length (ß -> SS, ligatures,
// İ -> i̇) and the final-sigma rule, which is what CPython applies.
// Not covered: the Greek iota-subscript full mappings (U+1F80..U+1FFC) and
// Unicode-version differences between utf8proc and the Python build.
#pragma once

#include <utf8proc.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace spatialid::text::jinja::unicode {

// Decodes UTF-8; an invalid byte becomes U+FFFD so a hostile string never
// reads out of bounds (JSON inputs and parsed templates are validated first).
inline std::u32string Decode(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(s.size());
  while (left > 0) {
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t n = utf8proc_iterate(p, left, &cp);
    if (n <= 0) {
      out.push_back(0xFFFD);
      n = 1;
    } else {
      out.push_back(static_cast<char32_t>(cp));
    }
    p += n;
    left -= n;
  }
  return out;
}

inline void Append(std::string& out, char32_t cp) {
  utf8proc_uint8_t buf[4];
  utf8proc_ssize_t n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(cp), buf);
  if (n <= 0) n = utf8proc_encode_char(0xFFFD, buf);
  out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

inline std::string Encode(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) Append(out, c);
  return out;
}

inline bool IsValidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(s.size());
  while (left > 0) {
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t n = utf8proc_iterate(p, left, &cp);
    if (n <= 0) return false;
    p += n;
    left -= n;
  }
  return true;
}

// Number of code points (Python's len(str)).
inline size_t Length(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// Python's str.isspace() for one character: bidi class WS, B or S, or
// category Zs.
inline bool IsSpace(char32_t c) {
  if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

inline utf8proc_category_t Category(char32_t c) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(c));
}

// Python's str.isprintable() for one character (repr() escapes the others).
inline bool IsPrintable(char32_t c) {
  if (c == ' ') return true;
  switch (Category(c)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_ZS:
      return false;
    default:
      return true;
  }
}

inline bool IsAlpha(char32_t c) {
  switch (Category(c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return true;
    default:
      return false;
  }
}

inline bool IsDecimal(char32_t c) { return Category(c) == UTF8PROC_CATEGORY_ND; }

inline bool IsNumeric(char32_t c) {
  auto cat = Category(c);
  return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
}

inline bool IsAlnum(char32_t c) { return IsAlpha(c) || IsNumeric(c); }

inline char32_t SimpleUpper(char32_t c) {
  return static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c)));
}
inline char32_t SimpleLower(char32_t c) {
  return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
}
inline char32_t SimpleTitle(char32_t c) {
  return static_cast<char32_t>(utf8proc_totitle(static_cast<utf8proc_int32_t>(c)));
}

inline bool IsUpper(char32_t c) {
  auto cat = Category(c);
  return cat == UTF8PROC_CATEGORY_LU || (cat != UTF8PROC_CATEGORY_LL && SimpleLower(c) != c);
}
inline bool IsLower(char32_t c) {
  auto cat = Category(c);
  return cat == UTF8PROC_CATEGORY_LL || (cat != UTF8PROC_CATEGORY_LU && SimpleUpper(c) != c);
}
inline bool IsTitle(char32_t c) { return Category(c) == UTF8PROC_CATEGORY_LT; }
// Unicode "Cased": has a case or a case mapping.
inline bool IsCased(char32_t c) {
  auto cat = Category(c);
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT ||
         SimpleUpper(c) != c || SimpleLower(c) != c;
}
// Unicode "Case_Ignorable" (approximation: marks, format characters,
// modifiers and the word-internal punctuation of Word_Break MidLetter etc.).
inline bool IsCaseIgnorable(char32_t c) {
  switch (Category(c)) {
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_SK:
      return true;
    default:
      return c == '\'' || c == '.' || c == ':' || c == 0xB7 || c == 0x2018 || c == 0x2019 ||
             c == 0x2024 || c == 0xFE52 || c == 0xFF07 || c == 0xFF0E || c == 0x00AD;
  }
}

namespace internal {

struct FullMapping {
  char32_t from;
  const char32_t* upper;  // nullptr: simple mapping
  const char32_t* title;
  const char32_t* lower;
};

// Unconditional full case mappings from SpecialCasing.txt that expand.
inline const FullMapping* FindFullMapping(char32_t c) {
  static const FullMapping kTable[] = {
      {0x00DF, U"SS", U"Ss", nullptr},
      {0x0130, nullptr, nullptr, U"i\u0307"},
      {0x0149, U"\u02BCN", U"\u02BCN", nullptr},
      {0x01F0, U"J\u030C", U"J\u030C", nullptr},
      {0x0390, U"\u0399\u0308\u0301", U"\u0399\u0308\u0301", nullptr},
      {0x03B0, U"\u03A5\u0308\u0301", U"\u03A5\u0308\u0301", nullptr},
      {0x0587, U"\u0535\u0552", U"\u0535\u0582", nullptr},
      {0x1E96, U"H\u0331", U"H\u0331", nullptr},
      {0x1E97, U"T\u0308", U"T\u0308", nullptr},
      {0x1E98, U"W\u030A", U"W\u030A", nullptr},
      {0x1E99, U"Y\u030A", U"Y\u030A", nullptr},
      {0x1E9A, U"A\u02BE", U"A\u02BE", nullptr},
      {0xFB00, U"FF", U"Ff", nullptr},
      {0xFB01, U"FI", U"Fi", nullptr},
      {0xFB02, U"FL", U"Fl", nullptr},
      {0xFB03, U"FFI", U"Ffi", nullptr},
      {0xFB04, U"FFL", U"Ffl", nullptr},
      {0xFB05, U"ST", U"St", nullptr},
      {0xFB06, U"ST", U"St", nullptr},
      {0xFB13, U"\u0544\u0546", U"\u0544\u0576", nullptr},
      {0xFB14, U"\u0544\u0535", U"\u0544\u0565", nullptr},
      {0xFB15, U"\u0544\u053B", U"\u0544\u056B", nullptr},
      {0xFB16, U"\u054E\u0546", U"\u054E\u0576", nullptr},
      {0xFB17, U"\u0544\u053D", U"\u0544\u056D", nullptr},
  };
  if (c < 0xDF) return nullptr;
  for (const auto& m : kTable) {
    if (m.from == c) return &m;
  }
  return nullptr;
}

inline void PushUpper(std::u32string& out, char32_t c) {
  const FullMapping* m = FindFullMapping(c);
  if (m != nullptr && m->upper != nullptr) {
    out += m->upper;
  } else {
    out.push_back(SimpleUpper(c));
  }
}

inline void PushTitle(std::u32string& out, char32_t c) {
  const FullMapping* m = FindFullMapping(c);
  if (m != nullptr && m->title != nullptr) {
    out += m->title;
  } else {
    out.push_back(SimpleTitle(c));
  }
}

// Python lowers capital sigma to final sigma at the end of a word.
inline bool IsFinalSigma(std::u32string_view s, size_t i) {
  size_t j = i;
  bool cased_before = false;
  while (j > 0) {
    --j;
    if (IsCaseIgnorable(s[j])) continue;
    cased_before = IsCased(s[j]);
    break;
  }
  if (!cased_before) return false;
  for (size_t k = i + 1; k < s.size(); ++k) {
    if (IsCaseIgnorable(s[k])) continue;
    return !IsCased(s[k]);
  }
  return true;
}

inline void PushLower(std::u32string& out, std::u32string_view s, size_t i) {
  char32_t c = s[i];
  if (c == 0x03A3) {
    out.push_back(IsFinalSigma(s, i) ? 0x03C2 : 0x03C3);
    return;
  }
  const FullMapping* m = FindFullMapping(c);
  if (m != nullptr && m->lower != nullptr) {
    out += m->lower;
  } else {
    out.push_back(SimpleLower(c));
  }
}

}  // namespace internal

inline std::string Upper(std::string_view s) {
  std::u32string in = Decode(s), out;
  for (char32_t c : in) internal::PushUpper(out, c);
  return Encode(out);
}

inline std::string Lower(std::string_view s) {
  std::u32string in = Decode(s), out;
  for (size_t i = 0; i < in.size(); ++i) internal::PushLower(out, in, i);
  return Encode(out);
}

// Python's str.title(): a cased character after an uncased one starts a word.
inline std::string Title(std::string_view s) {
  std::u32string in = Decode(s), out;
  bool previous_cased = false;
  for (size_t i = 0; i < in.size(); ++i) {
    char32_t c = in[i];
    if (previous_cased) {
      internal::PushLower(out, in, i);
    } else {
      internal::PushTitle(out, c);
    }
    previous_cased = IsCased(c);
  }
  return Encode(out);
}

// Python's str.capitalize(): first character title-cased, the rest lowered.
inline std::string Capitalize(std::string_view s) {
  std::u32string in = Decode(s), out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (i == 0) {
      internal::PushTitle(out, in[i]);
    } else {
      internal::PushLower(out, in, i);
    }
  }
  return Encode(out);
}

inline std::string SwapCase(std::string_view s) {
  std::u32string in = Decode(s), out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (IsUpper(in[i])) {
      internal::PushLower(out, in, i);
    } else if (IsLower(in[i])) {
      internal::PushUpper(out, in[i]);
    } else {
      out.push_back(in[i]);
    }
  }
  return Encode(out);
}

// Python's str.isupper() / islower(): every cased character has that case
// and there is at least one.
inline bool AllUpper(std::string_view s) {
  bool any = false;
  for (char32_t c : Decode(s)) {
    if (IsLower(c) || IsTitle(c)) return false;
    any = any || IsUpper(c);
  }
  return any;
}
inline bool AllLower(std::string_view s) {
  bool any = false;
  for (char32_t c : Decode(s)) {
    if (IsUpper(c) || IsTitle(c)) return false;
    any = any || IsLower(c);
  }
  return any;
}

}  // namespace spatialid::text::jinja::unicode
