#pragma once
// Privacy guard for synthetic rows: does a generated row copy a training row?
//
// Both sides are compared as *normalised words*:
//   normalise: ASCII letters lower-cased; every ASCII byte that is not a letter or digit
//   (punctuation, symbols, whitespace, control) becomes a space; runs of spaces collapse and the
//   ends are trimmed. Bytes >= 0x80 (non-ASCII UTF-8) are kept as they are, so "café" stays a word.
//   words: the normalised text split at its spaces ("Don't stop!" -> "don", "t", "stop").
// A generated row is a copy when
//   - exact_copy: its normalised text equals a training row's normalised text, or
//   - ngram_copy: it shares a run of >= max_copy_ngram consecutive words with some training row
//     (checking runs of exactly max_copy_ngram words is enough: any longer shared run contains one).
//
// Scale: the training side is indexed once as two hash sets of 64-bit hashes (whole normalised
// rows, and every max_copy_ngram-word window); a check then costs one lookup per window of the
// generated row. Hash collisions (2^-64 per pair) could only ever drop a row, never leak one.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lmforge::synth {

std::string normalize_text(std::string_view text);
// Words of an already normalised text.
std::vector<std::string_view> split_words(std::string_view normalized);

// The hash of words[begin, begin + n) (a chain over per-word hashes, so the hash of an n-gram is
// the prefix state on the way to the (n+1)-gram starting at the same word).
uint64_t word_hash(std::string_view word);
uint64_t extend_hash(uint64_t chain, uint64_t word_hash);
inline constexpr uint64_t kEmptyChain = 0x51afd7ed558ccd7full;

// An open-addressing set of 64-bit hashes (linear probing, grows at half load): ~16 bytes per
// entry, where std::unordered_set would spend ~40 and chase a pointer per lookup.
class HashSet64 {
 public:
  explicit HashSet64(size_t expected = 0);
  bool insert(uint64_t h);  // true when new
  bool contains(uint64_t h) const;
  size_t size() const { return size_; }

 private:
  static uint64_t key_of(uint64_t h) { return h == 0 ? 1 : h; }  // 0 marks an empty slot
  void grow();
  std::vector<uint64_t> slots_;
  size_t size_ = 0;
  size_t mask_ = 0;
};

enum class CopyReason { None, ExactCopy, NgramCopy };
const char* to_string(CopyReason r);  // "", "exact_copy", "ngram_copy"

struct PrivacyVerdict {
  CopyReason reason = CopyReason::None;
  bool is_copy() const { return reason != CopyReason::None; }
};

class PrivacyGuard {
 public:
  explicit PrivacyGuard(int max_copy_ngram = 8);  // throws lmforge::Error when < 1

  void add_reference(std::string_view row);
  void add_references(const std::vector<std::string>& rows);
  PrivacyVerdict check(std::string_view row) const;

  int max_copy_ngram() const { return n_; }
  size_t reference_rows() const { return rows_added_; }
  size_t distinct_rows() const { return rows_.size(); }
  size_t distinct_ngrams() const { return ngrams_.size(); }

 private:
  int n_;
  size_t rows_added_ = 0;
  HashSet64 rows_;    // hash of every normalised reference row
  HashSet64 ngrams_;  // hash of every n_-word window of the reference rows
};

// For each candidate: the length (in normalised words) of the longest run of consecutive words it
// shares with any reference row; 0 when not even one word is shared. Builds an index of the
// candidates' n-grams (small) and streams the references through it once, extending each
// reference start position only while the run is still some candidate's n-gram.
std::vector<int> longest_shared_ngrams(const std::vector<std::string>& candidates,
                                       const std::vector<std::string>& references);

}  // namespace lmforge::synth
