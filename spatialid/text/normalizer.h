// Normalizers of tokenizer.json (the `normalizer` section).
//
// A normalizer rewrites the text of one piece before pre-tokenization:
// Unicode forms (`NFC`, `NFD`, `NFKC`, `NFKD`, Qwen uses NFC), `Replace`
// (a string or an Oniguruma regex; Gemma 3 and old Llama 2 files turn
// spaces into `▁`), `Prepend` (old Llama 2 files put `▁` in front),
// `Lowercase`, `Strip`, `StripAccents`, `ByteLevel` and `Sequence`. HF runs
// the normalizer on each stretch of text between added tokens separately,
// which is why Llama 2's `Prepend` puts a `▁` after every special token; the
// tokenizer reproduces that by calling `Normalize` per piece.
//
// Any other type is an error naming it.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/text/byte_level.h"
#include "spatialid/text/regex.h"
#include "spatialid/text/text_piece.h"
#include "spatialid/text/tokenizer_json.h"
#include "spatialid/text/unicode.h"
#include "spatialid/util/status.h"

namespace spatialid::text {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Rewrites `piece.text` (never an added-token piece).
  virtual void Normalize(TextPiece& piece) const = 0;
};

namespace normalizers {

class Sequence final : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  void Normalize(TextPiece& piece) const override {
    for (const auto& step : steps_) step->Normalize(piece);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

class UnicodeForm final : public Normalizer {
 public:
  explicit UnicodeForm(NormalForm form) : form_(form) {}
  void Normalize(TextPiece& piece) const override {
    if (IsAscii(piece.text)) return;
    piece.text = text::Normalize(piece.text, form_);
  }

 private:
  NormalForm form_;
};

class Lowercase final : public Normalizer {
 public:
  void Normalize(TextPiece& piece) const override {
    std::string out;
    out.reserve(piece.text.size());
    size_t pos = 0;
    while (pos < piece.text.size()) AppendLowercase(out, DecodeUtf8(piece.text, pos));
    piece.text = std::move(out);
  }
};

// Replaces every match of a pattern with `content`.
class Replace final : public Normalizer {
 public:
  Replace(Regex pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}

  void Normalize(TextPiece& piece) const override {
    std::vector<MatchRange> matches;
    pattern_.FindAll(piece.text, &matches);
    if (matches.empty()) return;
    // HF aligns text that replaces a leading match with the match's last
    // character (or, for an empty replacement, with what follows).
    const auto& first = matches.front();
    if (first.first == 0 && first.second > 0) {
      if (content_.empty()) {
        piece.original_begin += first.second;
      } else {
        size_t last_char = 0, pos = 0;
        while (pos < first.second) {
          last_char = pos;
          pos += Utf8SequenceLength(static_cast<unsigned char>(piece.text[pos]));
        }
        piece.original_begin += last_char;
      }
    }
    std::string out;
    out.reserve(piece.text.size() + matches.size() * content_.size());
    size_t last = 0;
    for (const auto& [begin, end] : matches) {
      out.append(piece.text, last, begin - last);
      out.append(content_);
      last = end;
    }
    out.append(piece.text, last, std::string::npos);
    piece.text = std::move(out);
  }

 private:
  Regex pattern_;
  std::string content_;
};

// Prepends a string to every non-empty piece.
class Prepend final : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  void Normalize(TextPiece& piece) const override {
    if (!piece.text.empty()) piece.text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

// Strips leading and/or trailing whitespace (Rust `char::is_whitespace`).
class Strip final : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void Normalize(TextPiece& piece) const override {
    const std::string& s = piece.text;
    const size_t begin = left_ ? LeadingWhitespaceLength(s) : 0;
    const size_t end =
        right_ ? begin + TrailingWhitespaceStart(std::string_view(s).substr(begin)) : s.size();
    if (begin == 0 && end == s.size()) return;
    piece.original_begin += begin;
    piece.text = s.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

// Drops combining marks.
class StripAccents final : public Normalizer {
 public:
  void Normalize(TextPiece& piece) const override {
    std::string out;
    out.reserve(piece.text.size());
    size_t pos = 0;
    size_t leading_removed = 0;
    while (pos < piece.text.size()) {
      const size_t at = pos;
      const char32_t c = DecodeUtf8(piece.text, pos);
      if (IsCombiningMark(c)) {
        if (out.empty()) leading_removed = pos;
        continue;
      }
      out.append(piece.text, at, pos - at);
    }
    piece.original_begin += leading_removed;
    piece.text = std::move(out);
  }
};

// Maps each byte to its byte-level character (see byte_level.h).
class ByteLevel final : public Normalizer {
 public:
  void Normalize(TextPiece& piece) const override {
    std::string out;
    out.reserve(piece.text.size() * 2);
    ByteLevelTable::Get().AppendEncoded(out, piece.text);
    piece.text = std::move(out);
  }
};

}  // namespace normalizers

// Compiles the `"pattern"` field of `j`, `{"String": s}` or `{"Regex": r}`,
// as HF does.
inline absl::StatusOr<Regex> ParsePattern(const nlohmann::json& j, const std::string& where) {
  auto field = j.find("pattern");
  if (field == j.end()) return json_field::Error(where, "missing field \"pattern\"");
  const nlohmann::json& p = *field;
  if (p.is_object() && p.size() == 1) {
    if (auto it = p.find("String"); it != p.end() && it->is_string()) {
      auto re = Regex::Literal(it->get<std::string>());
      if (!re.ok()) return json_field::Error(where, re.status().message());
      return re;
    }
    if (auto it = p.find("Regex"); it != p.end() && it->is_string()) {
      auto re = Regex::Compile(it->get<std::string>());
      if (!re.ok()) return json_field::Error(where, re.status().message());
      return re;
    }
  }
  return json_field::Error(where, "pattern must be {\"String\": ...} or {\"Regex\": ...}");
}

// Builds the normalizer a tokenizer.json `normalizer` object describes.
inline absl::StatusOr<std::unique_ptr<Normalizer>> ParseNormalizer(const nlohmann::json& j,
                                                                   const std::string& where) {
  SPATIALID_ASSIGN_OR_RETURN(std::string type, json_field::Type(j, where));
  if (type == "Sequence") {
    SPATIALID_ASSIGN_OR_RETURN(
        auto steps, json_field::ParseEach<Normalizer>(j, "normalizers", where, ParseNormalizer));
    return std::unique_ptr<Normalizer>(new normalizers::Sequence(std::move(steps)));
  }
  if (type == "NFC") return std::unique_ptr<Normalizer>(new normalizers::UnicodeForm(NormalForm::kNfc));
  if (type == "NFD") return std::unique_ptr<Normalizer>(new normalizers::UnicodeForm(NormalForm::kNfd));
  if (type == "NFKC") {
    return std::unique_ptr<Normalizer>(new normalizers::UnicodeForm(NormalForm::kNfkc));
  }
  if (type == "NFKD") {
    return std::unique_ptr<Normalizer>(new normalizers::UnicodeForm(NormalForm::kNfkd));
  }
  if (type == "Lowercase") return std::unique_ptr<Normalizer>(new normalizers::Lowercase());
  if (type == "StripAccents") return std::unique_ptr<Normalizer>(new normalizers::StripAccents());
  if (type == "ByteLevel") return std::unique_ptr<Normalizer>(new normalizers::ByteLevel());
  if (type == "Replace") {
    SPATIALID_ASSIGN_OR_RETURN(Regex pattern, ParsePattern(j, where));
    SPATIALID_ASSIGN_OR_RETURN(std::string content, json_field::String(j, "content", where));
    return std::unique_ptr<Normalizer>(
        new normalizers::Replace(std::move(pattern), std::move(content)));
  }
  if (type == "Prepend") {
    SPATIALID_ASSIGN_OR_RETURN(std::string prefix, json_field::String(j, "prepend", where));
    return std::unique_ptr<Normalizer>(new normalizers::Prepend(std::move(prefix)));
  }
  if (type == "Strip") {
    SPATIALID_ASSIGN_OR_RETURN(bool left, json_field::Bool(j, "strip_left", where));
    SPATIALID_ASSIGN_OR_RETURN(bool right, json_field::Bool(j, "strip_right", where));
    return std::unique_ptr<Normalizer>(new normalizers::Strip(left, right));
  }
  return json_field::Error(
      where, absl::StrCat("unsupported normalizer type '", type,
                          "' (supported: Sequence, NFC, NFD, NFKC, NFKD, Lowercase, Replace, "
                          "Prepend, Strip, StripAccents, ByteLevel)"));
}

}  // namespace spatialid::text
