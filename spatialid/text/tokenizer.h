// A Hugging Face `tokenizer.json` tokenizer, without libtorch.
//
// `Tokenizer` loads one tokenizer.json and encodes and decodes exactly as HF
// `tokenizers` (the Rust library under transformers' fast tokenizers) does
// for the BPE tokenizers of spatialid's model families: Llama 2 (LLaVA-1.5;
// byte fallback, `▁` spaces), Llama 3 (Mllama; byte-level BPE with a regex
// split), Qwen2/2.5 (Qwen-VL, InternVL3; byte-level, NFC) and Gemma 3 (byte
// fallback, 262k vocabulary). The pipeline is HF's:
//   added tokens cut out -> normalizer (per piece) -> pre-tokenizer
//   -> BPE per word -> post-processor (BOS when add_special_tokens)
// with each stage in its own header (added_vocabulary.h, normalizer.h,
// pre_tokenizer.h, bpe.h, post_processor.h, decoder.h). Component types
// the file uses but this code does not implement are reported by name when
// the file is loaded, never silently ignored.
//
// The reference pipeline picks the hidden state of a "target token": the
// LAST sub-token of `" " + word`, found at its FIRST position in the prompt
// (docs/reference_pipeline.md section 2). `TargetToken` and `FindFirst` implement that
// rule.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(text::Tokenizer tok,
//                              text::Tokenizer::FromFile(dir + "/tokenizer.json"));
//   std::vector<int32_t> ids = tok.Encode("Is the frog left of the camel?", true);
//   SPATIALID_ASSIGN_OR_RETURN(text::SubToken frog, tok.TargetToken("frog"));
//   std::optional<size_t> at = text::Tokenizer::FindFirst(ids, frog.id);
//
// Encoding is thread-safe (the per-word BPE cache is locked). Input that is
// not valid UTF-8 is repaired first (one U+FFFD per invalid sequence, as
// Python's `decode("utf-8", "replace")`), since HF only accepts valid text.
//
// Where results can still differ from HF (none on the four real files over
// the oracle corpus): Unicode data versions (system Oniguruma 6.9.8 and
// utf8proc 2.8 know Unicode 15.0; HF bundles Oniguruma 6.9.9 / 15.1, the
// Rust regex crate's Unicode 16 for `Whitespace`, and older normalisation
// tables, e.g. NFKC leaves U+AB69 alone); Metaspace's "first" scheme tracks
// only where each piece starts in the input, not HF's per-character
// alignments (they differ only when a normaliser expands the first
// character and a split falls inside the expansion); an `unk_token` missing
// from the vocabulary drops unknown characters where HF raises an error.
// To get the ids transformers' AutoTokenizer produces (it rebuilds parts of
// some tokenizers, e.g. Llama's), load with tokenizer_pretrained.h.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spatialid/text/added_vocabulary.h"
#include "spatialid/text/bpe.h"
#include "spatialid/text/decoder.h"
#include "spatialid/text/normalizer.h"
#include "spatialid/text/post_processor.h"
#include "spatialid/text/pre_tokenizer.h"
#include "spatialid/text/text_piece.h"
#include "spatialid/text/tokenizer_json.h"
#include "spatialid/text/unicode.h"
#include "spatialid/util/status.h"

namespace spatialid::text {

// One token: its string as the vocabulary spells it (`▁f`, `Ġfrog`) and id.
struct SubToken {
  std::string token;
  int32_t id = -1;
};

class Tokenizer {
 public:
  // Loads a tokenizer.json file. Errors name the file and what is wrong:
  // missing, not JSON, a missing field, an unsupported component type.
  static absl::StatusOr<Tokenizer> FromFile(const std::string& path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": is a directory; expected the path of a tokenizer.json file"));
    }
    if (!std::filesystem::is_regular_file(path, ec)) {
      return absl::NotFoundError(absl::StrCat(path, ": no such tokenizer file"));
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      return absl::NotFoundError(absl::StrCat(path, ": cannot open tokenizer file"));
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
    return FromJsonText(buffer.str(), path);
  }

  // Loads tokenizer.json content; `name` labels errors.
  static absl::StatusOr<Tokenizer> FromJsonText(std::string_view json_text,
                                                std::string_view name = "tokenizer.json") {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(json_text);
    } catch (const nlohmann::json::exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat(AbslView(name), ": not valid JSON (", e.what(), ")"));
    }
    auto tokenizer = FromJson(j);
    if (!tokenizer.ok()) {
      return absl::Status(tokenizer.status().code(),
                          absl::StrCat(AbslView(name), ": ", tokenizer.status().message()));
    }
    return tokenizer;
  }

  static absl::StatusOr<Tokenizer> FromJson(const nlohmann::json& j) {
    if (!j.is_object()) return absl::InvalidArgumentError("top level must be a JSON object");
    if (auto v = j.find("version"); v != j.end() && v->is_string() && v->get<std::string>() != "1.0") {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown tokenizer version '", v->get<std::string>(), "'"));
    }
    for (const char* unsupported : {"truncation", "padding"}) {
      if (auto it = j.find(unsupported); it != j.end() && !it->is_null()) {
        return absl::InvalidArgumentError(
            absl::StrCat("\"", unsupported, "\" is set; only null is supported (ids would depend "
                                            "on batch settings)"));
      }
    }
    Tokenizer t;
    auto model = j.find("model");
    if (model == j.end()) return absl::InvalidArgumentError("missing \"model\" section");
    SPATIALID_ASSIGN_OR_RETURN(std::string model_type, ModelType(*model));
    if (model_type != "BPE") {
      return absl::InvalidArgumentError(absl::StrCat(
          "model: unsupported model type '", model_type, "' (supported: BPE)"));
    }
    SPATIALID_ASSIGN_OR_RETURN(BpeModel bpe, BpeModel::FromJson(*model, "model"));
    t.model_ = std::make_unique<BpeModel>(std::move(bpe));
    if (auto it = j.find("normalizer"); it != j.end() && !it->is_null()) {
      SPATIALID_ASSIGN_OR_RETURN(t.normalizer_, ParseNormalizer(*it, "normalizer"));
    }
    if (auto it = j.find("pre_tokenizer"); it != j.end() && !it->is_null()) {
      SPATIALID_ASSIGN_OR_RETURN(t.pre_tokenizer_, ParsePreTokenizer(*it, "pre_tokenizer"));
    }
    if (auto it = j.find("post_processor"); it != j.end() && !it->is_null()) {
      SPATIALID_ASSIGN_OR_RETURN(t.post_processor_, ParsePostProcessor(*it, "post_processor"));
    }
    if (auto it = j.find("decoder"); it != j.end() && !it->is_null()) {
      SPATIALID_ASSIGN_OR_RETURN(t.decoder_, ParseDecoder(*it, "decoder"));
    }
    std::vector<AddedToken> added;
    if (auto it = j.find("added_tokens"); it != j.end() && !it->is_null()) {
      if (!it->is_array()) return absl::InvalidArgumentError("\"added_tokens\" must be a list");
      for (size_t i = 0; i < it->size(); ++i) {
        SPATIALID_ASSIGN_OR_RETURN(AddedToken token,
                                   ParseAddedToken((*it)[i], absl::StrCat("added_tokens[", i, "]")));
        added.push_back(std::move(token));
      }
    }
    t.added_->Add(added, *t.model_, t.normalizer_.get());
    return t;
  }

  Tokenizer(Tokenizer&&) = default;
  Tokenizer& operator=(Tokenizer&&) = default;

  // Token ids of `text`; with `add_special_tokens` the post-processor adds
  // what the model expects (BOS for Llama 2 and Gemma 3, nothing for Llama 3
  // and Qwen). Special-token strings in `text` always become their ids.
  std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens) const {
    std::string repaired;
    if (!IsValidUtf8(text)) {
      repaired = ToValidUtf8(text);
      text = repaired;
    }
    std::vector<TextPiece> pieces;
    added_->ExtractAndNormalize(text, normalizer_.get(), &pieces);
    if (pre_tokenizer_ != nullptr) pre_tokenizer_->PreTokenize(pieces);
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 4);
    for (const TextPiece& piece : pieces) {
      if (piece.is_token()) {
        ids.push_back(piece.token_id);
      } else {
        model_->Tokenize(piece.text, &ids);
      }
    }
    if (post_processor_ != nullptr) post_processor_->Process(ids, add_special_tokens);
    return ids;
  }

  // Token strings of `text`, as `tokenizer.tokenize` / `encode(...).tokens`.
  std::vector<std::string> EncodeToTokens(std::string_view text, bool add_special_tokens) const {
    std::vector<std::string> tokens;
    for (int32_t id : Encode(text, add_special_tokens)) tokens.push_back(IdToToken(id));
    return tokens;
  }

  // Text of `ids`. Unknown ids are skipped (as HF does); with
  // `skip_special_tokens`, tokens marked special are left out.
  std::string Decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int32_t id : ids) {
      std::optional<std::string> token = FindToken(id);
      if (!token.has_value()) continue;
      if (skip_special_tokens && added_->IsSpecialContent(*token)) continue;
      tokens.push_back(std::move(*token));
    }
    if (decoder_ == nullptr) return absl::StrJoin(tokens, " ");
    decoder_->DecodeChain(tokens);
    return absl::StrJoin(tokens, "");
  }

  // The token string of `id` (added tokens first, then the vocabulary), or
  // "" for an id that is neither.
  std::string IdToToken(int32_t id) const { return FindToken(id).value_or(std::string()); }

  std::optional<int32_t> TokenToId(std::string_view token) const {
    return added_->TokenToId(token, *model_);
  }

  // The added token registered under `id`, or nullptr.
  const AddedToken* FindAddedToken(int32_t id) const { return added_->FindById(id); }

  // The id of the added token with this content (e.g. "<|im_start|>").
  std::optional<int32_t> AddedTokenId(std::string_view content) const {
    return added_->FindByContent(content);
  }

  bool IsSpecialToken(int32_t id) const {
    const AddedToken* token = added_->FindById(id);
    return token != nullptr && added_->IsSpecialContent(token->content);
  }

  // Every added token with its id, in id order.
  std::vector<std::pair<int32_t, AddedToken>> AddedTokens() const {
    std::vector<std::pair<int32_t, AddedToken>> out(added_->by_id().begin(), added_->by_id().end());
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    return out;
  }

  // Adds tokens as HF's `add_tokens` / `add_special_tokens` do (how
  // processors register `<image>` and similar); returns how many were new.
  size_t AddTokens(const std::vector<AddedToken>& tokens) {
    return added_->Add(tokens, *model_, normalizer_.get());
  }

  // Replace one stage of the pipeline (nullptr removes it), as assigning
  // `tokenizer.normalizer = ...` does in HF; used to load a tokenizer the
  // way a transformers class rebuilds it (tokenizer_pretrained.h).
  void set_normalizer(std::unique_ptr<Normalizer> n) {
    normalizer_ = std::move(n);
    added_->Refresh(*model_, normalizer_.get());  // normalized added tokens follow it
  }
  void set_pre_tokenizer(std::unique_ptr<PreTokenizer> p) { pre_tokenizer_ = std::move(p); }
  void set_post_processor(std::unique_ptr<PostProcessor> p) { post_processor_ = std::move(p); }
  void set_decoder(std::unique_ptr<Decoder> d) { decoder_ = std::move(d); }
  bool has_post_processor() const { return post_processor_ != nullptr; }

  // HF `get_vocab_size(with_added_tokens)`: distinct token strings.
  size_t VocabSize(bool with_added_tokens = true) const {
    if (!with_added_tokens) return model_->vocab_size();
    size_t extra = 0;
    for (const auto& [content, id] : added_->by_content()) {
      if (!model_->TokenToId(content).has_value()) ++extra;
    }
    return model_->vocab_size() + extra;
  }

  // The reference's target token for `word`: the last sub-token of
  // `" " + word` encoded without special tokens.
  absl::StatusOr<SubToken> TargetToken(std::string_view word) const {
    const std::vector<int32_t> ids = Encode(absl::StrCat(" ", AbslView(word)), false);
    if (ids.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("target word \"", AbslView(word), "\" encodes to no tokens"));
    }
    return SubToken{IdToToken(ids.back()), ids.back()};
  }

  // The first position of `token_id` in `ids`, if any.
  static std::optional<size_t> FindFirst(std::span<const int32_t> ids, int32_t token_id) {
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] == token_id) return i;
    }
    return std::nullopt;
  }

 private:
  Tokenizer() : added_(std::make_unique<AddedVocabulary>()) {}

  static absl::StatusOr<std::string> ModelType(const nlohmann::json& model) {
    if (!model.is_object()) return absl::InvalidArgumentError("model: expected an object");
    auto it = model.find("type");
    if (it != model.end() && it->is_string()) return it->get<std::string>();
    // Old files omit the type; HF then guesses from the fields.
    if (model.contains("merges")) return std::string("BPE");
    return absl::InvalidArgumentError("model: missing string field \"type\"");
  }

  static absl::StatusOr<AddedToken> ParseAddedToken(const nlohmann::json& j,
                                                    const std::string& where) {
    if (!j.is_object()) return json_field::Error(where, "expected an object");
    AddedToken t;
    SPATIALID_ASSIGN_OR_RETURN(t.content, json_field::String(j, "content", where));
    SPATIALID_ASSIGN_OR_RETURN(t.special, json_field::Bool(j, "special", where, false));
    SPATIALID_ASSIGN_OR_RETURN(t.single_word, json_field::Bool(j, "single_word", where, false));
    SPATIALID_ASSIGN_OR_RETURN(t.lstrip, json_field::Bool(j, "lstrip", where, false));
    SPATIALID_ASSIGN_OR_RETURN(t.rstrip, json_field::Bool(j, "rstrip", where, false));
    SPATIALID_ASSIGN_OR_RETURN(t.normalized, json_field::Bool(j, "normalized", where, true));
    return t;
  }

  std::optional<std::string> FindToken(int32_t id) const {
    if (const AddedToken* t = added_->FindById(id)) return t->content;
    if (const std::string* s = model_->IdToToken(id)) return *s;
    return std::nullopt;
  }

  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<PostProcessor> post_processor_;
  std::unique_ptr<Decoder> decoder_;
  std::unique_ptr<AddedVocabulary> added_;
};

}  // namespace spatialid::text
