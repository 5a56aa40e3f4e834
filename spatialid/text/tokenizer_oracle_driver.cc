// Runs spatialid's tokenizer over a JSON-lines file for the HF oracle test
// (tokenizer_oracle_test.py), which compares every result with HF
// `tokenizers` on the same tokenizer.json.
//
// Modes (--mode):
//   encode  each input line is a JSON string; prints
//           {"special": ids with add_special_tokens, "plain": ids without,
//            "decoded": Decode(special ids), "decoded_skip": the same with
//            skip_special_tokens}
//   decode  each line is a JSON list of ids; prints {"decoded", "decoded_skip"}
//   target  each line is a JSON string (a word); prints {"token", "id"} of
//           TargetToken(word)
// --add_tokens names a JSON file with a list of AddedToken objects
// ({"content", "special", "normalized", ...}) added before encoding, as a
// processor would add `<image>`.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "spatialid/text/tokenizer.h"
#include "spatialid/text/tokenizer_pretrained.h"

ABSL_FLAG(std::string, tokenizer, "", "Path to tokenizer.json (loaded as written).");
ABSL_FLAG(std::string, pretrained_dir, "",
          "Instead of --tokenizer: a folder loaded as transformers' AutoTokenizer would.");
ABSL_FLAG(std::string, input, "", "JSON-lines input file.");
ABSL_FLAG(std::string, mode, "encode", "encode, decode or target.");
ABSL_FLAG(std::string, add_tokens, "", "Optional JSON file: a list of AddedToken objects to add.");

namespace {

std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "tokenizer_oracle_driver: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Encodes/decodes a JSON-lines corpus with spatialid's tokenizer.");
  absl::ParseCommandLine(argc, argv);
  const std::string dir = absl::GetFlag(FLAGS_pretrained_dir);
  auto tokenizer = dir.empty()
                       ? spatialid::text::Tokenizer::FromFile(absl::GetFlag(FLAGS_tokenizer))
                       : spatialid::text::LoadPretrainedTokenizer(dir);
  if (!tokenizer.ok()) return Fail(std::string(tokenizer.status().message()));

  if (const std::string extra = absl::GetFlag(FLAGS_add_tokens); !extra.empty()) {
    std::ifstream in(extra);
    nlohmann::json list = nlohmann::json::parse(in, nullptr, false);
    if (list.is_discarded() || !list.is_array()) return Fail(extra + ": not a JSON list");
    std::vector<spatialid::text::AddedToken> tokens;
    for (const auto& t : list) {
      spatialid::text::AddedToken token;
      token.content = t.at("content").get<std::string>();
      token.special = t.value("special", false);
      token.single_word = t.value("single_word", false);
      token.lstrip = t.value("lstrip", false);
      token.rstrip = t.value("rstrip", false);
      token.normalized = t.value("normalized", !token.special);
      tokens.push_back(token);
    }
    tokenizer->AddTokens(tokens);
  }

  const std::string mode = absl::GetFlag(FLAGS_mode);
  std::ifstream in(absl::GetFlag(FLAGS_input));
  if (!in) return Fail(absl::GetFlag(FLAGS_input) + ": cannot open input");
  std::string line;
  size_t line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    nlohmann::json item = nlohmann::json::parse(line, nullptr, false);
    if (item.is_discarded()) return Fail("line " + std::to_string(line_number) + ": not JSON");
    nlohmann::json out;
    if (mode == "encode") {
      const std::string text = item.get<std::string>();
      const std::vector<int32_t> special = tokenizer->Encode(text, true);
      out["special"] = special;
      out["plain"] = tokenizer->Encode(text, false);
      out["decoded"] = tokenizer->Decode(special, false);
      out["decoded_skip"] = tokenizer->Decode(special, true);
    } else if (mode == "decode") {
      const std::vector<int32_t> ids = item.get<std::vector<int32_t>>();
      out["decoded"] = tokenizer->Decode(ids, false);
      out["decoded_skip"] = tokenizer->Decode(ids, true);
    } else if (mode == "target") {
      auto target = tokenizer->TargetToken(item.get<std::string>());
      if (!target.ok()) return Fail(std::string(target.status().message()));
      out["token"] = target->token;
      out["id"] = target->id;
    } else {
      return Fail("unknown --mode " + mode);
    }
    std::cout << Dump(out) << '\n';
  }
  return 0;
}
