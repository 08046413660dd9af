#pragma once
// The vocabulary as raw bytes per token id (GPT-2's byte-level BPE decoded back to bytes, so a token
// holding half of a UTF-8 character is that half), and the token trie the mask computation walks.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lmforge/structured/matcher.h"

namespace lmforge {
class Tokenizer;
}

namespace lmforge::structured {

// Tokens sharing a prefix share a path: the allowed set of a state is found by walking the trie
// with the matcher and skipping a whole subtree as soon as its prefix is impossible.
class TokenTrie {
 public:
  // `bytes[id]`; empty entries (special tokens, holes) are left out.
  explicit TokenTrie(const std::vector<std::string>& bytes);

  // Sets bit `id` of `mask` (one bit per token id, already sized and zeroed) for every token whose
  // bytes `m` can consume from state `s`.
  void allowed(Matcher& m, StateId s, std::vector<uint64_t>& mask) const;
  size_t node_count() const { return nodes_.size(); }

 private:
  struct Node {
    uint32_t first_child = 0, child_count = 0;  // children are contiguous in nodes_
    uint32_t first_token = 0, token_count = 0;  // ids ending here, in token_ids_
    uint8_t byte = 0;
  };
  std::vector<Node> nodes_;  // nodes_[0] is the root (empty prefix)
  std::vector<int32_t> token_ids_;
};

class TokenVocabulary {
 public:
  // bytes[id] is the token's byte string; empty means the constraint never allows the token
  // (special tokens such as <|endoftext|>: eos is handled on its own).
  explicit TokenVocabulary(std::vector<std::string> bytes);
  int size() const { return static_cast<int>(bytes_.size()); }
  const std::string& bytes(int32_t id) const { return bytes_[id]; }
  const std::vector<std::string>& all_bytes() const { return bytes_; }
  const TokenTrie& trie() const { return trie_; }

 private:
  std::vector<std::string> bytes_;
  TokenTrie trie_;
};

// The vocabulary of a tokenizer, special tokens left out. Built once per distinct vocabulary and
// shared while anyone holds it (the server calls this per request: the trie is not rebuilt).
std::shared_ptr<const TokenVocabulary> vocabulary_of(const Tokenizer& tokenizer);

}  // namespace lmforge::structured
