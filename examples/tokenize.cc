// tokenize: see how a tokenizer.json cuts a prompt into tokens.
//
// Background: the spatial-ID pipeline reads the hidden state at a target
// token, so a prompt that tokenizes differently than expected silently
// moves the position. This tool prints, for each line of standard input,
// the token ids spatialid's tokenizer produces (identical to HF
// `tokenizers` on the same file), optionally with the token strings as the
// vocabulary spells them (`▁f`, `rog`, `Ġfrog`).
//
// Details: each stdin line (without its newline) is one text. Ids are
// printed space-separated, one output line per input line. With --tokens
// each id is printed as `id:token`, with spaces, control characters and
// backslashes in the token escaped (`\x20`, `\n`, `\\`) so the output stays
// one line per input. --no_special encodes without the special tokens the
// post-processor adds (BOS for Llama 2 and Gemma 3); special-token strings
// written in the text (`<|im_start|>`) still become their ids. --decode
// reads lines of space-separated ids instead and prints the decoded text.
//
// Example:
//   echo "Is the frog to the left or right of the camel?" |
//     bazel run //examples:tokenize -- --tokenizer=$SPATIALID_ASSETS/tokenizers/llama2/tokenizer.json --tokens
//   1:<s> 1691:▁Is 272:▁the 8169:▁fro 28721:g ...
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "examples/cli_flags.h"
#include "spatialid/text/tokenizer.h"

ABSL_FLAG(std::string, tokenizer, "",
          "Path to a Hugging Face tokenizer.json (required), e.g. "
          "$SPATIALID_ASSETS/tokenizers/qwen3/tokenizer.json.");
ABSL_FLAG(bool, tokens, false,
          "Print each id as id:token, the token string as the vocabulary spells it.");
ABSL_FLAG(bool, no_special, false,
          "Encode without the special tokens the post-processor adds (no BOS for Llama 2 / "
          "Gemma 3). Special-token strings inside the text are still recognised.");
ABSL_FLAG(bool, decode, false,
          "Read lines of space-separated ids and print the decoded text instead.");
ABSL_FLAG(bool, skip_special, false, "With --decode, leave special tokens out of the text.");

namespace {

// One-line rendering of a token string.
std::string Escape(const std::string& token) {
  std::string out;
  for (unsigned char c : token) {
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case '\\': out += "\\\\"; break;
      default:
        if (c <= 0x20 || c == 0x7F) {
          out += absl::StrFormat("\\x%02x", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  return out;
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "tokenize: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> rest = spatialid::examples::ParseFlags(
      argc, argv,
      "Prints the token ids (and with --tokens the token strings) of each stdin line.\n"
      "Usage: tokenize --tokenizer=PATH/tokenizer.json [--tokens] [--no_special] < lines.txt\n"
      "       tokenize --tokenizer=PATH/tokenizer.json --decode [--skip_special] < ids.txt");
  if (rest.size() > 1) return Fail(std::string("unexpected argument: ") + rest[1]);
  const std::string path = absl::GetFlag(FLAGS_tokenizer);
  if (path.empty()) return Fail("--tokenizer=PATH/tokenizer.json is required (see --help)");
  auto tokenizer = spatialid::text::Tokenizer::FromFile(path);
  if (!tokenizer.ok()) return Fail(std::string(tokenizer.status().message()));

  std::string line;
  size_t line_number = 0;
  while (std::getline(std::cin, line)) {
    ++line_number;
    if (absl::GetFlag(FLAGS_decode)) {
      std::vector<int32_t> ids;
      for (absl::string_view field : absl::StrSplit(line, ' ', absl::SkipEmpty())) {
        int32_t id = 0;
        if (!absl::SimpleAtoi(field, &id)) {
          return Fail(absl::StrFormat("line %d: \"%s\" is not a token id", line_number,
                                      std::string(field)));
        }
        ids.push_back(id);
      }
      std::cout << tokenizer->Decode(ids, absl::GetFlag(FLAGS_skip_special)) << '\n';
      continue;
    }
    const std::vector<int32_t> ids = tokenizer->Encode(line, !absl::GetFlag(FLAGS_no_special));
    std::string out;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i > 0) out.push_back(' ');
      out += std::to_string(ids[i]);
      if (absl::GetFlag(FLAGS_tokens)) {
        out.push_back(':');
        out += Escape(tokenizer->IdToToken(ids[i]));
      }
    }
    std::cout << out << '\n';
  }
  if (std::cin.bad()) return Fail("error reading standard input");
  return 0;
}
