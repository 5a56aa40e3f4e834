// Post-processors of tokenizer.json (the `post_processor` section).
//
// The post-processor is what `add_special_tokens` switches: Llama 2 and
// Gemma 3 use `TemplateProcessing` to put `<s>` / `<bos>` in front of a
// single sequence; Llama 3 and Qwen use `ByteLevel`, which only adjusts
// offsets and adds nothing. `BertProcessing` / `RobertaProcessing`
// (`[CLS] A [SEP]`) and `Sequence` are read too. Only single sequences are
// encoded here, so only the `single` template is used.
//
// Any other type is an error naming it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/text/tokenizer_json.h"
#include "spatialid/text/unicode.h"
#include "spatialid/util/status.h"

namespace spatialid::text {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Rewrites the ids of one encoded sequence.
  virtual void Process(std::vector<int32_t>& ids, bool add_special_tokens) const = 0;
};

namespace post_processors {

// Special-token ids around the sequence, from a template.
class Template final : public PostProcessor {
 public:
  struct Part {
    bool is_sequence = false;
    std::vector<int32_t> ids;  // the special token's ids when !is_sequence
  };

  explicit Template(std::vector<Part> parts) : parts_(std::move(parts)) {}

  void Process(std::vector<int32_t>& ids, bool add_special_tokens) const override {
    std::vector<int32_t> out;
    out.reserve(ids.size() + 4);
    for (const Part& part : parts_) {
      if (part.is_sequence) {
        out.insert(out.end(), ids.begin(), ids.end());
      } else if (add_special_tokens) {
        out.insert(out.end(), part.ids.begin(), part.ids.end());
      }
    }
    ids = std::move(out);
  }

 private:
  std::vector<Part> parts_;
};

class Identity final : public PostProcessor {
 public:
  void Process(std::vector<int32_t>&, bool) const override {}
};

class Sequence final : public PostProcessor {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PostProcessor>> steps) : steps_(std::move(steps)) {}
  void Process(std::vector<int32_t>& ids, bool add_special_tokens) const override {
    for (const auto& step : steps_) step->Process(ids, add_special_tokens);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

// Reads TemplateProcessing's `single`: a list of {"Sequence": {...}} /
// {"SpecialToken": {...}} pieces (HF serialises the "<s> $A" shorthand
// that way and reads nothing else).
inline absl::StatusOr<std::unique_ptr<PostProcessor>> ParseTemplate(const nlohmann::json& j,
                                                                    const std::string& where) {
  absl::flat_hash_map<std::string, std::vector<int32_t>> specials;
  if (auto it = j.find("special_tokens"); it != j.end()) {
    if (!it->is_object()) return json_field::Error(where, "special_tokens must be an object");
    for (auto st = it->begin(); st != it->end(); ++st) {
      auto ids = st.value().find("ids");
      if (ids == st.value().end() || !ids->is_array()) {
        return json_field::Error(where, absl::StrCat("special_tokens[\"", st.key(),
                                                     "\"] needs an \"ids\" array"));
      }
      std::vector<int32_t> list;
      for (const auto& id : *ids) {
        if (!id.is_number_integer()) {
          return json_field::Error(where, absl::StrCat("special_tokens[\"", st.key(),
                                                       "\"].ids must be integers"));
        }
        list.push_back(id.get<int32_t>());
      }
      specials[st.key()] = std::move(list);
    }
  }
  auto single = j.find("single");
  if (single == j.end()) return json_field::Error(where, "missing field \"single\"");
  std::vector<Template::Part> parts;
  auto add_special = [&](const std::string& name) -> absl::Status {
    auto it = specials.find(name);
    if (it == specials.end()) {
      return json_field::Error(where, absl::StrCat("template uses special token \"", name,
                                                   "\" missing from special_tokens"));
    }
    parts.push_back({false, it->second});
    return absl::OkStatus();
  };
  auto add_sequence = [&](std::string_view id) -> absl::Status {
    if (id != "A") {
      return json_field::Error(where, absl::StrCat("single template refers to sequence \"", AbslView(id),
                                                   "\"; only A exists for one sequence"));
    }
    parts.push_back({true, {}});
    return absl::OkStatus();
  };
  if (single->is_array()) {
    for (const auto& piece : *single) {
      if (auto seq = piece.find("Sequence"); seq != piece.end()) {
        SPATIALID_ASSIGN_OR_RETURN(std::string id, json_field::String(*seq, "id", where));
        SPATIALID_RETURN_IF_ERROR(add_sequence(id));
      } else if (auto sp = piece.find("SpecialToken"); sp != piece.end()) {
        SPATIALID_ASSIGN_OR_RETURN(std::string id, json_field::String(*sp, "id", where));
        SPATIALID_RETURN_IF_ERROR(add_special(id));
      } else {
        return json_field::Error(where, "template pieces must be Sequence or SpecialToken");
      }
    }
  } else {
    return json_field::Error(where, "field \"single\" must be a list of pieces");
  }
  return std::unique_ptr<PostProcessor>(new Template(std::move(parts)));
}

}  // namespace post_processors

// Builds the post-processor a tokenizer.json `post_processor` object
// describes.
inline absl::StatusOr<std::unique_ptr<PostProcessor>> ParsePostProcessor(
    const nlohmann::json& j, const std::string& where) {
  namespace pp = post_processors;
  SPATIALID_ASSIGN_OR_RETURN(std::string type, json_field::Type(j, where));
  if (type == "TemplateProcessing") return pp::ParseTemplate(j, where);
  if (type == "ByteLevel") return std::unique_ptr<PostProcessor>(new pp::Identity());
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    auto read = [&](const char* key) -> absl::StatusOr<int32_t> {
      auto it = j.find(key);
      if (it == j.end() || !it->is_array() || it->size() != 2 || !(*it)[1].is_number_integer()) {
        return json_field::Error(where, absl::StrCat("field \"", key, "\" must be [token, id]"));
      }
      return (*it)[1].get<int32_t>();
    };
    SPATIALID_ASSIGN_OR_RETURN(int32_t cls, read("cls"));
    SPATIALID_ASSIGN_OR_RETURN(int32_t sep, read("sep"));
    std::vector<pp::Template::Part> parts = {{false, {cls}}, {true, {}}, {false, {sep}}};
    return std::unique_ptr<PostProcessor>(new pp::Template(std::move(parts)));
  }
  if (type == "Sequence") {
    SPATIALID_ASSIGN_OR_RETURN(auto steps, json_field::ParseEach<PostProcessor>(
                                               j, "processors", where, ParsePostProcessor));
    return std::unique_ptr<PostProcessor>(new pp::Sequence(std::move(steps)));
  }
  return json_field::Error(
      where, absl::StrCat("unsupported post_processor type '", type,
                          "' (supported: TemplateProcessing, ByteLevel, BertProcessing, "
                          "RobertaProcessing, Sequence)"));
}

}  // namespace spatialid::text
