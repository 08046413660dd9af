#include "tokenizer/loader.h"

#include <fstream>
#include <limits>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "lmforge/error.h"

namespace lmforge::tokenizer {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(path.string() + ": cannot read file");
  return ss.str();
}

json read_json(const fs::path& path) {
  std::string text = read_file(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number past double
    throw Error(path.string() + ": malformed JSON: " + e.what());
  }
}

// JSON that must be an object, e.g. the top level of every tokenizer file.
const json& require_object(const json& j, const fs::path& file, const std::string& what) {
  if (!j.is_object()) throw Error(file.string() + ": " + what + " must be a JSON object");
  return j;
}

bool get_bool(const json& obj, const char* key, const fs::path& file, const std::string& what, bool fallback) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) throw Error(file.string() + ": " + what + key + " must be true or false");
  return it->get<bool>();
}

// A token id given as a JSON number or (added_tokens_decoder keys) as a decimal string.
int32_t parse_id(const json& v, const fs::path& file, const std::string& what) {
  int64_t id = -1;
  if (v.is_number_integer()) {
    id = v.get<int64_t>();
  } else if (v.is_string()) {
    const std::string s = v.get<std::string>();
    std::size_t used = 0;
    try {
      id = std::stoll(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != s.size() || s.empty()) throw Error(file.string() + ": " + what + " \"" + s + "\" is not a token id");
  } else {
    throw Error(file.string() + ": " + what + " must be an integer token id");
  }
  // Ids index dense tables, so an absurd id would mean an absurd allocation; real vocabularies
  // stay far below this bound.
  constexpr int64_t kMaxId = int64_t{1} << 26;
  if (id < 0 || id >= kMaxId) throw Error(file.string() + ": " + what + " " + std::to_string(id) + " is out of range");
  return static_cast<int32_t>(id);
}

// One added token in HF's AddedToken form ({"content": ..., "lstrip": ..., ...}) or a plain string.
AddedTokenSpec parse_added_token(const json& v, const fs::path& file, const std::string& what) {
  AddedTokenSpec t;
  t.source = file.string();
  if (v.is_string()) {
    t.content = v.get<std::string>();
    return t;
  }
  if (!v.is_object() || !v.contains("content") || !v["content"].is_string())
    throw Error(file.string() + ": " + what + " must be a string or an object with a string \"content\"");
  t.content = v["content"].get<std::string>();
  t.lstrip = get_bool(v, "lstrip", file, what + ".", false);
  t.rstrip = get_bool(v, "rstrip", file, what + ".", false);
  t.single_word = get_bool(v, "single_word", file, what + ".", false);
  t.special = get_bool(v, "special", file, what + ".", false);
  if (v.contains("id") && !v["id"].is_null()) t.id = parse_id(v["id"], file, what + ".id");
  return t;
}

// vocab.json / tokenizer.json model.vocab: {"token": id, ...} with every id used once. `what` is
// the JSON path of the map ("" for the top level of vocab.json).
std::unordered_map<std::string, int32_t> parse_vocab(const json& j, const fs::path& file, const std::string& what) {
  if (!j.is_object())
    throw Error(file.string() + ": " + (what.empty() ? "the top level" : what) + " must be a JSON object of token: id");
  std::unordered_map<std::string, int32_t> vocab;
  vocab.reserve(j.size());
  std::unordered_map<int32_t, std::string> owner;
  owner.reserve(j.size());
  for (const auto& [token, value] : j.items()) {
    const int32_t id = parse_id(value, file, (what.empty() ? "" : what + ": ") + "id of \"" + token + "\"");
    auto [it, fresh] = owner.emplace(id, token);
    if (!fresh)
      throw Error(file.string() + ": duplicate id " + std::to_string(id) + " (\"" + it->second + "\" and \"" + token +
                  "\")");
    vocab.emplace(token, id);
  }
  return vocab;
}

// Splits one merge written as "left right". Symbols never contain whitespace: the byte-level
// alphabet maps every whitespace byte to a visible character.
bool split_merge(std::string_view line, MergeRule& out) {
  auto is_ws = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; };
  std::vector<std::string> parts;
  std::size_t pos = 0;
  while (pos < line.size()) {
    while (pos < line.size() && is_ws(line[pos])) ++pos;
    std::size_t start = pos;
    while (pos < line.size() && !is_ws(line[pos])) ++pos;
    if (pos > start) parts.emplace_back(line.substr(start, pos - start));
  }
  if (parts.size() != 2) return false;
  out.left = std::move(parts[0]);
  out.right = std::move(parts[1]);
  return true;
}

// merges.txt: an optional "#version" header, then one merge per line in rank order. Blank lines
// (normally only the final newline) are ignored.
void parse_merges_txt(const fs::path& file, TokenizerSpec& spec) {
  const std::string text = read_file(file);
  auto lines = std::make_shared<std::vector<std::size_t>>();
  std::size_t line_no = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    if (line_no == 1 && line.rfind("#version", 0) == 0) continue;
    MergeRule m;
    if (!split_merge(line, m))
      throw Error(file.string() + ":" + std::to_string(line_no) + ": a merge must be two symbols separated by a space, got \"" +
                  std::string(line) + "\"");
    spec.merges.push_back(std::move(m));
    lines->push_back(line_no);
  }
  const std::string name = file.string();
  spec.merge_where = [name, lines](std::size_t i) { return name + ":" + std::to_string((*lines)[i]); };
}

// tokenizer.json's model.merges: "left right" strings (older files) or ["left", "right"] pairs.
void parse_json_merges(const json& merges, const fs::path& file, TokenizerSpec& spec) {
  if (!merges.is_array()) throw Error(file.string() + ": model.merges must be an array");
  for (std::size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    MergeRule rule;
    bool ok = false;
    if (m.is_string()) {
      ok = split_merge(m.get<std::string>(), rule);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      rule.left = m[0].get<std::string>();
      rule.right = m[1].get<std::string>();
      ok = !rule.left.empty() && !rule.right.empty();
    }
    if (!ok) throw Error(file.string() + ": model.merges[" + std::to_string(i) + "] must be two symbols, got " + m.dump());
    spec.merges.push_back(std::move(rule));
  }
  const std::string name = file.string();
  spec.merge_where = [name](std::size_t i) { return name + ": model.merges[" + std::to_string(i) + "]"; };
}

void load_tokenizer_json(const fs::path& file, TokenizerSpec& spec) {
  const json j = read_json(file);
  require_object(j, file, "the top level");
  if (!j.contains("model")) throw Error(file.string() + ": no \"model\" section");
  const json& model = require_object(j["model"], file, "model");
  if (model.contains("type") && model["type"] != "BPE")
    throw Error(file.string() + ": model.type is " + model["type"].dump() + ", only BPE is supported");
  if (!model.contains("vocab")) throw Error(file.string() + ": no model.vocab");
  if (!model.contains("merges")) throw Error(file.string() + ": no model.merges");
  spec.vocab = parse_vocab(model["vocab"], file, "model.vocab");
  parse_json_merges(model["merges"], file, spec);
  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    const json& added = j["added_tokens"];
    if (!added.is_array()) throw Error(file.string() + ": added_tokens must be an array");
    for (std::size_t i = 0; i < added.size(); ++i) {
      const std::string what = "added_tokens[" + std::to_string(i) + "]";
      AddedTokenSpec t = parse_added_token(added[i], file, what);
      if (!t.id) throw Error(file.string() + ": " + what + " has no id");
      spec.added_tokens.push_back(std::move(t));
    }
  }
}

// A role value (bos_token, ...): string, AddedToken object, or null for "no such token".
std::optional<AddedTokenSpec> parse_role(const json& v, const fs::path& file, const std::string& key) {
  if (v.is_null()) return std::nullopt;
  AddedTokenSpec t = parse_added_token(v, file, key);
  t.id.reset();  // ids of role tokens always come from the vocabulary / added tokens
  t.special = true;
  return t;
}

// Role tokens and additional_special_tokens, shared by tokenizer_config.json and
// special_tokens_map.json (the latter is read second and wins, as in HF).
void apply_special_tokens(const json& cfg, const fs::path& file, TokenizerSpec& spec) {
  for (std::size_t r = 0; r < kRoleKeys.size(); ++r)
    if (cfg.contains(kRoleKeys[r])) spec.roles[r] = parse_role(cfg[kRoleKeys[r]], file, kRoleKeys[r]);
  if (cfg.contains("additional_special_tokens") && !cfg["additional_special_tokens"].is_null()) {
    const json& extra = cfg["additional_special_tokens"];
    if (!extra.is_array()) throw Error(file.string() + ": additional_special_tokens must be an array");
    spec.additional_special.clear();
    for (std::size_t i = 0; i < extra.size(); ++i)
      if (auto t = parse_role(extra[i], file, "additional_special_tokens[" + std::to_string(i) + "]"))
        spec.additional_special.push_back(std::move(*t));
  }
}

// HF writes an unset model_max_length as 1e30, which does not fit an integer type here.
int64_t parse_max_length(const json& v, const fs::path& file) {
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return std::numeric_limits<int64_t>::max();
    const int64_t n = v.get<int64_t>();
    if (n <= 0) throw Error(file.string() + ": model_max_length must be positive");
    return n;
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!(d > 0)) throw Error(file.string() + ": model_max_length must be positive");
    return d >= 9.2e18 ? std::numeric_limits<int64_t>::max() : static_cast<int64_t>(d);
  }
  throw Error(file.string() + ": model_max_length must be a number");
}

void load_tokenizer_config(const fs::path& file, TokenizerSpec& spec) {
  const json cfg = read_json(file);
  require_object(cfg, file, "the top level");
  spec.add_prefix_space = get_bool(cfg, "add_prefix_space", file, "", spec.add_prefix_space);
  spec.add_bos_token = get_bool(cfg, "add_bos_token", file, "", spec.add_bos_token);
  spec.clean_up_tokenization_spaces =
      get_bool(cfg, "clean_up_tokenization_spaces", file, "", spec.clean_up_tokenization_spaces);
  if (cfg.contains("model_max_length") && !cfg["model_max_length"].is_null())
    spec.model_max_length = parse_max_length(cfg["model_max_length"], file);
  if (cfg.contains("added_tokens_decoder") && !cfg["added_tokens_decoder"].is_null()) {
    const json& dec = require_object(cfg["added_tokens_decoder"], file, "added_tokens_decoder");
    for (const auto& [key, value] : dec.items()) {
      const std::string what = "added_tokens_decoder[" + key + "]";
      AddedTokenSpec t = parse_added_token(value, file, what);
      t.id = parse_id(json(key), file, what + " key");
      spec.added_tokens.push_back(std::move(t));
    }
  }
  apply_special_tokens(cfg, file, spec);
}

// added_tokens.json (older slow tokenizers): {"token": id}.
void load_added_tokens_json(const fs::path& file, TokenizerSpec& spec) {
  const json j = read_json(file);
  require_object(j, file, "the top level");
  for (const auto& [content, id] : j.items()) {
    AddedTokenSpec t;
    t.content = content;
    t.id = parse_id(id, file, "id of \"" + content + "\"");
    t.source = file.string();
    spec.added_tokens.push_back(std::move(t));
  }
}

// GPT2Tokenizer's constructor defaults: <|endoftext|> is BOS, EOS and UNK; there is no PAD.
void set_gpt2_default_roles(TokenizerSpec& spec) {
  for (Role r : {Role::bos, Role::eos, Role::unk}) {
    AddedTokenSpec t;
    t.content = "<|endoftext|>";
    t.special = true;
    t.source = "GPT-2 defaults";
    spec.roles[static_cast<std::size_t>(r)] = t;
  }
}

void load_optional_configs(const fs::path& dir, TokenizerSpec& spec) {
  if (fs::exists(dir / "added_tokens.json")) load_added_tokens_json(dir / "added_tokens.json", spec);
  if (fs::exists(dir / "tokenizer_config.json")) load_tokenizer_config(dir / "tokenizer_config.json", spec);
  if (fs::exists(dir / "special_tokens_map.json")) {
    const fs::path file = dir / "special_tokens_map.json";
    const json j = read_json(file);
    apply_special_tokens(require_object(j, file, "the top level"), file, spec);
  }
}

}  // namespace

TokenizerSpec load_vocab_merges(const fs::path& vocab_json, const fs::path& merges_txt) {
  TokenizerSpec spec;
  set_gpt2_default_roles(spec);
  spec.vocab = parse_vocab(read_json(vocab_json), vocab_json, "");
  parse_merges_txt(merges_txt, spec);
  return spec;
}

TokenizerSpec load_tokenizer_dir(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw Error(dir.string() + ": not a directory");
  const fs::path vocab = dir / "vocab.json", merges = dir / "merges.txt", tok_json = dir / "tokenizer.json";
  const bool has_vocab = fs::exists(vocab), has_merges = fs::exists(merges);
  TokenizerSpec spec;
  // The slow tokenizer's files are preferred (they are what the fixtures were made with); a
  // folder with only one of them falls back to tokenizer.json, else names the missing file.
  if (has_vocab && has_merges) {
    spec = load_vocab_merges(vocab, merges);
  } else if (fs::exists(tok_json)) {
    set_gpt2_default_roles(spec);
    load_tokenizer_json(tok_json, spec);
  } else if (has_vocab || has_merges) {
    throw Error((has_vocab ? merges : vocab).string() + ": missing (needed next to " +
                (has_vocab ? vocab : merges).filename().string() + ", or give tokenizer.json)");
  } else {
    throw Error(dir.string() + ": no tokenizer files (expected vocab.json + merges.txt, or tokenizer.json)");
  }
  load_optional_configs(dir, spec);
  return spec;
}

}  // namespace lmforge::tokenizer
