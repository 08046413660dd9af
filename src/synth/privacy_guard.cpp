// Normalisation, word n-gram hashing and the copy checks of the privacy guard.
#include "lmforge/synth/privacy_guard.h"

#include <algorithm>
#include <bit>

#include "lmforge/error.h"

namespace lmforge::synth {

namespace {

bool is_ascii_alnum(unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// splitmix64's finaliser: every input bit affects every output bit.
uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

// Chain hashes of every window of `n` words: out[i] covers words[i, i + n).
void window_hashes(const std::vector<uint64_t>& word_hashes, int n, std::vector<uint64_t>& out) {
  out.clear();
  const size_t len = static_cast<size_t>(n);
  for (size_t i = 0; i + len <= word_hashes.size(); ++i) {
    uint64_t h = kEmptyChain;
    for (size_t k = 0; k < len; ++k) h = extend_hash(h, word_hashes[i + k]);
    out.push_back(h);
  }
}

std::vector<uint64_t> hashed_words(std::string_view text) {
  const std::string normalized = normalize_text(text);
  std::vector<uint64_t> out;
  for (std::string_view w : split_words(normalized)) out.push_back(word_hash(w));
  return out;
}

// Equal normalised rows <=> equal word sequences (words are joined by single spaces).
uint64_t whole_row_hash(const std::vector<uint64_t>& word_hashes) {
  uint64_t h = kEmptyChain;
  for (uint64_t w : word_hashes) h = extend_hash(h, w);
  return h;
}

}  // namespace

std::string normalize_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool pending_space = false;
  for (unsigned char c : text) {
    if (c < 0x80 && !is_ascii_alnum(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : static_cast<char>(c));
  }
  return out;
}

std::vector<std::string_view> split_words(std::string_view normalized) {
  std::vector<std::string_view> words;
  size_t start = 0;
  while (start < normalized.size()) {
    size_t end = normalized.find(' ', start);
    if (end == std::string_view::npos) end = normalized.size();
    if (end > start) words.push_back(normalized.substr(start, end - start));
    start = end + 1;
  }
  return words;
}

uint64_t word_hash(std::string_view word) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a, then mixed: FNV alone clusters short words
  for (unsigned char c : word) h = (h ^ c) * 0x100000001b3ull;
  return mix64(h);
}

uint64_t extend_hash(uint64_t chain, uint64_t word) { return mix64(chain * 0x9e3779b97f4a7c15ull + word); }

// ---- HashSet64 ----------------------------------------------------------------------------------

HashSet64::HashSet64(size_t expected) {
  const size_t capacity = std::bit_ceil(std::max<size_t>(16, expected * 2));
  slots_.assign(capacity, 0);
  mask_ = capacity - 1;
}

bool HashSet64::insert(uint64_t h) {
  if ((size_ + 1) * 2 > slots_.size()) grow();
  const uint64_t key = key_of(h);
  for (size_t i = key & mask_;; i = (i + 1) & mask_) {
    if (slots_[i] == key) return false;
    if (slots_[i] == 0) {
      slots_[i] = key;
      ++size_;
      return true;
    }
  }
}

bool HashSet64::contains(uint64_t h) const {
  const uint64_t key = key_of(h);
  for (size_t i = key & mask_;; i = (i + 1) & mask_) {
    if (slots_[i] == key) return true;
    if (slots_[i] == 0) return false;
  }
}

void HashSet64::grow() {
  std::vector<uint64_t> old = std::move(slots_);
  slots_.assign(old.size() * 2, 0);
  mask_ = slots_.size() - 1;
  size_ = 0;
  for (uint64_t key : old)
    if (key != 0) insert(key);
}

// ---- PrivacyGuard -------------------------------------------------------------------------------

const char* to_string(CopyReason r) {
  static constexpr const char* kNames[] = {"", "exact_copy", "ngram_copy"};  // in enum order
  return kNames[static_cast<int>(r)];
}

PrivacyGuard::PrivacyGuard(int max_copy_ngram) : n_(max_copy_ngram) {
  if (n_ < 1) throw Error("max_copy_ngram must be >= 1 (got " + std::to_string(n_) + ")");
}

void PrivacyGuard::add_reference(std::string_view row) {
  ++rows_added_;
  const std::vector<uint64_t> words = hashed_words(row);
  if (words.empty()) return;
  rows_.insert(whole_row_hash(words));
  std::vector<uint64_t> windows;
  window_hashes(words, n_, windows);
  for (uint64_t h : windows) ngrams_.insert(h);
}

void PrivacyGuard::add_references(const std::vector<std::string>& rows) {
  for (const auto& row : rows) add_reference(row);
}

PrivacyVerdict PrivacyGuard::check(std::string_view row) const {
  const std::vector<uint64_t> words = hashed_words(row);
  if (words.empty()) return {};
  if (rows_.contains(whole_row_hash(words))) return {CopyReason::ExactCopy};
  std::vector<uint64_t> windows;
  window_hashes(words, n_, windows);
  for (uint64_t h : windows)
    if (ngrams_.contains(h)) return {CopyReason::NgramCopy};
  return {};
}

// ---- longest shared n-gram ----------------------------------------------------------------------

std::vector<int> longest_shared_ngrams(const std::vector<std::string>& candidates,
                                       const std::vector<std::string>& references) {
  std::vector<std::vector<uint64_t>> candidate_words;
  candidate_words.reserve(candidates.size());
  size_t total_ngrams = 0;
  for (const auto& c : candidates) {
    candidate_words.push_back(hashed_words(c));
    const size_t len = candidate_words.back().size();
    total_ngrams += len * (len + 1) / 2;
  }

  // Every n-gram (any n) of every candidate, keyed by its chain hash from its first word.
  HashSet64 wanted(total_ngrams);
  for (const auto& words : candidate_words)
    for (size_t i = 0; i < words.size(); ++i) {
      uint64_t h = kEmptyChain;
      for (size_t j = i; j < words.size(); ++j) wanted.insert(h = extend_hash(h, words[j]));
    }

  // A reference run that is not some candidate's n-gram cannot grow into one, so each start
  // position stops at its first miss: the scan costs about (reference words x typical match).
  HashSet64 found;
  for (const auto& ref : references) {
    const std::vector<uint64_t> words = hashed_words(ref);
    for (size_t i = 0; i < words.size(); ++i) {
      uint64_t h = kEmptyChain;
      for (size_t j = i; j < words.size(); ++j) {
        h = extend_hash(h, words[j]);
        if (!wanted.contains(h)) break;
        found.insert(h);
      }
    }
  }

  std::vector<int> longest(candidates.size(), 0);
  for (size_t c = 0; c < candidate_words.size(); ++c) {
    const auto& words = candidate_words[c];
    for (size_t i = 0; i < words.size(); ++i) {
      uint64_t h = kEmptyChain;
      for (size_t j = i; j < words.size(); ++j) {
        h = extend_hash(h, words[j]);
        if (!found.contains(h)) break;
        longest[c] = std::max(longest[c], static_cast<int>(j - i + 1));
      }
    }
  }
  return longest;
}

}  // namespace lmforge::synth
