// Token bytes from the GPT-2 tokenizer, and the process-wide cache of built vocabularies.
#include <functional>
#include <map>
#include <mutex>

#include "lmforge/structured/vocabulary.h"
#include "lmforge/tokenizer/tokenizer.h"
#include "tokenizer/byte_level.h"

namespace lmforge::structured {

TokenVocabulary::TokenVocabulary(std::vector<std::string> bytes) : bytes_(std::move(bytes)), trie_(bytes_) {}

namespace {

std::vector<std::string> token_bytes(const Tokenizer& tok) {
  std::vector<std::string> out(tok.vocab_size());
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    if (tok.is_special(id)) continue;
    try {
      tokenizer::append_token_bytes(out[id], tok.id_to_token(id));
    } catch (const std::exception&) {
      // a hole in the vocabulary: never allowed
    }
  }
  return out;
}

size_t hash_of(const std::vector<std::string>& bytes) {
  size_t h = bytes.size();
  for (const auto& b : bytes) h = h * 31 + std::hash<std::string>()(b);
  return h;
}

}  // namespace

std::shared_ptr<const TokenVocabulary> vocabulary_of(const Tokenizer& tokenizer) {
  // Keyed by content, not by the Tokenizer's address: a tokenizer freed and another created at the
  // same address must not get the old trie. Entries are weak: a vocabulary nobody uses is freed.
  static std::mutex mu;
  static std::multimap<size_t, std::weak_ptr<const TokenVocabulary>> cache;
  std::vector<std::string> bytes = token_bytes(tokenizer);
  const size_t h = hash_of(bytes);
  std::lock_guard<std::mutex> lock(mu);
  auto [lo, hi] = cache.equal_range(h);
  for (auto it = lo; it != hi;) {
    auto held = it->second.lock();
    if (!held) {
      it = cache.erase(it);
      continue;
    }
    if (held->all_bytes() == bytes) return held;
    ++it;
  }
  auto built = std::make_shared<const TokenVocabulary>(std::move(bytes));
  cache.emplace(h, built);
  return built;
}

}  // namespace lmforge::structured
