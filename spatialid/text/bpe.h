// The BPE model of tokenizer.json (the `model` section with type "BPE").
//
// One word (a piece after pre-tokenization) becomes ids in three steps, the
// way HF tokenizers' `BPE::merge_word` does it:
//  1. every character is looked up in the vocabulary (with
//     `continuing_subword_prefix` / `end_of_word_suffix` where set); a
//     character that is missing becomes its `<0xNN>` byte tokens when
//     `byte_fallback` is on (Llama 2, Gemma 3), else `unk_token` (fused
//     with a preceding unknown when `fuse_unk`), else it is dropped;
//  2. merges are applied lowest rank first, leftmost first among equal
//     ranks, with a priority queue over a linked list of symbols (stale
//     queue entries are skipped exactly as HF skips them, so the rare words
//     where the order matters come out the same);
//  3. with `ignore_merges` (Llama 3) a word that is itself in the
//     vocabulary is that one token, merges or not.
// Results for words shorter than 256 bytes are cached (thread-safe).
//
// Merges are read in both serialisations: "a b" strings and ["a", "b"]
// pairs. `dropout` must be null or 0: sampling would make ids random.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "spatialid/text/tokenizer_json.h"
#include "spatialid/text/unicode.h"
#include "spatialid/util/status.h"

namespace spatialid::text {

class BpeModel {
 public:
  // Ids above this are rejected as a malformed file rather than allocated.
  static constexpr int64_t kMaxTokenId = (int64_t{1} << 26) - 1;
  // Words at least this long (bytes) are not cached, as in HF.
  static constexpr size_t kMaxCachedWordBytes = 256;
  static constexpr size_t kCacheCapacity = 1 << 16;

  static absl::StatusOr<BpeModel> FromJson(const nlohmann::json& j, const std::string& where) {
    BpeModel m;
    if (auto it = j.find("dropout"); it != j.end() && !it->is_null()) {
      if (!it->is_number() || it->get<double>() != 0.0) {
        return json_field::Error(where, "BPE dropout must be null or 0 (sampled merges would "
                                        "make token ids random)");
      }
    }
    SPATIALID_ASSIGN_OR_RETURN(m.unk_token_, json_field::OptionalString(j, "unk_token", where));
    SPATIALID_ASSIGN_OR_RETURN(auto prefix,
                               json_field::OptionalString(j, "continuing_subword_prefix", where));
    SPATIALID_ASSIGN_OR_RETURN(auto suffix,
                               json_field::OptionalString(j, "end_of_word_suffix", where));
    m.prefix_ = prefix.value_or("");
    m.suffix_ = suffix.value_or("");
    SPATIALID_ASSIGN_OR_RETURN(m.fuse_unk_, json_field::Bool(j, "fuse_unk", where, false));
    SPATIALID_ASSIGN_OR_RETURN(m.byte_fallback_, json_field::Bool(j, "byte_fallback", where, false));
    SPATIALID_ASSIGN_OR_RETURN(m.ignore_merges_, json_field::Bool(j, "ignore_merges", where, false));

    auto vocab_it = j.find("vocab");
    if (vocab_it == j.end() || !vocab_it->is_object()) {
      return json_field::Error(where, "field \"vocab\" must be an object of token -> id");
    }
    m.vocab_.reserve(vocab_it->size());
    int32_t max_id = -1;
    for (auto it = vocab_it->begin(); it != vocab_it->end(); ++it) {
      if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
          it.value().get<int64_t>() > kMaxTokenId) {
        return json_field::Error(where, absl::StrCat("vocab entry \"", it.key(),
                                                     "\" must map to an id in [0, ",
                                                     kMaxTokenId, "]"));
      }
      const auto id = static_cast<int32_t>(it.value().get<int64_t>());
      m.vocab_[it.key()] = id;
      max_id = std::max(max_id, id);
    }
    m.id_to_token_.resize(static_cast<size_t>(max_id + 1));
    m.has_id_.assign(static_cast<size_t>(max_id + 1), false);
    for (const auto& [token, id] : m.vocab_) {
      m.id_to_token_[id] = token;
      m.has_id_[id] = true;
    }

    auto merges_it = j.find("merges");
    if (merges_it == j.end() || !merges_it->is_array()) {
      return json_field::Error(where, "field \"merges\" must be an array");
    }
    m.merges_.reserve(merges_it->size());
    std::string a, b;
    for (size_t rank = 0; rank < merges_it->size(); ++rank) {
      const auto& entry = (*merges_it)[rank];
      if (entry.is_string()) {
        const std::string& line = entry.get_ref<const std::string&>();
        const size_t space = line.find(' ');
        if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
          return json_field::Error(
              where, absl::StrCat("merges[", rank, "] \"", line, "\" is not two tokens \"a b\""));
        }
        a = line.substr(0, space);
        b = line.substr(space + 1);
      } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() &&
                 entry[1].is_string()) {
        a = entry[0].get<std::string>();
        b = entry[1].get<std::string>();
      } else {
        return json_field::Error(where, absl::StrCat("merges[", rank,
                                                     "] must be \"a b\" or [\"a\", \"b\"]"));
      }
      auto ia = m.vocab_.find(a);
      auto ib = m.vocab_.find(b);
      if (ia == m.vocab_.end() || ib == m.vocab_.end()) {
        return json_field::Error(where, absl::StrCat("merges[", rank, "] uses token \"",
                                                     ia == m.vocab_.end() ? a : b,
                                                     "\" that is not in the vocab"));
      }
      if (b.size() < m.prefix_.size()) {
        return json_field::Error(where, absl::StrCat("merges[", rank, "] token \"", b,
                                                     "\" is shorter than the subword prefix"));
      }
      std::string merged = a + b.substr(m.prefix_.size());
      auto im = m.vocab_.find(merged);
      if (im == m.vocab_.end()) {
        return json_field::Error(where, absl::StrCat("merges[", rank, "] makes \"", merged,
                                                     "\" that is not in the vocab"));
      }
      // A repeated pair keeps its last rank, like HF's HashMap collect.
      m.merges_[PairKey(ia->second, ib->second)] = {static_cast<uint32_t>(rank), im->second};
    }

    if (m.unk_token_.has_value()) {
      auto it = m.vocab_.find(*m.unk_token_);
      if (it != m.vocab_.end()) m.unk_id_ = it->second;
    }
    for (int byte = 0; byte < 256; ++byte) {
      auto it = m.vocab_.find(absl::StrFormat("<0x%02X>", byte));
      m.byte_ids_[byte] = it == m.vocab_.end() ? -1 : it->second;
    }
    m.use_char_table_ = m.prefix_.empty() && m.suffix_.empty();
    if (m.use_char_table_) {
      m.ascii_ids_.fill(-1);
      for (const auto& [token, id] : m.vocab_) {
        if (token.empty() || Utf8SequenceLength(static_cast<unsigned char>(token[0])) != token.size()) {
          continue;
        }
        size_t pos = 0;
        const char32_t c = DecodeUtf8(token, pos);
        if (c < 128) {
          m.ascii_ids_[c] = id;
        } else {
          m.char_ids_[c] = id;
        }
      }
    }
    return m;
  }

  BpeModel(BpeModel&&) = default;
  BpeModel& operator=(BpeModel&&) = default;

  // Appends the ids of one word.
  void Tokenize(std::string_view word, std::vector<int32_t>* out) const {
    if (word.empty()) return;
    if (ignore_merges_) {
      auto it = vocab_.find(AbslView(word));
      if (it != vocab_.end()) {
        out->push_back(it->second);
        return;
      }
    }
    const bool cacheable = word.size() < kMaxCachedWordBytes;
    if (cacheable) {
      std::shared_lock lock(cache_->mutex);
      auto it = cache_->words.find(AbslView(word));
      if (it != cache_->words.end()) {
        out->insert(out->end(), it->second.begin(), it->second.end());
        return;
      }
    }
    const size_t first = out->size();
    MergeWord(word, out);
    if (cacheable) {
      std::unique_lock lock(cache_->mutex);
      if (cache_->words.size() < kCacheCapacity) {
        cache_->words.try_emplace(std::string(word), out->begin() + first, out->end());
      }
    }
  }

  std::optional<int32_t> TokenToId(std::string_view token) const {
    auto it = vocab_.find(AbslView(token));
    if (it == vocab_.end()) return std::nullopt;
    return it->second;
  }

  // The vocabulary string of `id`, or nullptr.
  const std::string* IdToToken(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || !has_id_[id]) return nullptr;
    return &id_to_token_[id];
  }

  size_t vocab_size() const { return vocab_.size(); }
  const absl::flat_hash_map<std::string, int32_t>& vocab() const { return vocab_; }
  bool byte_fallback() const { return byte_fallback_; }

 private:
  struct MergeRule {
    uint32_t rank;
    int32_t new_id;
  };
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    uint32_t len;  // bytes of the word it covers; 0 once merged away
  };
  struct QueueEntry {
    uint32_t rank;
    uint32_t pos;
    int32_t new_id;
    // Orders the std::priority_queue as a min-heap on (rank, pos).
    bool operator<(const QueueEntry& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  struct Cache {
    std::shared_mutex mutex;
    absl::flat_hash_map<std::string, std::vector<int32_t>> words;
  };

  BpeModel() : cache_(std::make_unique<Cache>()) {}

  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  const MergeRule* FindMerge(int32_t a, int32_t b) const {
    auto it = merges_.find(PairKey(a, b));
    return it == merges_.end() ? nullptr : &it->second;
  }

  int32_t LookupChar(std::string_view word, size_t begin, size_t end, bool is_first,
                     bool is_last) const {
    if (use_char_table_) {
      if (end - begin == 1) return ascii_ids_[static_cast<unsigned char>(word[begin])];
      size_t pos = begin;
      auto it = char_ids_.find(DecodeUtf8(word, pos));
      return it == char_ids_.end() ? -1 : it->second;
    }
    std::string s;
    if (!is_first) s += prefix_;
    s.append(word.substr(begin, end - begin));
    if (is_last) s += suffix_;
    auto it = vocab_.find(s);
    return it == vocab_.end() ? -1 : it->second;
  }

  void MergeWord(std::string_view word, std::vector<int32_t>* out) const {
    std::vector<Symbol> symbols;
    symbols.reserve(word.size());
    auto add = [&](int32_t id, uint32_t len) {
      const auto n = static_cast<int32_t>(symbols.size());
      if (n > 0) symbols.back().next = n;
      symbols.push_back({id, n - 1, -1, len});
    };
    int32_t unk_id = -1;  // a pending unknown token and the bytes it covers
    uint32_t unk_len = 0;
    size_t pos = 0;
    while (pos < word.size()) {
      const size_t begin = pos;
      pos += Utf8SequenceLength(static_cast<unsigned char>(word[pos]));
      if (pos > word.size()) pos = word.size();
      const auto len = static_cast<uint32_t>(pos - begin);
      const int32_t id = LookupChar(word, begin, pos, begin == 0, pos == word.size());
      if (id >= 0) {
        if (unk_id >= 0) {
          add(unk_id, unk_len);
          unk_id = -1;
        }
        add(id, len);
        continue;
      }
      // Byte tokens go in before a pending unknown, as in HF.
      if (byte_fallback_ && AddByteFallback(word, begin, pos, add)) continue;
      if (unk_token_.has_value() && unk_id_ >= 0) {
        if (unk_id >= 0 && fuse_unk_) {
          unk_len += len;
        } else {
          if (unk_id >= 0) add(unk_id, unk_len);
          unk_id = unk_id_;
          unk_len = len;
        }
      }
    }
    if (unk_id >= 0) add(unk_id, unk_len);

    std::priority_queue<QueueEntry> queue;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      if (const MergeRule* m = FindMerge(symbols[i].id, symbols[i + 1].id)) {
        queue.push({m->rank, static_cast<uint32_t>(i), m->new_id});
      }
    }
    while (!queue.empty()) {
      const QueueEntry top = queue.top();
      queue.pop();
      Symbol& current = symbols[top.pos];
      if (current.len == 0 || current.next < 0) continue;
      const Symbol right = symbols[current.next];
      const MergeRule* rule = FindMerge(current.id, right.id);
      if (rule == nullptr || rule->new_id != top.new_id) continue;  // stale entry
      const int32_t removed = current.next;
      current.id = top.new_id;
      current.len += right.len;
      current.next = right.next;
      symbols[removed].len = 0;
      if (right.next >= 0) symbols[right.next].prev = static_cast<int32_t>(top.pos);
      if (current.prev >= 0) {
        if (const MergeRule* m = FindMerge(symbols[current.prev].id, current.id)) {
          queue.push({m->rank, static_cast<uint32_t>(current.prev), m->new_id});
        }
      }
      if (current.next >= 0) {
        if (const MergeRule* m = FindMerge(current.id, symbols[current.next].id)) {
          queue.push({m->rank, top.pos, m->new_id});
        }
      }
    }
    for (const Symbol& s : symbols) {
      if (s.len != 0) out->push_back(s.id);
    }
  }

  // Adds the `<0xNN>` tokens of the character's bytes (with the subword
  // prefix / suffix where set, as HF does) if every one is in the vocab.
  template <typename Add>
  bool AddByteFallback(std::string_view word, size_t begin, size_t end, Add& add) const {
    std::string s;
    if (begin != 0) s += prefix_;
    s.append(word.substr(begin, end - begin));
    if (end == word.size()) s += suffix_;
    for (char c : s) {
      if (byte_ids_[static_cast<unsigned char>(c)] < 0) return false;
    }
    for (char c : s) add(byte_ids_[static_cast<unsigned char>(c)], 1);
    return true;
  }

  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  absl::flat_hash_map<uint64_t, MergeRule> merges_;
  std::optional<std::string> unk_token_;
  int32_t unk_id_ = -1;
  std::string prefix_, suffix_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  int32_t byte_ids_[256];
  bool use_char_table_ = false;
  std::array<int32_t, 128> ascii_ids_{};
  absl::flat_hash_map<char32_t, int32_t> char_ids_;
  std::unique_ptr<Cache> cache_;
};

}  // namespace spatialid::text
