// Decoders of tokenizer.json (the `decoder` section): token strings back to
// text.
//
// A decoder rewrites the list of token strings; the pieces are joined at the
// end. Llama 2 and Gemma 3 chain `Replace` (`▁` -> " "), `ByteFallback`
// (`<0xE2><0x96><0x81>` -> the character, or one U+FFFD per byte when the
// bytes are not valid UTF-8), `Fuse` and, for Llama 2, `Strip` (the space
// the normaliser prepended). Llama 3 and Qwen use `ByteLevel`, which turns
// characters back into bytes and repairs invalid UTF-8 like Rust's
// `from_utf8_lossy`. `Metaspace` and `Sequence` are read too.
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
#include "absl/strings/str_join.h"
#include "spatialid/text/byte_level.h"
#include "spatialid/text/normalizer.h"
#include "spatialid/text/pre_tokenizer.h"
#include "spatialid/text/regex.h"
#include "spatialid/text/tokenizer_json.h"
#include "spatialid/text/unicode.h"
#include "spatialid/util/status.h"

namespace spatialid::text {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void DecodeChain(std::vector<std::string>& tokens) const = 0;
};

namespace decoders {

class Sequence final : public Decoder {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    for (const auto& step : steps_) step->DecodeChain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

class ByteLevel final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>& tokens) const override {
    const ByteLevelTable& table = ByteLevelTable::Get();
    std::string bytes;
    for (const std::string& token : tokens) {
      const size_t mark = bytes.size();
      size_t pos = 0;
      bool all_mapped = true;
      while (pos < token.size()) {
        const int b = table.ByteFor(DecodeUtf8(token, pos));
        if (b < 0) {
          all_mapped = false;
          break;
        }
        bytes.push_back(static_cast<char>(b));
      }
      // A token with a character outside the table (an added token such as
      // "<|im_start|>" maps fine; "ü" would not) contributes its raw bytes.
      if (!all_mapped) {
        bytes.resize(mark);
        bytes.append(token);
      }
    }
    tokens.assign(1, ToValidUtf8(bytes));
  }
};

class ByteFallback final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      if (IsValidUtf8(pending)) {
        out.push_back(pending);
      } else {
        for (size_t i = 0; i < pending.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
    };
    for (std::string& token : tokens) {
      int byte = -1;
      if (token.size() == 6 && token.compare(0, 3, "<0x") == 0 && token[5] == '>') {
        byte = ParseHexByte(std::string_view(token).substr(3, 2));
      }
      if (byte >= 0) {
        pending.push_back(static_cast<char>(byte));
      } else {
        flush();
        out.push_back(std::move(token));
      }
    }
    flush();
    tokens = std::move(out);
  }

 private:
  // Rust `u8::from_str_radix(s, 16)` on two characters (a leading '+' is
  // accepted, as Rust does).
  static int ParseHexByte(std::string_view s) {
    auto digit = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    if (s[0] == '+') return digit(s[1]);
    const int hi = digit(s[0]), lo = digit(s[1]);
    if (hi < 0 || lo < 0) return -1;
    return hi * 16 + lo;
  }
};

class Fuse final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>& tokens) const override {
    tokens.assign(1, absl::StrJoin(tokens, ""));
  }
};

// Removes up to `start` leading and `stop` trailing `content` characters
// from every token.
class Strip final : public Decoder {
 public:
  Strip(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) {
      std::vector<size_t> starts;  // byte offset of each character
      for (size_t pos = 0; pos < token.size();) {
        starts.push_back(pos);
        pos += Utf8SequenceLength(static_cast<unsigned char>(token[pos]));
      }
      const size_t n = starts.size();
      auto char_at = [&](size_t i) {
        const size_t end = i + 1 < n ? starts[i + 1] : token.size();
        return std::string_view(token).substr(starts[i], end - starts[i]);
      };
      size_t start_cut = 0;
      for (size_t i = 0; i < start_ && i < n && char_at(i) == content_; ++i) start_cut = i + 1;
      size_t stop_cut = n;
      for (size_t i = 0; i < stop_ && i < n && char_at(n - 1 - i) == content_; ++i) {
        stop_cut = n - 1 - i;
      }
      if (stop_cut < start_cut) stop_cut = start_cut;
      const size_t begin_byte = start_cut < n ? starts[start_cut] : token.size();
      const size_t end_byte = stop_cut < n ? starts[stop_cut] : token.size();
      token = token.substr(begin_byte, end_byte - begin_byte);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

// Replaces pattern matches inside every token.
class Replace final : public Decoder {
 public:
  Replace(Regex pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    std::vector<MatchRange> matches;
    for (std::string& token : tokens) {
      pattern_.FindAll(token, &matches);
      if (matches.empty()) continue;
      std::string out;
      size_t last = 0;
      for (const auto& [begin, end] : matches) {
        out.append(token, last, begin - last);
        out.append(content_);
        last = end;
      }
      out.append(token, last, std::string::npos);
      token = std::move(out);
    }
  }

 private:
  Regex pattern_;
  std::string content_;
};

// `▁` back to spaces; the first token's leading `▁` is dropped unless the
// prepend scheme is "never".
class Metaspace final : public Decoder {
 public:
  Metaspace(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& token = tokens[i];
      size_t pos = 0;
      while (pos < token.size()) {
        if (token.compare(pos, replacement_.size(), replacement_) == 0) {
          if (!(i == 0 && strip_first_)) out.push_back(' ');
          pos += replacement_.size();
        } else {
          const size_t n = Utf8SequenceLength(static_cast<unsigned char>(token[pos]));
          out.append(token, pos, n);
          pos += n;
        }
      }
      tokens[i] = std::move(out);
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

}  // namespace decoders

// Builds the decoder a tokenizer.json `decoder` object describes.
inline absl::StatusOr<std::unique_ptr<Decoder>> ParseDecoder(const nlohmann::json& j,
                                                             const std::string& where) {
  namespace dc = decoders;
  SPATIALID_ASSIGN_OR_RETURN(std::string type, json_field::Type(j, where));
  if (type == "Sequence") {
    SPATIALID_ASSIGN_OR_RETURN(
        auto steps, json_field::ParseEach<Decoder>(j, "decoders", where, ParseDecoder));
    return std::unique_ptr<Decoder>(new dc::Sequence(std::move(steps)));
  }
  if (type == "ByteLevel") return std::unique_ptr<Decoder>(new dc::ByteLevel());
  if (type == "ByteFallback") return std::unique_ptr<Decoder>(new dc::ByteFallback());
  if (type == "Fuse") return std::unique_ptr<Decoder>(new dc::Fuse());
  if (type == "Strip") {
    SPATIALID_ASSIGN_OR_RETURN(std::string content, json_field::Char(j, "content", where));
    SPATIALID_ASSIGN_OR_RETURN(int64_t start, json_field::Int(j, "start", where));
    SPATIALID_ASSIGN_OR_RETURN(int64_t stop, json_field::Int(j, "stop", where));
    if (start < 0 || stop < 0) return json_field::Error(where, "start and stop must be >= 0");
    return std::unique_ptr<Decoder>(new dc::Strip(std::move(content), static_cast<size_t>(start),
                                                  static_cast<size_t>(stop)));
  }
  if (type == "Replace") {
    SPATIALID_ASSIGN_OR_RETURN(Regex pattern, ParsePattern(j, where));
    SPATIALID_ASSIGN_OR_RETURN(std::string content, json_field::String(j, "content", where));
    return std::unique_ptr<Decoder>(new dc::Replace(std::move(pattern), std::move(content)));
  }
  if (type == "Metaspace") {
    // Read with the pre-tokenizer's rules so both agree on the scheme.
    SPATIALID_ASSIGN_OR_RETURN(auto as_pre_tokenizer, ParsePreTokenizer(j, where));
    const auto& metaspace = static_cast<const pre_tokenizers::Metaspace&>(*as_pre_tokenizer);
    return std::unique_ptr<Decoder>(
        new dc::Metaspace(metaspace.replacement(),
                          metaspace.scheme() != pre_tokenizers::PrependScheme::kNever));
  }
  return json_field::Error(where, absl::StrCat("unsupported decoder type '", type,
                                               "' (supported: Sequence, ByteLevel, ByteFallback, "
                                               "Fuse, Strip, Replace, Metaspace)"));
}

}  // namespace spatialid::text
