#pragma once
// The byte-level BPE model: vocabulary + ranked merges, applied to one pre-tokenized piece at a
// time exactly like HF's slow GPT2Tokenizer.bpe(): repeatedly take the adjacent pair with the
// lowest merge rank and merge all of its non-overlapping occurrences, left to right.
#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lmforge::tokenizer {

struct MergeRule {
  std::string left, right;
};

class BpeModel {
 public:
  // `merges` are in rank order (rank = index). Throws lmforge::Error when a merge's parts or
  // result are not in `vocab`; `where(i)` names merge i in the message (file and line / entry).
  BpeModel(const std::unordered_map<std::string, int32_t>& vocab, const std::vector<MergeRule>& merges,
           const std::function<std::string(std::size_t)>& where);

  // Appends the ids of one piece given as raw bytes. A byte whose one-character token is missing
  // from the vocabulary becomes `unk` (HF's encoder.get(token, unk)); with no unk it throws.
  // Thread-safe: the result cache is guarded by a shared mutex.
  void encode_piece(std::string_view piece, std::optional<int32_t> unk, std::vector<int32_t>& out) const;

 private:
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  std::vector<int32_t> merge_symbols(std::vector<int32_t> symbols) const;
  const Merge* find_merge(int32_t left, int32_t right) const;

  std::array<int32_t, 256> byte_id_{};  // id of each byte's one-character token, -1 if absent
  std::unordered_map<uint64_t, Merge> merges_;

  // Most text repeats the same words, so finished pieces are remembered. Bounded so that a long
  // stream of distinct pieces cannot grow it without limit.
  static constexpr std::size_t kCacheMaxEntries = 1 << 17;
  static constexpr std::size_t kCacheMaxPieceBytes = 256;
  mutable std::shared_mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace lmforge::tokenizer
