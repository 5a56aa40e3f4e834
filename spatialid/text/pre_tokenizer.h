// Pre-tokenizers of tokenizer.json (the `pre_tokenizer` section).
//
// A pre-tokenizer cuts each normalised piece into the words the model sees
// separately (BPE never merges across them) and may rewrite them:
//  - `Split`: an Oniguruma regex or a literal string with a split behaviour
//    and `invert` (Llama 3 and Qwen split with their own GPT-4 style regex;
//    Gemma 3 splits on " ").
//  - `ByteLevel`: optional prefix space, optional GPT-2 regex split, then
//    every byte mapped to its byte-level character (byte_level.h).
//  - `Metaspace`: spaces become `▁`, a `▁` is prepended per
//    `prepend_scheme` (always / first / never), optional split before `▁`.
//  - `Whitespace`, `WhitespaceSplit`, `Digits`, `Punctuation`, `Sequence`.
// Any other type is an error naming it.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/text/byte_level.h"
#include "spatialid/text/normalizer.h"
#include "spatialid/text/regex.h"
#include "spatialid/text/text_piece.h"
#include "spatialid/text/tokenizer_json.h"
#include "spatialid/text/unicode.h"
#include "spatialid/util/status.h"

namespace spatialid::text {

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces every non-token piece by its sub-pieces (empty ones dropped);
  // added-token pieces pass through unchanged.
  virtual void PreTokenize(std::vector<TextPiece>& pieces) const = 0;
};

namespace pre_tokenizers {

// Runs `split(piece, &out)` on every non-token piece.
template <typename SplitFn>
void SplitEach(std::vector<TextPiece>& pieces, SplitFn split) {
  std::vector<TextPiece> out;
  out.reserve(pieces.size() * 2);
  for (auto& piece : pieces) {
    if (piece.is_token()) {
      out.push_back(std::move(piece));
    } else {
      split(piece, &out);
    }
  }
  pieces = std::move(out);
}

// Splits with an Oniguruma regex or a literal (HF's GPT-2 / GPT-4 style
// regexes, "Isolated" behaviour).
class Split final : public PreTokenizer {
 public:
  Split(Regex pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}

  void PreTokenize(std::vector<TextPiece>& pieces) const override {
    std::vector<MatchRange> matches;
    std::vector<MatchSpan> spans;
    SplitEach(pieces, [&](const TextPiece& piece, std::vector<TextPiece>* out) {
      pattern_.FindAll(piece.text, &matches);
      CoverWithMatches(piece.text.size(), matches, &spans);
      if (invert_) {
        for (auto& s : spans) s.is_match = !s.is_match;
      }
      SplitPiece(piece, spans, behavior_, out);
    });
  }

 private:
  Regex pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

// GPT-2 byte-level pre-tokenization.
class ByteLevel final : public PreTokenizer {
 public:
  static constexpr char kGpt2Pattern[] =
      R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

  static absl::StatusOr<std::unique_ptr<ByteLevel>> Create(bool add_prefix_space,
                                                           bool use_regex) {
    std::optional<Regex> regex;
    if (use_regex) {
      SPATIALID_ASSIGN_OR_RETURN(Regex re, Regex::Compile(kGpt2Pattern));
      regex.emplace(std::move(re));
    }
    return std::unique_ptr<ByteLevel>(new ByteLevel(add_prefix_space, std::move(regex)));
  }

  void PreTokenize(std::vector<TextPiece>& pieces) const override {
    std::vector<MatchRange> matches;
    std::vector<MatchSpan> spans;
    const ByteLevelTable& table = ByteLevelTable::Get();
    SplitEach(pieces, [&](TextPiece& piece, std::vector<TextPiece>* out) {
      if (add_prefix_space_ && (piece.text.empty() || piece.text[0] != ' ')) {
        piece.text.insert(0, 1, ' ');
      }
      const size_t first = out->size();
      if (regex_.has_value()) {
        regex_->FindAll(piece.text, &matches);
        CoverWithMatches(piece.text.size(), matches, &spans);
        SplitPiece(piece, spans, SplitBehavior::kIsolated, out);
      } else if (!piece.text.empty()) {
        out->push_back(std::move(piece));
      }
      for (size_t i = first; i < out->size(); ++i) {
        std::string mapped;
        mapped.reserve((*out)[i].text.size() * 2);
        table.AppendEncoded(mapped, (*out)[i].text);
        (*out)[i].text = std::move(mapped);
      }
    });
  }

 private:
  ByteLevel(bool add_prefix_space, std::optional<Regex> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}

  bool add_prefix_space_;
  std::optional<Regex> regex_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

// SentencePiece-style spaces: " " -> "▁", a leading "▁", split before "▁".
class Metaspace final : public PreTokenizer {
 public:
  Metaspace(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}

  void PreTokenize(std::vector<TextPiece>& pieces) const override {
    const char32_t replacement_char = [&] {
      size_t pos = 0;
      return DecodeUtf8(replacement_, pos);
    }();
    std::vector<MatchSpan> spans;
    SplitEach(pieces, [&](TextPiece& piece, std::vector<TextPiece>* out) {
      std::string replaced;
      replaced.reserve(piece.text.size() + replacement_.size());
      for (char c : piece.text) {
        if (c == ' ') {
          replaced.append(replacement_);
        } else {
          replaced.push_back(c);
        }
      }
      const bool starts_with_replacement = replaced.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts_with_replacement && !replaced.empty()) {
        if (scheme_ == PrependScheme::kAlways ||
            (scheme_ == PrependScheme::kFirst && piece.original_begin == 0)) {
          replaced.insert(0, replacement_);
        }
      }
      piece.text = std::move(replaced);
      if (!split_) {
        if (!piece.text.empty()) out->push_back(std::move(piece));
        return;
      }
      CoverWithCharMatches(piece.text, [&](char32_t c) { return c == replacement_char; }, &spans);
      SplitPiece(piece, spans, SplitBehavior::kMergedWithNext, out);
    });
  }

  const std::string& replacement() const { return replacement_; }
  PrependScheme scheme() const { return scheme_; }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

// Splits with a per-character predicate and a behaviour.
template <typename Pred>
class CharSplit final : public PreTokenizer {
 public:
  CharSplit(Pred pred, SplitBehavior behavior) : pred_(pred), behavior_(behavior) {}
  void PreTokenize(std::vector<TextPiece>& pieces) const override {
    std::vector<MatchSpan> spans;
    SplitEach(pieces, [&](const TextPiece& piece, std::vector<TextPiece>* out) {
      CoverWithCharMatches(piece.text, pred_, &spans);
      SplitPiece(piece, spans, behavior_, out);
    });
  }

 private:
  Pred pred_;
  SplitBehavior behavior_;
};

template <typename Pred>
std::unique_ptr<PreTokenizer> MakeCharSplit(Pred pred, SplitBehavior behavior) {
  return std::unique_ptr<PreTokenizer>(new CharSplit<Pred>(pred, behavior));
}

class Sequence final : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void PreTokenize(std::vector<TextPiece>& pieces) const override {
    for (const auto& step : steps_) step->PreTokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

// Rust regex's Unicode `\w` and `\s`, spelled as Oniguruma properties so the
// `Whitespace` pre-tokenizer (written with the Rust `regex` crate in HF)
// sees the same classes.
inline constexpr char kRustWordClass[] = R"(\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control})";
inline constexpr char kRustSpaceClass[] = R"(\p{White_Space})";

}  // namespace pre_tokenizers

// Builds the pre-tokenizer a tokenizer.json `pre_tokenizer` object describes.
inline absl::StatusOr<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const nlohmann::json& j,
                                                                       const std::string& where) {
  namespace pt = pre_tokenizers;
  SPATIALID_ASSIGN_OR_RETURN(std::string type, json_field::Type(j, where));
  if (type == "Sequence") {
    SPATIALID_ASSIGN_OR_RETURN(auto steps, json_field::ParseEach<PreTokenizer>(
                                               j, "pretokenizers", where, ParsePreTokenizer));
    return std::unique_ptr<PreTokenizer>(new pt::Sequence(std::move(steps)));
  }
  if (type == "Split") {
    SPATIALID_ASSIGN_OR_RETURN(Regex pattern, ParsePattern(j, where));
    SPATIALID_ASSIGN_OR_RETURN(std::string behavior_name, json_field::String(j, "behavior", where));
    auto behavior = ParseSplitBehavior(behavior_name);
    if (!behavior.ok()) return json_field::Error(where, behavior.status().message());
    SPATIALID_ASSIGN_OR_RETURN(bool invert, json_field::Bool(j, "invert", where, false));
    return std::unique_ptr<PreTokenizer>(new pt::Split(std::move(pattern), *behavior, invert));
  }
  if (type == "ByteLevel") {
    SPATIALID_ASSIGN_OR_RETURN(bool add_prefix_space,
                               json_field::Bool(j, "add_prefix_space", where, true));
    SPATIALID_ASSIGN_OR_RETURN(bool use_regex, json_field::Bool(j, "use_regex", where, true));
    auto created = pt::ByteLevel::Create(add_prefix_space, use_regex);
    if (!created.ok()) return json_field::Error(where, created.status().message());
    return std::unique_ptr<PreTokenizer>(std::move(*created));
  }
  if (type == "Metaspace") {
    SPATIALID_ASSIGN_OR_RETURN(std::string replacement, json_field::Char(j, "replacement", where));
    SPATIALID_ASSIGN_OR_RETURN(auto scheme_name, json_field::OptionalString(j, "prepend_scheme", where));
    pt::PrependScheme scheme = pt::PrependScheme::kAlways;
    if (scheme_name.has_value()) {
      if (*scheme_name == "always") {
        scheme = pt::PrependScheme::kAlways;
      } else if (*scheme_name == "first") {
        scheme = pt::PrependScheme::kFirst;
      } else if (*scheme_name == "never") {
        scheme = pt::PrependScheme::kNever;
      } else {
        return json_field::Error(where, absl::StrCat("unknown prepend_scheme '", *scheme_name,
                                                     "' (expected always, first or never)"));
      }
    }
    // Older files carry `add_prefix_space` instead; false means never.
    if (auto it = j.find("add_prefix_space"); it != j.end() && it->is_boolean() && !it->get<bool>()) {
      if (scheme != pt::PrependScheme::kNever) {
        return json_field::Error(where, "add_prefix_space does not match declared prepend_scheme");
      }
      scheme = pt::PrependScheme::kNever;
    }
    SPATIALID_ASSIGN_OR_RETURN(bool split, json_field::Bool(j, "split", where, true));
    return std::unique_ptr<PreTokenizer>(new pt::Metaspace(std::move(replacement), scheme, split));
  }
  if (type == "Whitespace") {
    const std::string pattern = absl::StrCat("[", pt::kRustWordClass, "]+|[^", pt::kRustWordClass,
                                             pt::kRustSpaceClass, "]+");
    SPATIALID_ASSIGN_OR_RETURN(Regex re, Regex::Compile(pattern));
    return std::unique_ptr<PreTokenizer>(
        new pt::Split(std::move(re), SplitBehavior::kRemoved, /*invert=*/true));
  }
  if (type == "WhitespaceSplit") {
    return pt::MakeCharSplit([](char32_t c) { return IsWhitespace(c); }, SplitBehavior::kRemoved);
  }
  if (type == "Digits") {
    SPATIALID_ASSIGN_OR_RETURN(bool individual, json_field::Bool(j, "individual_digits", where, false));
    return pt::MakeCharSplit([](char32_t c) { return IsNumeric(c); },
                             individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous);
  }
  if (type == "Punctuation") {
    SplitBehavior behavior = SplitBehavior::kIsolated;
    SPATIALID_ASSIGN_OR_RETURN(auto name, json_field::OptionalString(j, "behavior", where));
    if (name.has_value()) {
      auto parsed = ParseSplitBehavior(*name);
      if (!parsed.ok()) return json_field::Error(where, parsed.status().message());
      behavior = *parsed;
    }
    return pt::MakeCharSplit([](char32_t c) { return IsPunctuation(c); }, behavior);
  }
  return json_field::Error(
      where, absl::StrCat("unsupported pre_tokenizer type '", type,
                          "' (supported: Sequence, Split, ByteLevel, Metaspace, Whitespace, "
                          "WhitespaceSplit, Digits, Punctuation)"));
}

}  // namespace spatialid::text
