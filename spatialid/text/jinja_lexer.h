// Jinja2's lexer: template text to tokens, whitespace control included.
//
// Chat templates are byte-exact programs: a newline after `%}` or the
// indentation before `{%` decides whether the prompt has a newline or four
// spaces. This lexer follows jinja2/lexer.py (3.1) rule by rule rather than
// approximating it:
// - newlines are normalised to "\n" and one trailing newline is dropped
//   (keep_trailing_newline=False);
// - `{{-`, `{%-`, `{#-` strip all whitespace (Python's `str.isspace`) before
//   the tag; `-}}`, `-%}`, `-#}` strip all whitespace after it;
// - trim_blocks drops the first "\n" after `%}` and `#}` (not after `}}`);
// - lstrip_blocks drops spaces and tabs between the start of a line and a
//   `{%` or `{#` tag (not `{{`), unless the tag starts with `+`;
// - `{% raw %}` ... `{% endraw %}` is data; `}}` and `%}` close a tag only
//   when brackets inside it are balanced.
// Token values: names, decoded string literals (Python escapes), integers
// (decimal, 0x, 0o, 0b, underscores) and floats.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "spatialid/text/jinja_unicode.h"
#include "spatialid/text/jinja_value.h"

namespace spatialid::text::jinja::internal {

enum class TokenType {
  kData,
  kVariableBegin,
  kVariableEnd,
  kBlockBegin,
  kBlockEnd,
  kName,
  kString,
  kInteger,
  kFloat,
  kOperator,
  kEof,
};

struct Token {
  TokenType type = TokenType::kEof;
  std::string value;  // data, name, decoded string, operator text, literal text
  int64_t int_value = 0;
  double float_value = 0.0;
  int line = 1;
};

struct LexerOptions {
  bool trim_blocks = false;
  bool lstrip_blocks = false;
  bool keep_trailing_newline = false;
};

class Lexer {
 public:
  Lexer(std::string_view source, const LexerOptions& options) : options_(options) {
    // Normalise \r\n and \r to \n, as Jinja does before lexing.
    source_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      char c = source[i];
      if (c == '\r') {
        source_.push_back('\n');
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        source_.push_back(c);
      }
    }
    if (!options_.keep_trailing_newline && !source_.empty() && source_.back() == '\n') source_.pop_back();
    line_starts_.push_back(0);
    for (size_t i = 0; i < source_.size(); ++i) {
      if (source_[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  std::vector<Token> Tokenize() {
    size_t pos = 0;
    const size_t n = source_.size();
    while (pos < n) {
      size_t tag = FindTagStart(pos);
      if (tag == std::string_view::npos) {
        Emit(TokenType::kData, source_.substr(pos), pos);
        pos = n;
        break;
      }
      char kind = source_[tag + 1];
      size_t after = tag + 2;
      char sign = (after < n && (source_[after] == '-' || source_[after] == '+')) ? source_[after] : '\0';
      size_t raw_end = kind == '%' ? MatchRawBegin(tag) : std::string_view::npos;
      bool is_variable = kind == '{';
      std::string text = source_.substr(pos, tag - pos);
      if (sign == '-') {
        text.resize(RStripLength(text));
      } else if (sign != '+' && options_.lstrip_blocks && !is_variable) {
        text = LStripLine(text);
      }
      if (!text.empty()) Emit(TokenType::kData, text, pos);
      if (raw_end != std::string_view::npos) {
        line_starting_ = source_[raw_end - 1] == '\n';
        pos = LexRaw(raw_end);
        continue;
      }
      pos = after + (sign != '\0' ? 1 : 0);
      line_starting_ = false;
      if (kind == '#') {
        pos = SkipComment(pos);
      } else {
        Emit(is_variable ? TokenType::kVariableBegin : TokenType::kBlockBegin, "", tag);
        pos = LexTag(pos, is_variable);
      }
    }
    Token eof;
    eof.type = TokenType::kEof;
    eof.line = LineAt(n);
    tokens_.push_back(eof);
    return std::move(tokens_);
  }

  int LineAt(size_t pos) const {
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), pos);
    return static_cast<int>(it - line_starts_.begin());
  }

 private:
  [[noreturn]] void SyntaxError(const std::string& message, size_t pos) const {
    throw TemplateError(TemplateError::Kind::kSyntax, message, LineAt(pos));
  }

  void Emit(TokenType type, std::string value, size_t pos) {
    Token t;
    t.type = type;
    t.value = std::move(value);
    t.line = LineAt(pos);
    tokens_.push_back(std::move(t));
  }

  size_t FindTagStart(size_t pos) const {
    for (size_t i = pos; i + 1 < source_.size(); ++i) {
      if (source_[i] == '{' && (source_[i + 1] == '{' || source_[i + 1] == '%' || source_[i + 1] == '#')) {
        return i;
      }
    }
    return std::string_view::npos;
  }

  // Python's \s at `pos`: returns the byte length of that whitespace
  // character, 0 if there is none.
  size_t SpaceAt(size_t pos) const {
    if (pos >= source_.size()) return 0;
    unsigned char c = static_cast<unsigned char>(source_[pos]);
    if (c < 0x80) return unicode::IsSpace(c) ? 1 : 0;
    size_t len = (c >= 0xF0) ? 4 : (c >= 0xE0) ? 3 : (c >= 0xC0) ? 2 : 1;
    if (pos + len > source_.size()) return 0;
    std::u32string cp = unicode::Decode(std::string_view(source_).substr(pos, len));
    return (cp.size() == 1 && unicode::IsSpace(cp[0])) ? len : 0;
  }

  size_t SkipSpaces(size_t pos) const {
    while (size_t k = SpaceAt(pos)) pos += k;
    return pos;
  }

  static size_t RStripLength(std::string_view text) {
    std::u32string cps = unicode::Decode(text);
    size_t keep = cps.size();
    while (keep > 0 && unicode::IsSpace(cps[keep - 1])) --keep;
    return unicode::Encode(std::u32string_view(cps).substr(0, keep)).size();
  }

  static bool AllSpace(std::string_view text) {
    if (text.empty()) return false;
    for (char32_t c : unicode::Decode(text)) {
      if (!unicode::IsSpace(c)) return false;
    }
    return true;
  }

  // lstrip_blocks: whitespace between the last newline (or the start of a
  // line) and the tag goes.
  std::string LStripLine(const std::string& text) const {
    size_t nl = text.rfind('\n');
    size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
    if ((l_pos > 0 || line_starting_) && AllSpace(std::string_view(text).substr(l_pos))) {
      return text.substr(0, l_pos);
    }
    return text;
  }

  bool StartsWith(size_t pos, std::string_view s) const {
    return source_.compare(pos, s.size(), s) == 0;
  }

  // `{%[-+]?\s*raw\s*(-%}\s*|%})` at `tag`: the end of the match, or npos.
  size_t MatchRawBegin(size_t tag) const {
    size_t p = tag + 2;
    if (p < source_.size() && (source_[p] == '-' || source_[p] == '+')) ++p;
    p = SkipSpaces(p);
    if (!StartsWith(p, "raw")) return std::string_view::npos;
    p = SkipSpaces(p + 3);
    if (StartsWith(p, "-%}")) return SkipSpaces(p + 3);
    if (StartsWith(p, "%}")) return p + 2;
    return std::string_view::npos;
  }

  // Raw data up to `{% endraw %}`; returns the position after it.
  size_t LexRaw(size_t pos) {
    for (size_t i = pos; i + 1 < source_.size(); ++i) {
      if (source_[i] != '{' || source_[i + 1] != '%') continue;
      size_t p = i + 2;
      char sign = '\0';
      if (p < source_.size() && (source_[p] == '-' || source_[p] == '+')) sign = source_[p++];
      p = SkipSpaces(p);
      if (!StartsWith(p, "endraw")) continue;
      p = SkipSpaces(p + 6);
      size_t end;
      if (StartsWith(p, "+%}")) {
        end = p + 3;
      } else if (StartsWith(p, "-%}")) {
        end = SkipSpaces(p + 3);
      } else if (StartsWith(p, "%}")) {
        end = p + 2;
        if (options_.trim_blocks && end < source_.size() && source_[end] == '\n') ++end;
      } else {
        continue;
      }
      std::string text = source_.substr(pos, i - pos);
      if (sign == '-') {
        text.resize(RStripLength(text));
      } else if (sign != '+' && options_.lstrip_blocks) {
        text = LStripLine(text);
      }
      if (!text.empty()) Emit(TokenType::kData, text, pos);
      line_starting_ = source_[end - 1] == '\n';
      return end;
    }
    SyntaxError("Missing end of raw directive", pos);
  }

  size_t SkipComment(size_t pos) {
    size_t close = source_.find("#}", pos);
    if (close == std::string::npos) SyntaxError("Missing end of comment tag", pos);
    char sign = (close > pos && (source_[close - 1] == '-' || source_[close - 1] == '+')) ? source_[close - 1] : '\0';
    size_t end = close + 2;
    if (sign == '-') {
      end = SkipSpaces(end);
    } else if (sign == '\0' && options_.trim_blocks && end < source_.size() && source_[end] == '\n') {
      ++end;
    }
    line_starting_ = source_[end - 1] == '\n';
    return end;
  }

  // Tokens inside `{{ }}` or `{% %}`; returns the position after the tag.
  size_t LexTag(size_t pos, bool is_variable) {
    std::vector<char> balance;
    const size_t n = source_.size();
    while (pos < n) {
      if (balance.empty()) {
        if (is_variable) {
          if (StartsWith(pos, "-}}")) {
            return CloseTag(TokenType::kVariableEnd, pos, SkipSpaces(pos + 3));
          }
          if (StartsWith(pos, "}}")) return CloseTag(TokenType::kVariableEnd, pos, pos + 2);
        } else {
          if (StartsWith(pos, "+%}")) return CloseTag(TokenType::kBlockEnd, pos, pos + 3);
          if (StartsWith(pos, "-%}")) return CloseTag(TokenType::kBlockEnd, pos, SkipSpaces(pos + 3));
          if (StartsWith(pos, "%}")) {
            size_t end = pos + 2;
            if (options_.trim_blocks && end < n && source_[end] == '\n') ++end;
            return CloseTag(TokenType::kBlockEnd, pos, end);
          }
        }
      }
      if (size_t k = SpaceAt(pos)) {
        pos = SkipSpaces(pos + k);
        continue;
      }
      if (size_t end = MatchFloat(pos); end != 0) {
        Token t;
        t.type = TokenType::kFloat;
        t.value = source_.substr(pos, end - pos);
        std::string digits;
        for (char c : t.value) {
          if (c != '_') digits.push_back(c);
        }
        t.float_value = std::strtod(digits.c_str(), nullptr);
        t.line = LineAt(pos);
        tokens_.push_back(std::move(t));
        pos = end;
        continue;
      }
      if (size_t end = MatchInteger(pos); end != 0) {
        pos = EmitInteger(pos, end);
        continue;
      }
      if (size_t end = MatchName(pos); end != 0) {
        Emit(TokenType::kName, source_.substr(pos, end - pos), pos);
        pos = end;
        continue;
      }
      char c = source_[pos];
      if (c == '\'' || c == '"') {
        size_t end = MatchString(pos);
        if (end != 0) {
          Token t;
          t.type = TokenType::kString;
          t.value = DecodeStringLiteral(std::string_view(source_).substr(pos + 1, end - pos - 2), pos);
          t.line = LineAt(pos);
          tokens_.push_back(std::move(t));
          pos = end;
          continue;
        }
      }
      size_t op_len = MatchOperator(pos);
      if (op_len == 0) {
        std::string ch = source_.substr(pos, 1);
        SyntaxError("unexpected char " + StringRepr(ch) + " at " + std::to_string(pos), pos);
      }
      std::string op = source_.substr(pos, op_len);
      if (op == "{" || op == "(" || op == "[") {
        balance.push_back(op == "{" ? '}' : op == "(" ? ')' : ']');
      } else if (op == "}" || op == ")" || op == "]") {
        if (balance.empty()) SyntaxError("unexpected '" + op + "'", pos);
        char expected = balance.back();
        balance.pop_back();
        if (expected != op[0]) {
          SyntaxError("unexpected '" + op + "', expected '" + std::string(1, expected) + "'", pos);
        }
      }
      Emit(TokenType::kOperator, op, pos);
      pos += op_len;
    }
    return pos;  // end of input inside a tag: the parser reports it
  }

  size_t CloseTag(TokenType type, size_t pos, size_t end) {
    Emit(type, "", pos);
    line_starting_ = source_[end - 1] == '\n';
    return end;
  }

  static bool IsDigit(char c) { return c >= '0' && c <= '9'; }

  // (\d+_)*\d+ at pos: end or 0.
  size_t MatchDigits(size_t pos) const {
    size_t p = pos;
    if (p >= source_.size() || !IsDigit(source_[p])) return 0;
    while (true) {
      while (p < source_.size() && IsDigit(source_[p])) ++p;
      if (p + 1 < source_.size() && source_[p] == '_' && IsDigit(source_[p + 1])) {
        ++p;
        continue;
      }
      return p;
    }
  }

  // Jinja's float_re, including its (?<!\.) lookbehind.
  size_t MatchFloat(size_t pos) const {
    if (pos > 0 && source_[pos - 1] == '.') return 0;
    size_t p = MatchDigits(pos);
    if (p == 0) return 0;
    auto exponent = [&](size_t q) -> size_t {
      if (q < source_.size() && (source_[q] == 'e' || source_[q] == 'E')) {
        size_t r = q + 1;
        if (r < source_.size() && (source_[r] == '+' || source_[r] == '-')) ++r;
        return MatchDigits(r);
      }
      return 0;
    };
    if (p < source_.size() && source_[p] == '.') {
      size_t frac = MatchDigits(p + 1);
      if (frac != 0) {
        size_t e = exponent(frac);
        return e != 0 ? e : frac;
      }
    }
    return exponent(p);
  }

  // Jinja's integer_re: 0b.., 0o.., 0x.., [1-9](_?\d)*, 0(_?0)*.
  size_t MatchInteger(size_t pos) const {
    const size_t n = source_.size();
    if (pos >= n || !IsDigit(source_[pos])) return 0;
    auto run = [&](size_t p, auto is_digit) -> size_t {
      size_t q = p;
      bool any = false;
      while (q < n) {
        if (is_digit(source_[q])) {
          ++q;
          any = true;
        } else if (source_[q] == '_' && q + 1 < n && is_digit(source_[q + 1])) {
          ++q;
        } else {
          break;
        }
      }
      return any ? q : 0;
    };
    if (source_[pos] == '0' && pos + 1 < n) {
      char p = static_cast<char>(source_[pos + 1] | 0x20);
      if (p == 'b') {
        if (size_t e = run(pos + 2, [](char c) { return c == '0' || c == '1'; })) return e;
      } else if (p == 'o') {
        if (size_t e = run(pos + 2, [](char c) { return c >= '0' && c <= '7'; })) return e;
      } else if (p == 'x') {
        if (size_t e = run(pos + 2, [](char c) {
              return IsDigit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
            })) {
          return e;
        }
      }
    }
    if (source_[pos] == '0') {
      size_t e = run(pos, [](char c) { return c == '0'; });
      return e;
    }
    return run(pos, IsDigit);
  }

  size_t EmitInteger(size_t pos, size_t end) {
    std::string text = source_.substr(pos, end - pos);
    std::string digits;
    for (char c : text) {
      if (c != '_') digits.push_back(c);
    }
    int base = 10;
    size_t skip = 0;
    if (digits.size() > 1 && digits[0] == '0') {
      char p = static_cast<char>(digits[1] | 0x20);
      if (p == 'b') base = 2, skip = 2;
      if (p == 'o') base = 8, skip = 2;
      if (p == 'x') base = 16, skip = 2;
    }
    Token t;
    t.type = TokenType::kInteger;
    t.value = text;
    t.line = LineAt(pos);
    errno = 0;
    unsigned long long v = std::strtoull(digits.c_str() + skip, nullptr, base);
    if (errno == ERANGE || v > static_cast<unsigned long long>(INT64_MAX)) {
      throw TemplateError(TemplateError::Kind::kUnsupported,
                          "integer literal " + text + " does not fit in 64 bits", t.line);
    }
    t.int_value = static_cast<int64_t>(v);
    tokens_.push_back(std::move(t));
    return end;
  }

  // [a-zA-Z_][a-zA-Z0-9_]* plus Unicode letters and digits (Python identifiers).
  size_t MatchName(size_t pos) const {
    auto ident = [&](size_t p, bool first) -> size_t {
      unsigned char c = static_cast<unsigned char>(source_[p]);
      if (c < 0x80) {
        bool ok = c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (!first && IsDigit(c));
        return ok ? 1 : 0;
      }
      size_t len = (c >= 0xF0) ? 4 : (c >= 0xE0) ? 3 : (c >= 0xC0) ? 2 : 1;
      if (p + len > source_.size()) return 0;
      std::u32string cp = unicode::Decode(std::string_view(source_).substr(p, len));
      if (cp.size() != 1) return 0;
      bool ok = unicode::IsAlpha(cp[0]) || (!first && unicode::IsAlnum(cp[0]));
      return ok ? len : 0;
    };
    size_t p = pos;
    size_t k = ident(p, true);
    if (k == 0) return 0;
    p += k;
    while (p < source_.size() && (k = ident(p, false)) != 0) p += k;
    return p;
  }

  size_t MatchString(size_t pos) const {
    char quote = source_[pos];
    for (size_t p = pos + 1; p < source_.size(); ++p) {
      if (source_[p] == '\\') {
        ++p;
        continue;
      }
      if (source_[p] == quote) return p + 1;
    }
    return 0;
  }

  size_t MatchOperator(size_t pos) const {
    static constexpr std::string_view kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
    for (std::string_view op : kTwo) {
      if (StartsWith(pos, op)) return 2;
    }
    static constexpr std::string_view kOne = "+-/*%~[](){}><=.:|,;";
    return kOne.find(source_[pos]) != std::string_view::npos ? 1 : 0;
  }

  static int HexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = static_cast<char>(c | 0x20);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  }

  // Python's str.encode("ascii", "backslashreplace").decode("unicode-escape"),
  // which is how Jinja decodes a string literal.
  std::string DecodeStringLiteral(std::string_view body, size_t pos) const {
    std::string out;
    for (size_t i = 0; i < body.size(); ++i) {
      char c = body[i];
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (i + 1 >= body.size()) SyntaxError("\\ at end of string", pos);
      char e = body[++i];
      switch (e) {
        case '\n': break;
        case '\\': out.push_back('\\'); break;
        case '\'': out.push_back('\''); break;
        case '"': out.push_back('"'); break;
        case 'a': out.push_back('\a'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'v': out.push_back('\v'); break;
        case 'x':
        case 'u':
        case 'U': {
          size_t digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t cp = 0;
          for (size_t k = 0; k < digits; ++k) {
            int h = i + 1 + k < body.size() ? HexValue(body[i + 1 + k]) : -1;
            if (h < 0) {
              SyntaxError(std::string("truncated \\") + e + std::string(digits, 'X') + " escape", pos);
            }
            cp = cp * 16 + static_cast<uint32_t>(h);
          }
          if (cp > 0x10FFFF) SyntaxError("illegal Unicode character", pos);
          i += digits;
          unicode::Append(out, cp);
          break;
        }
        case 'N': throw TemplateError(TemplateError::Kind::kUnsupported, "\\N{...} escapes are not supported", LineAt(pos));
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = static_cast<uint32_t>(e - '0');
            for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7'; ++k) {
              cp = cp * 8 + static_cast<uint32_t>(body[++i] - '0');
            }
            unicode::Append(out, cp);
          } else if (static_cast<unsigned char>(e) >= 0x80) {
            // A backslash before a non-ASCII character: Python sees the
            // character's own backslash escape, so the text "\xe9" results.
            size_t start = i;
            unsigned char lead = static_cast<unsigned char>(e);
            size_t len = (lead >= 0xF0) ? 4 : (lead >= 0xE0) ? 3 : (lead >= 0xC0) ? 2 : 1;
            std::u32string cp = unicode::Decode(body.substr(start, std::min(len, body.size() - start)));
            i = start + len - 1;
            char buf[16];
            uint32_t v = cp.empty() ? 0xFFFD : static_cast<uint32_t>(cp[0]);
            if (v <= 0xFF) {
              std::snprintf(buf, sizeof(buf), "\\x%02x", v);
            } else if (v <= 0xFFFF) {
              std::snprintf(buf, sizeof(buf), "\\u%04x", v);
            } else {
              std::snprintf(buf, sizeof(buf), "\\U%08x", v);
            }
            out += buf;
          } else {
            out.push_back('\\');
            out.push_back(e);
          }
      }
    }
    return out;
  }

  LexerOptions options_;
  std::string source_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
  bool line_starting_ = true;
};

}  // namespace spatialid::text::jinja::internal
