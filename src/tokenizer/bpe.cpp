#include "tokenizer/bpe.h"

#include <limits>
#include <mutex>

#include "lmforge/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace lmforge::tokenizer {

namespace {

// Looks a merge part up, naming the merge and the missing string when it is absent.
int32_t require_in_vocab(const std::unordered_map<std::string, int32_t>& vocab, const std::string& token,
                         const std::string& where, const char* role) {
  auto it = vocab.find(token);
  if (it == vocab.end()) throw Error(where + ": merge " + role + " \"" + token + "\" is not in the vocabulary");
  return it->second;
}

}  // namespace

BpeModel::BpeModel(const std::unordered_map<std::string, int32_t>& vocab, const std::vector<MergeRule>& merges,
                   const std::function<std::string(std::size_t)>& where) {
  for (int b = 0; b < 256; ++b) {
    std::string s;
    append_utf8(s, byte_to_char(static_cast<unsigned char>(b)));
    auto it = vocab.find(s);
    byte_id_[b] = it == vocab.end() ? -1 : it->second;
  }
  merges_.reserve(merges.size());
  for (std::size_t i = 0; i < merges.size(); ++i) {
    const MergeRule& m = merges[i];
    // Working on ids instead of strings needs every intermediate symbol to be a vocabulary entry;
    // a merge that breaks this is a broken vocabulary, so it is reported rather than skipped.
    const int32_t l = require_in_vocab(vocab, m.left, where(i), "part");
    const int32_t r = require_in_vocab(vocab, m.right, where(i), "part");
    const int32_t res = require_in_vocab(vocab, m.left + m.right, where(i), "result");
    if (i > static_cast<std::size_t>(std::numeric_limits<int32_t>::max())) throw Error(where(i) + ": too many merges");
    // HF builds its rank table with dict(zip(merges, range(...))), so a repeated merge keeps the
    // rank of its last occurrence.
    merges_[pair_key(l, r)] = Merge{static_cast<int32_t>(i), res};
  }
}

const BpeModel::Merge* BpeModel::find_merge(int32_t left, int32_t right) const {
  if (left < 0 || right < 0) return nullptr;  // bytes without a token take part in no merge
  auto it = merges_.find(pair_key(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

std::vector<int32_t> BpeModel::merge_symbols(std::vector<int32_t> symbols) const {
  std::vector<int32_t> next;
  while (symbols.size() > 1) {
    // The pair to merge in this round: lowest rank among all adjacent pairs.
    const Merge* best = nullptr;
    int32_t best_left = 0, best_right = 0;
    for (std::size_t i = 0; i + 1 < symbols.size(); ++i) {
      const Merge* m = find_merge(symbols[i], symbols[i + 1]);
      if (m && (!best || m->rank < best->rank)) {
        best = m;
        best_left = symbols[i];
        best_right = symbols[i + 1];
      }
    }
    if (!best) break;
    // Merge every occurrence in one left-to-right pass; "a a a" with merge (a, a) gives "aa a".
    next.clear();
    for (std::size_t i = 0; i < symbols.size();) {
      if (i + 1 < symbols.size() && symbols[i] == best_left && symbols[i + 1] == best_right) {
        next.push_back(best->result);
        i += 2;
      } else {
        next.push_back(symbols[i]);
        i += 1;
      }
    }
    symbols.swap(next);
  }
  return symbols;
}

void BpeModel::encode_piece(std::string_view piece, std::optional<int32_t> unk, std::vector<int32_t>& out) const {
  const bool cacheable = piece.size() <= kCacheMaxPieceBytes;
  if (cacheable) {
    std::shared_lock lock(cache_mutex_);
    auto it = cache_.find(std::string(piece));
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> symbols;
  symbols.reserve(piece.size());
  for (char c : piece) symbols.push_back(byte_id_[static_cast<unsigned char>(c)]);
  std::vector<int32_t> ids = merge_symbols(std::move(symbols));
  for (int32_t& id : ids) {
    if (id >= 0) continue;
    if (!unk) throw Error("tokenizer: the text contains a byte that has no token in the vocabulary and there is no unk token");
    id = *unk;
  }
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::unique_lock lock(cache_mutex_);
    if (cache_.size() >= kCacheMaxEntries) cache_.clear();
    cache_.emplace(std::string(piece), std::move(ids));
  }
}

}  // namespace lmforge::tokenizer
