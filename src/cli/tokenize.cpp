// lmforge tokenize: encode text to ids (one "id<TAB>token" line per token, or JSON) or decode ids
// back to text, with the tokenizer of a model folder.
#include <charconv>
#include <cstdint>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "lmforge/error.h"
#include "lmforge/tokenizer/tokenizer.h"

namespace lmforge::cli {
namespace {

struct Options {
  std::string model;
  std::optional<std::string> text;
  std::optional<std::string> ids;
  bool json = false;
  bool skip_special_tokens = false;
  std::optional<std::string> clean_up;  // "true" / "false"; unset = the folder's default
};

Options& options() {
  static Options o;
  return o;
}

void setup(CLI::App& app) {
  Options& o = options();
  app.add_option("--model", o.model, "Model or tokenizer folder (vocab.json + merges.txt or tokenizer.json)")
      ->required();
  auto* text = app.add_option("--text", o.text, "Text to encode");
  auto* ids = app.add_option("--ids", o.ids, "Token ids to decode, separated by spaces or commas (JSON-style [..] also accepted)");
  text->excludes(ids);
  app.add_flag("--json", o.json, "Print JSON: {\"ids\", \"tokens\"} when encoding, {\"text\"} when decoding");
  app.add_flag("--skip_special_tokens", o.skip_special_tokens, "Decoding: drop special tokens such as <|endoftext|>");
  app.add_option("--clean_up_tokenization_spaces", o.clean_up,
                 "Decoding: true|false (default: the folder's tokenizer_config.json, else false)")
      ->check(CLI::IsMember({"true", "false"}));
}

// Parses --ids. Every entry must be a decimal id of this vocabulary; the message names the flag
// and the entry so the user can find it in a long list.
std::vector<int32_t> parse_ids(const std::string& list, const Tokenizer& tok) {
  // Spaces and commas separate ids; brackets are ignored so a pasted JSON list works too.
  static constexpr const char* kSeparators = " \t\r\n,[]";
  std::vector<int32_t> ids;
  std::size_t pos = 0;
  while (pos < list.size()) {
    const std::size_t start = list.find_first_not_of(kSeparators, pos);
    if (start == std::string::npos) break;
    std::size_t end = list.find_first_of(kSeparators, start);
    if (end == std::string::npos) end = list.size();
    const std::string item = list.substr(start, end - start);
    int64_t value = 0;
    auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (ec != std::errc() || ptr != item.data() + item.size())
      throw Error("--ids: \"" + item + "\" is not a token id");
    if (value < 0 || value >= tok.vocab_size())
      throw Error("--ids: token id " + item + " is out of range (vocabulary size " + std::to_string(tok.vocab_size()) + ")");
    ids.push_back(static_cast<int32_t>(value));
    pos = end;
  }
  return ids;
}

int encode(const Tokenizer& tok, const std::string& text, bool as_json) {
  std::vector<int32_t> ids;
  try {
    ids = tok.encode(text);
  } catch (const Error& e) {
    throw Error(std::string("--text: ") + e.what());  // e.g. the text is not valid UTF-8
  }
  if (as_json) {
    nlohmann::json out{{"ids", ids}, {"tokens", nlohmann::json::array()}};
    for (int32_t id : ids) out["tokens"].push_back(tok.id_to_token(id));
    std::cout << out.dump() << "\n";
  } else {
    for (int32_t id : ids) std::cout << id << '\t' << tok.id_to_token(id) << '\n';
  }
  return 0;
}

int decode(const Tokenizer& tok, const Options& o) {
  const std::vector<int32_t> ids = parse_ids(*o.ids, tok);
  std::optional<bool> clean_up;
  if (o.clean_up) clean_up = *o.clean_up == "true";
  const std::string text = tok.decode(ids, o.skip_special_tokens, clean_up);
  if (o.json)
    std::cout << nlohmann::json{{"text", text}}.dump() << "\n";
  else
    std::cout << text << "\n";
  return 0;
}

int run() {
  const Options& o = options();
  if (!o.text && !o.ids) throw Error("tokenize: give --text to encode or --ids to decode");
  const Tokenizer tok = Tokenizer::from_dir(o.model);
  return o.text ? encode(tok, *o.text, o.json) : decode(tok, o);
}

Command command{"tokenize", "Encode text to token ids or decode ids to text", setup, run};

}  // namespace
}  // namespace lmforge::cli
