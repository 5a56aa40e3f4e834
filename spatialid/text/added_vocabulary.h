// Added tokens (tokenizer.json `added_tokens`): chat markers, image
// placeholders, BOS/EOS and the like.
//
// Before anything else touches the text, HF cuts it around added tokens so
// that `<|im_start|>` or `<start_of_image>` becomes its one id and is never
// normalised or split. It does so in two passes, reproduced here:
//  1. tokens with `normalized: false` are found in the raw text;
//  2. every stretch between them is normalised, then tokens with
//     `normalized: true` are found in the normalised text (their content
//     normalised the same way).
// Matching is leftmost-longest over all tokens (HF uses Aho-Corasick with
// that match kind). `single_word` rejects a match glued to a word character
// on either side; `lstrip` / `rstrip` swallow the whitespace before / after
// the token. Ids follow HF's `add_tokens`: a token already in the model's
// vocabulary keeps that id, others are numbered after the largest id.
// `special` only matters for decoding with `skip_special_tokens`.
#pragma once

#include <algorithm>
#include <bitset>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "spatialid/text/bpe.h"
#include "spatialid/text/normalizer.h"
#include "spatialid/text/regex.h"
#include "spatialid/text/text_piece.h"
#include "spatialid/text/unicode.h"

namespace spatialid::text {

struct AddedToken {
  std::string content;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;

  bool operator==(const AddedToken&) const = default;
};

class AddedVocabulary {
 public:
  // Registers `tokens` the way HF's `AddedVocabulary::add_tokens` does and
  // returns how many were added (empty or identical re-adds are ignored).
  size_t Add(const std::vector<AddedToken>& tokens, const BpeModel& model,
             const Normalizer* normalizer) {
    for (const auto& token : tokens) {
      if (token.special && !token.content.empty() && special_set_.insert(token.content).second) {
        special_tokens_.push_back(token);
      }
    }
    const auto vocab_size = static_cast<int32_t>(model.vocab_size());
    int32_t next_id = vocab_size;
    if (!by_id_.empty()) {
      int32_t max_id = -1;
      for (const auto& [id, token] : by_id_) max_id = std::max(max_id, id);
      next_id = (max_id >= vocab_size || vocab_size == 0) ? max_id + 1 : vocab_size;
    }
    size_t added = 0;
    for (const auto& token : tokens) {
      if (token.content.empty() || IsRegistered(token)) continue;
      int32_t id;
      if (auto existing = TokenToId(token.content, model)) {
        id = *existing;
      } else {
        id = next_id++;
      }
      if (auto previous = by_id_.find(id); previous != by_id_.end()) {
        registered_.erase(RegistrationKey(previous->second));
      }
      by_content_[token.content] = id;
      by_id_[id] = token;
      registered_.insert(RegistrationKey(token));
      if (!special_set_.contains(token.content)) plain_tokens_.push_back(token);
      ++added;
    }
    Refresh(model, normalizer);
    return added;
  }

  std::optional<int32_t> TokenToId(std::string_view content, const BpeModel& model) const {
    auto it = by_content_.find(AbslView(content));
    if (it != by_content_.end()) return it->second;
    return model.TokenToId(content);
  }

  const AddedToken* FindById(int32_t id) const {
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : &it->second;
  }

  std::optional<int32_t> FindByContent(std::string_view content) const {
    auto it = by_content_.find(AbslView(content));
    if (it == by_content_.end()) return std::nullopt;
    return it->second;
  }

  // Whether `token` (a token string) is the content of a special token.
  bool IsSpecialContent(std::string_view token) const { return special_set_.contains(AbslView(token)); }

  const absl::flat_hash_map<int32_t, AddedToken>& by_id() const { return by_id_; }
  const absl::flat_hash_map<std::string, int32_t>& by_content() const { return by_content_; }

  // Cuts `text` (valid UTF-8) into added-token pieces and normalised text
  // pieces (steps 1 and 2 above), appending them to `out`.
  void ExtractAndNormalize(std::string_view text, const Normalizer* normalizer,
                           std::vector<TextPiece>* out) const {
    std::vector<Match> matches;
    FindMatches(text, raw_, &matches);
    for (const auto& m : matches) {
      if (m.end == m.begin) continue;
      if (m.id >= 0) {
        out->push_back(TextPiece{std::string(), m.begin, m.id});
        continue;
      }
      TextPiece piece{std::string(text.substr(m.begin, m.end - m.begin)), m.begin, -1};
      if (normalizer != nullptr) normalizer->Normalize(piece);
      if (piece.text.empty()) continue;
      if (normalized_.patterns.empty()) {
        out->push_back(std::move(piece));
        continue;
      }
      std::vector<Match> inner;
      FindMatches(piece.text, normalized_, &inner);
      for (const auto& n : inner) {
        if (n.end == n.begin) continue;
        const size_t origin = piece.original_begin + n.begin;
        if (n.id >= 0) {
          out->push_back(TextPiece{std::string(), origin, n.id});
        } else {
          out->push_back(
              TextPiece{piece.text.substr(n.begin, n.end - n.begin), origin, -1});
        }
      }
    }
  }

  // Rebuilds the matchers, e.g. after the normalizer changed (normalized
  // tokens are matched in their normalised spelling).
  void Refresh(const BpeModel& model, const Normalizer* normalizer) {
    raw_ = Trie();
    normalized_ = Trie();
    auto add = [&](const AddedToken& token) {
      const auto id = TokenToId(token.content, model);
      if (!id.has_value()) return;
      if (!token.normalized) {
        raw_.Insert(token.content, *id);
        return;
      }
      TextPiece piece{token.content, 0, -1};
      if (normalizer != nullptr) normalizer->Normalize(piece);
      normalized_.Insert(piece.text, *id);
    };
    for (const auto& token : special_tokens_) add(token);
    for (const auto& token : plain_tokens_) add(token);
    if (word_char_ == nullptr) {
      auto re = Regex::Compile(R"(\A[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}])");
      if (re.ok()) word_char_ = std::make_shared<Regex>(std::move(*re));
    }
  }

 private:
  // Leftmost-longest matcher over a set of byte strings.
  struct Trie {
    struct Node {
      int32_t pattern = -1;  // index into `patterns` when a pattern ends here
    };
    std::vector<Node> nodes{Node{}};
    absl::flat_hash_map<uint64_t, int32_t> edges;  // (node << 8 | byte) -> node
    std::bitset<256> first_bytes;
    std::vector<std::pair<std::string, int32_t>> patterns;  // content, token id

    void Insert(const std::string& s, int32_t id) {
      if (s.empty()) return;
      int32_t node = 0;
      for (char c : s) {
        const uint64_t key = (static_cast<uint64_t>(node) << 8) | static_cast<unsigned char>(c);
        auto it = edges.find(key);
        if (it == edges.end()) {
          nodes.push_back(Node{});
          it = edges.emplace(key, static_cast<int32_t>(nodes.size() - 1)).first;
        }
        node = it->second;
      }
      if (nodes[node].pattern < 0) {
        nodes[node].pattern = static_cast<int32_t>(patterns.size());
        patterns.emplace_back(s, id);
      }
      first_bytes.set(static_cast<unsigned char>(s[0]));
    }

    // The longest pattern starting at `pos`: (end, pattern index) or -1.
    std::pair<size_t, int32_t> LongestAt(std::string_view text, size_t pos) const {
      int32_t node = 0;
      std::pair<size_t, int32_t> best{pos, -1};
      for (size_t i = pos; i < text.size(); ++i) {
        const uint64_t key =
            (static_cast<uint64_t>(node) << 8) | static_cast<unsigned char>(text[i]);
        auto it = edges.find(key);
        if (it == edges.end()) break;
        node = it->second;
        if (nodes[node].pattern >= 0) best = {i + 1, nodes[node].pattern};
      }
      return best;
    }
  };

  // One stretch of a string: an added token (id >= 0) or text (id = -1).
  struct Match {
    size_t begin, end;
    int32_t id;
  };

  // HF skips a token equal in every field to one already registered.
  static std::string RegistrationKey(const AddedToken& t) {
    std::string key = t.content;
    key.push_back('\0');
    for (bool flag : {t.special, t.single_word, t.lstrip, t.rstrip, t.normalized}) {
      key.push_back(flag ? '1' : '0');
    }
    return key;
  }

  bool IsRegistered(const AddedToken& token) const {
    return registered_.contains(RegistrationKey(token));
  }

  bool StartsWithWord(std::string_view s) const {
    return !s.empty() && word_char_ != nullptr && word_char_->Matches(s);
  }

  bool EndsWithWord(std::string_view s) const {
    if (s.empty()) return false;
    size_t last = s.size() - 1;
    while (last > 0 && (static_cast<unsigned char>(s[last]) & 0xC0) == 0x80) --last;
    return StartsWithWord(s.substr(last));
  }

  // HF `AddedVocabulary::find_matches`.
  void FindMatches(std::string_view sentence, const Trie& trie, std::vector<Match>* out) const {
    out->clear();
    if (sentence.empty()) return;
    size_t start_offset = 0;
    size_t pos = 0;
    while (pos < sentence.size()) {
      if (!trie.first_bytes.test(static_cast<unsigned char>(sentence[pos]))) {
        ++pos;
        continue;
      }
      const auto [match_end, pattern] = trie.LongestAt(sentence, pos);
      if (pattern < 0) {
        ++pos;
        continue;
      }
      size_t start = pos;
      size_t stop = match_end;
      pos = match_end;  // the automaton resumes after the raw match
      const int32_t id = trie.patterns[pattern].second;
      const AddedToken* token = FindById(id);
      if (token == nullptr) continue;
      if (token->single_word) {
        const bool start_space = start == 0 || !EndsWithWord(sentence.substr(0, start));
        const bool stop_space =
            stop == sentence.size() || !StartsWithWord(sentence.substr(stop));
        if (!start_space || !stop_space) continue;
      }
      if (token->lstrip) {
        start = std::max(TrailingWhitespaceStart(sentence.substr(0, start)), start_offset);
      }
      if (token->rstrip) stop += LeadingWhitespaceLength(sentence.substr(stop));
      if (start_offset < start) out->push_back({start_offset, start, -1});
      out->push_back({start, stop, id});
      start_offset = stop;
    }
    if (start_offset != sentence.size()) out->push_back({start_offset, sentence.size(), -1});
  }

  absl::flat_hash_map<std::string, int32_t> by_content_;
  absl::flat_hash_map<int32_t, AddedToken> by_id_;
  std::vector<AddedToken> special_tokens_;
  std::vector<AddedToken> plain_tokens_;
  absl::flat_hash_set<std::string> special_set_;
  absl::flat_hash_set<std::string> registered_;  // RegistrationKey of by_id_ values
  Trie raw_;
  Trie normalized_;
  std::shared_ptr<const Regex> word_char_;
};

}  // namespace spatialid::text
