// Oniguruma regular expressions, iterated the way HF tokenizers does.
//
// tokenizer.json patterns (`Split`, `Replace`) are written for Oniguruma:
// HF tokenizers compiles them with the `onig` crate (Oniguruma's default
// syntax, UTF-8) and walks matches with its `find_iter`, which skips an
// empty match that ends where the previous match ended. `Regex` does the
// same with the system Oniguruma, so `\p{L}`, `(?i:...)` and lookahead mean
// exactly what they mean in HF. `Regex::Literal` matches a plain string
// (HF escapes such patterns; Oniguruma's ASIS syntax needs no escaping).
//
// A compiled `Regex` is immutable and may be searched from several threads.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(text::Regex re, text::Regex::Compile(R"(\p{L}+)"));
//   for (auto [begin, end] : re.FindAll("hello world")) ...
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// glibc's <regex.h> (pulled in by gtest, among others) defines
// `struct re_registers` and `regex_t` too; Oniguruma's versions get private
// names here so both headers can meet in one translation unit. The C API is
// used only through Oniguruma's own typedefs (OnigRegion, OnigRegex).
#define ONIG_ESCAPE_REGEX_T_COLLISION 1
#define re_registers spatialid_onig_re_registers
#define re_pattern_buffer spatialid_onig_re_pattern_buffer
#include <oniguruma.h>
#undef re_pattern_buffer
#undef re_registers

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/text/unicode.h"

namespace spatialid::text {

// Byte offsets [begin, end) of one match.
using MatchRange = std::pair<size_t, size_t>;

class Regex {
 public:
  // Compiles an Oniguruma pattern (default syntax, UTF-8, no options).
  static absl::StatusOr<Regex> Compile(std::string_view pattern) {
    return Build(pattern, ONIG_SYNTAX_DEFAULT);
  }

  // A pattern that matches `text` literally.
  static absl::StatusOr<Regex> Literal(std::string_view text) {
    return Build(text, ONIG_SYNTAX_ASIS);
  }

  const std::string& pattern() const { return pattern_; }

  // Successive non-overlapping matches in `text`, as the onig crate's
  // `find_iter` yields them.
  std::vector<MatchRange> FindAll(std::string_view text) const {
    std::vector<MatchRange> out;
    FindAll(text, &out);
    return out;
  }

  void FindAll(std::string_view text, std::vector<MatchRange>* out) const {
    out->clear();
    OnigRegion* region = ThreadRegion();
    const auto* start = reinterpret_cast<const OnigUChar*>(text.data());
    const auto* end = start + text.size();
    size_t last_end = 0;
    bool have_last = false;
    size_t last_match_end = 0;
    while (last_end <= text.size()) {
      onig_region_clear(region);
      const int r = onig_search(regex_.get(), start, end, start + last_end, end, region,
                                ONIG_OPTION_NONE);
      if (r < 0) break;  // ONIG_MISMATCH, or an engine error: no more matches
      const auto s = static_cast<size_t>(region->beg[0]);
      const auto e = static_cast<size_t>(region->end[0]);
      if (s == e && have_last && last_match_end == e) {
        // An empty match right after the previous one: step one character.
        last_end += last_end < text.size()
                        ? Utf8SequenceLength(static_cast<unsigned char>(text[last_end]))
                        : 1;
        continue;
      }
      last_end = e;
      have_last = true;
      last_match_end = e;
      out->emplace_back(s, e);
    }
  }

  // Whether the pattern matches anywhere in `text`.
  bool Matches(std::string_view text) const {
    OnigRegion* region = ThreadRegion();
    const auto* start = reinterpret_cast<const OnigUChar*>(text.data());
    const auto* end = start + text.size();
    return onig_search(regex_.get(), start, end, start, end, region, ONIG_OPTION_NONE) >= 0;
  }

 private:
  struct RegexFree {
    void operator()(OnigRegex r) const { onig_free(r); }
  };

  Regex(std::string pattern, OnigRegex regex) : pattern_(std::move(pattern)), regex_(regex) {}

  static void InitializeOnce() {
    static const bool initialized = [] {
      OnigEncoding encodings[1] = {ONIG_ENCODING_UTF8};
      onig_initialize(encodings, 1);
      return true;
    }();
    (void)initialized;
  }

  // One match region per thread, reused across searches.
  static OnigRegion* ThreadRegion() {
    struct Holder {
      OnigRegion* region = onig_region_new();
      ~Holder() { onig_region_free(region, 1); }
    };
    thread_local Holder holder;
    return holder.region;
  }

  static absl::StatusOr<Regex> Build(std::string_view pattern, OnigSyntaxType* syntax) {
    InitializeOnce();
    OnigRegex reg = nullptr;
    OnigErrorInfo info;
    const auto* p = reinterpret_cast<const OnigUChar*>(pattern.data());
    const int r = onig_new(&reg, p, p + pattern.size(), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8,
                           syntax, &info);
    if (r != ONIG_NORMAL) {
      OnigUChar message[ONIG_MAX_ERROR_MESSAGE_LEN];
      onig_error_code_to_str(message, r, &info);
      return absl::InvalidArgumentError(absl::StrCat("invalid regex \"", AbslView(pattern),
                                                     "\": ", reinterpret_cast<char*>(message)));
    }
    return Regex(std::string(pattern), reg);
  }

  std::string pattern_;
  std::unique_ptr<OnigRegexType, RegexFree> regex_;
};

}  // namespace spatialid::text
