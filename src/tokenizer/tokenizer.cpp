#include "lmforge/tokenizer/tokenizer.h"

#include <algorithm>
#include <array>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "lmforge/error.h"
#include "tokenizer/bpe.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/loader.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/text_ops.h"
#include "tokenizer/utf8.h"

namespace lmforge {

namespace tk = lmforge::tokenizer;

namespace {

// A token matched as a whole inside text instead of going through BPE (<|endoftext|>, user tokens).
struct AddedToken {
  std::string content;
  int32_t id;
  bool lstrip, rstrip, single_word, special;
};

}  // namespace

struct Tokenizer::Impl {
  std::vector<std::string> spelling;  // id -> token string; "" where `present` is false
  std::vector<bool> present;
  std::unordered_map<std::string, int32_t> vocab;  // the BPE vocabulary (vocab.json / model.vocab)
  std::unique_ptr<tk::BpeModel> bpe;
  tk::PreTokenizer pre;

  std::vector<AddedToken> added;
  std::unordered_map<std::string, std::size_t> added_by_content;
  std::unordered_map<int32_t, std::size_t> added_by_id;
  std::array<std::vector<std::size_t>, 256> added_by_first_byte;  // indices into `added`, longest first

  std::array<std::optional<int32_t>, tk::kRoleKeys.size()> role_ids;
  std::unordered_set<int32_t> role_id_set, special_ids;
  std::optional<int32_t> bpe_unk;  // HF maps unknown BPE symbols with encoder.get(unk_token)
  bool add_prefix_space = false, add_bos = false, cleanup_default = false;
  int64_t max_length = std::numeric_limits<int64_t>::max();

  explicit Impl(tk::TokenizerSpec spec);

  void set_spelling(int32_t id, const std::string& token);
  void add_token(const tk::AddedTokenSpec& spec);
  int32_t add_special(tk::AddedTokenSpec spec);
  void index_added_tokens();

  std::vector<std::string> split_on_added(std::string_view text) const;
  void apply_strip_rules(std::vector<std::string>& parts) const;
  bool is_legacy_added(int32_t id) const;
  void check_id(int32_t id) const;
};

Tokenizer::Impl::Impl(tk::TokenizerSpec spec) : vocab(std::move(spec.vocab)) {
  for (const auto& [token, id] : vocab) set_spelling(id, token);
  bpe = std::make_unique<tk::BpeModel>(vocab, spec.merges, spec.merge_where);
  for (const auto& t : spec.added_tokens) add_token(t);
  // Role tokens first, in HF's attribute order, then additional_special_tokens: a token missing
  // from the vocabulary gets the next id in that order, as HF's _add_tokens does.
  for (std::size_t r = 0; r < spec.roles.size(); ++r) {
    if (!spec.roles[r]) continue;
    role_ids[r] = add_special(*spec.roles[r]);
    role_id_set.insert(*role_ids[r]);
  }
  for (const auto& t : spec.additional_special) add_special(t);
  index_added_tokens();
  if (auto unk = role_ids[static_cast<std::size_t>(tk::Role::unk)]) {
    auto it = vocab.find(spelling[*unk]);
    if (it != vocab.end()) bpe_unk = it->second;
  }
  add_prefix_space = spec.add_prefix_space;
  add_bos = spec.add_bos_token;
  cleanup_default = spec.clean_up_tokenization_spaces;
  max_length = spec.model_max_length;
}

void Tokenizer::Impl::set_spelling(int32_t id, const std::string& token) {
  if (static_cast<std::size_t>(id) >= spelling.size()) {
    spelling.resize(static_cast<std::size_t>(id) + 1);
    present.resize(static_cast<std::size_t>(id) + 1, false);
  }
  spelling[id] = token;
  present[id] = true;
}

// A token with a fixed id (tokenizer.json added_tokens, added_tokens_decoder, added_tokens.json).
// Re-listing a token with the same id (GPT-2 lists <|endoftext|> in vocab and added_tokens) is
// normal; two different strings for one id, or two ids for one string, is a broken folder.
void Tokenizer::Impl::add_token(const tk::AddedTokenSpec& spec) {
  const int32_t id = *spec.id;
  if (static_cast<std::size_t>(id) < present.size() && present[id] && spelling[id] != spec.content)
    throw Error(spec.source + ": duplicate id " + std::to_string(id) + " (\"" + spelling[id] + "\" and \"" +
                spec.content + "\")");
  if (auto it = added_by_content.find(spec.content); it != added_by_content.end()) {
    AddedToken& old = added[it->second];
    if (old.id != id)
      throw Error(spec.source + ": token \"" + spec.content + "\" has two ids, " + std::to_string(old.id) + " and " +
                  std::to_string(id));
    old.special = old.special || spec.special;
    if (old.special) special_ids.insert(id);
    return;
  }
  set_spelling(id, spec.content);
  added_by_content[spec.content] = added.size();
  added_by_id[id] = added.size();
  added.push_back({spec.content, id, spec.lstrip, spec.rstrip, spec.single_word, spec.special});
  if (spec.special) special_ids.insert(id);
}

// A special token named by content only (a role or additional_special_tokens entry).
int32_t Tokenizer::Impl::add_special(tk::AddedTokenSpec spec) {
  if (spec.content.empty()) throw Error(spec.source + ": a special token cannot be empty");
  spec.special = true;
  if (auto it = added_by_content.find(spec.content); it != added_by_content.end()) {
    added[it->second].special = true;
    special_ids.insert(added[it->second].id);
    return added[it->second].id;
  }
  auto in_vocab = vocab.find(spec.content);
  spec.id = in_vocab != vocab.end() ? in_vocab->second : static_cast<int32_t>(spelling.size());
  add_token(spec);
  return *spec.id;
}

void Tokenizer::Impl::index_added_tokens() {
  for (std::size_t i = 0; i < added.size(); ++i)
    if (!added[i].content.empty())
      added_by_first_byte[static_cast<unsigned char>(added[i].content[0])].push_back(i);
  for (auto& list : added_by_first_byte)
    std::stable_sort(list.begin(), list.end(),
                     [&](std::size_t a, std::size_t b) { return added[a].content.size() > added[b].content.size(); });
}

// HF's Trie.split: cut the text around every added-token occurrence, taking the leftmost match and
// the longest token at that position. The result alternates plain text and added-token strings.
std::vector<std::string> Tokenizer::Impl::split_on_added(std::string_view text) const {
  std::vector<std::string> parts;
  std::size_t start = 0, pos = 0;
  while (pos < text.size()) {
    std::size_t match = 0;
    for (std::size_t i : added_by_first_byte[static_cast<unsigned char>(text[pos])]) {
      if (text.compare(pos, added[i].content.size(), added[i].content) == 0) {
        match = added[i].content.size();
        break;  // sorted longest first
      }
    }
    if (match == 0) {
      ++pos;
      continue;
    }
    if (pos > start) parts.emplace_back(text.substr(start, pos - start));
    parts.emplace_back(text.substr(pos, match));
    pos += match;
    start = pos;
  }
  if (start < text.size()) parts.emplace_back(text.substr(start));
  return parts;
}

// HF's tokenize(): an added token with rstrip / lstrip eats the whitespace of its right / left
// neighbour; a single_word token glued to a word is put back into that word as plain text.
void Tokenizer::Impl::apply_strip_rules(std::vector<std::string>& parts) const {
  for (std::size_t i = 0; i < parts.size(); ++i) {
    auto it = added_by_content.find(parts[i]);
    if (it == added_by_content.end()) continue;
    const AddedToken& tok = added[it->second];
    // Like HF, the single_word test looks at the neighbours as they were before stripping, while
    // the glueing writes into the stripped strings. Empty neighbours count as absent.
    const std::string left = i > 0 ? parts[i - 1] : std::string();
    const std::string right = i + 1 < parts.size() ? parts[i + 1] : std::string();
    if (tok.rstrip && !right.empty()) parts[i + 1] = tk::lstrip_space(right);
    if (tok.lstrip && !left.empty()) parts[i - 1] = tk::rstrip_space(left);
    if (tok.single_word && !left.empty() && left.back() != ' ') {
      parts[i - 1] += parts[i];
      parts[i].clear();
    } else if (tok.single_word && !right.empty() && right.front() != ' ') {
      parts[i + 1] = parts[i] + parts[i + 1];
      parts[i].clear();
    }
  }
}

// HF's slow decode renders "legacy" added tokens (user-added ones that are not special, and
// additional special tokens outside the base vocabulary) as separate strings joined by spaces;
// role tokens such as <|endoftext|> are decoded through the byte stream like any vocab entry.
bool Tokenizer::Impl::is_legacy_added(int32_t id) const {
  if (!added_by_id.count(id)) return false;
  if (!special_ids.count(id)) return true;
  return !role_id_set.count(id) && static_cast<std::size_t>(id) >= vocab.size();
}

void Tokenizer::Impl::check_id(int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= spelling.size())
    throw Error("tokenizer: token id " + std::to_string(id) + " is out of range (vocabulary size " +
                std::to_string(spelling.size()) + ")");
  if (!present[id]) throw Error("tokenizer: token id " + std::to_string(id) + " has no token in the vocabulary");
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_dir(const std::filesystem::path& dir) {
  return Tokenizer(std::make_unique<Impl>(tk::load_tokenizer_dir(dir)));
}

Tokenizer Tokenizer::from_files(const std::filesystem::path& vocab_json, const std::filesystem::path& merges_txt) {
  return Tokenizer(std::make_unique<Impl>(tk::load_vocab_merges(vocab_json, merges_txt)));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  // HF works on Python str, which cannot hold invalid UTF-8; guessing an encoding would silently
  // produce ids HF never would, so such input is refused.
  if (auto bad = tk::find_invalid_utf8(text))
    throw Error("tokenizer: text is not valid UTF-8 (at byte " + std::to_string(*bad) + ")");
  // Appended, not " " + string: GCC 12's -Wrestrict misfires on a literal + a string temporary.
  std::string prepared = impl_->add_prefix_space ? " " : "";
  prepared += text;
  std::vector<std::string> parts = impl_->split_on_added(prepared);
  impl_->apply_strip_rules(parts);

  std::vector<int32_t> ids;
  const auto bos = impl_->role_ids[static_cast<std::size_t>(tk::Role::bos)];
  if (impl_->add_bos && bos) ids.push_back(*bos);
  for (const std::string& part : parts) {
    if (part.empty()) continue;
    if (auto it = impl_->added_by_content.find(part); it != impl_->added_by_content.end()) {
      ids.push_back(impl_->added[it->second].id);
      continue;
    }
    for (std::string_view piece : impl_->pre.split(part)) impl_->bpe->encode_piece(piece, impl_->bpe_unk, ids);
  }
  return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens,
                              std::optional<bool> clean_up_tokenization_spaces) const {
  // An id past the vocabulary (GPT-J's 50400 output rows over GPT-2's 50257 tokens) or on a hole
  // in it decodes as nothing, as HF's fast tokenizer (AutoTokenizer's default) does; the slow one
  // raises a TypeError. A negative id is an error in both.
  for (int32_t id : ids)
    if (id < 0) impl_->check_id(id);
  // Byte-level tokens are collected as raw bytes and UTF-8-decoded together, so a character split
  // over several tokens comes out whole; legacy added tokens cut the stream into sub-texts.
  std::vector<std::string> sub_texts;
  std::string bytes;
  std::size_t pending = 0;  // tokens collected in `bytes`
  for (int32_t id : ids) {
    if (static_cast<std::size_t>(id) >= impl_->spelling.size() || !impl_->present[id]) continue;
    if (skip_special_tokens && impl_->special_ids.count(id)) continue;
    if (impl_->is_legacy_added(id)) {
      if (pending > 0) {
        std::string s = tk::decode_utf8_replace(bytes);
        if (!s.empty()) sub_texts.push_back(std::move(s));
        bytes.clear();
        pending = 0;
      }
      sub_texts.push_back(impl_->spelling[id]);
    } else {
      tk::append_token_bytes(bytes, impl_->spelling[id]);
      ++pending;
    }
  }
  if (pending > 0) sub_texts.push_back(tk::decode_utf8_replace(bytes));

  std::string text;
  for (std::size_t i = 0; i < sub_texts.size(); ++i) {
    if (i > 0) text += ' ';  // HF's spaces_between_special_tokens=True
    text += sub_texts[i];
  }
  if (clean_up_tokenization_spaces.value_or(impl_->cleanup_default)) return tk::clean_up_tokenization(text);
  return text;
}

const std::string& Tokenizer::id_to_token(int32_t id) const {
  impl_->check_id(id);
  return impl_->spelling[id];
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  const std::string key(token);
  if (auto it = impl_->added_by_content.find(key); it != impl_->added_by_content.end())
    return impl_->added[it->second].id;
  if (auto it = impl_->vocab.find(key); it != impl_->vocab.end()) return it->second;
  return std::nullopt;
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->spelling.size()); }

bool Tokenizer::is_special(int32_t id) const { return impl_->special_ids.count(id) > 0; }

bool Tokenizer::clean_up_tokenization_spaces_default() const { return impl_->cleanup_default; }

std::optional<int32_t> Tokenizer::bos_id() const { return impl_->role_ids[static_cast<std::size_t>(tk::Role::bos)]; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->role_ids[static_cast<std::size_t>(tk::Role::eos)]; }
std::optional<int32_t> Tokenizer::unk_id() const { return impl_->role_ids[static_cast<std::size_t>(tk::Role::unk)]; }
std::optional<int32_t> Tokenizer::pad_id() const { return impl_->role_ids[static_cast<std::size_t>(tk::Role::pad)]; }

int64_t Tokenizer::model_max_length() const { return impl_->max_length; }

}  // namespace lmforge
