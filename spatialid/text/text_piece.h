// The unit of text that flows through the tokenizer's encode pipeline.
//
// Encoding cuts the input into pieces: first around added tokens, then
// wherever the pre-tokenizer splits. Each piece is normalised and
// pre-tokenised on its own and finally handed to the model. A piece that is
// an added token is final and skips every later stage. `SplitPiece` is the
// one place that implements HF's split behaviours (`Removed`, `Isolated`,
// `MergedWithPrevious`, `MergedWithNext`, `Contiguous`), used by the `Split`,
// `Metaspace`, `Digits` and other pre-tokenizers alike.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/text/regex.h"
#include "spatialid/text/unicode.h"

namespace spatialid::text {

struct TextPiece {
  std::string text;
  // Byte offset in the input where the piece starts. HF's Metaspace
  // pre-tokenizer with `prepend_scheme: "first"` prepends only to a piece
  // that starts the input; pieces split off later start after it.
  size_t original_begin = 0;
  // >= 0 when the piece is an added token (its id); such pieces are final.
  int32_t token_id = -1;

  bool is_token() const { return token_id >= 0; }
};

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

inline absl::StatusOr<SplitBehavior> ParseSplitBehavior(std::string_view name) {
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown split behavior '", AbslView(name),
      "' (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous)"));
}

// A stretch of a string and whether it matched the pattern.
struct MatchSpan {
  size_t begin;
  size_t end;
  bool is_match;
};

// Covers `size` bytes with the given matches and the gaps between them, in
// order (HF `Pattern::find_matches`). An empty string gives one empty gap.
inline void CoverWithMatches(size_t size, const std::vector<MatchRange>& matches,
                             std::vector<MatchSpan>* out) {
  out->clear();
  if (size == 0) {
    out->push_back({0, 0, false});
    return;
  }
  size_t prev = 0;
  for (const auto& [begin, end] : matches) {
    if (prev != begin) out->push_back({prev, begin, false});
    out->push_back({begin, end, true});
    prev = end;
  }
  if (prev != size) out->push_back({prev, size, false});
}

// Spans for every character for which `pred` holds (HF's `Fn(char) -> bool`
// pattern): each such character is its own match.
template <typename Pred>
void CoverWithCharMatches(std::string_view text, Pred pred, std::vector<MatchSpan>* out) {
  out->clear();
  if (text.empty()) {
    out->push_back({0, 0, false});
    return;
  }
  size_t last = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t begin = pos;
    const char32_t c = DecodeUtf8(text, pos);
    if (pred(c)) {
      if (last < begin) out->push_back({last, begin, false});
      out->push_back({begin, pos, true});
      last = pos;
    }
  }
  if (last < text.size()) out->push_back({last, text.size(), false});
}

// Cuts `piece` along `spans` with HF's split behaviours and appends the
// non-empty results to `out`.
inline void SplitPiece(const TextPiece& piece, const std::vector<MatchSpan>& spans,
                       SplitBehavior behavior, std::vector<TextPiece>* out) {
  struct Cut {
    size_t begin, end;
    bool remove;
  };
  std::vector<Cut> cuts;
  cuts.reserve(spans.size());
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const auto& s : spans) cuts.push_back({s.begin, s.end, false});
      break;
    case SplitBehavior::kRemoved:
      for (const auto& s : spans) cuts.push_back({s.begin, s.end, s.is_match});
      break;
    case SplitBehavior::kContiguous: {
      bool previous_match = false;
      for (const auto& s : spans) {
        if (s.is_match == previous_match && !cuts.empty()) {
          cuts.back().end = s.end;
        } else {
          cuts.push_back({s.begin, s.end, false});
        }
        previous_match = s.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const auto& s : spans) {
        if (s.is_match && !previous_match && !cuts.empty()) {
          cuts.back().end = s.end;
        } else {
          cuts.push_back({s.begin, s.end, false});
        }
        previous_match = s.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous_match = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !cuts.empty()) {
          cuts.back().begin = it->begin;
        } else {
          cuts.push_back({it->begin, it->end, false});
        }
        previous_match = it->is_match;
      }
      std::reverse(cuts.begin(), cuts.end());
      break;
    }
  }
  for (const auto& cut : cuts) {
    if (cut.remove || cut.begin == cut.end) continue;
    if (cut.begin == 0 && cut.end == piece.text.size()) {
      out->push_back(piece);
      continue;
    }
    TextPiece sub;
    sub.text.assign(piece.text, cut.begin, cut.end - cut.begin);
    sub.original_begin = piece.original_begin + cut.begin;
    out->push_back(std::move(sub));
  }
}

}  // namespace spatialid::text
