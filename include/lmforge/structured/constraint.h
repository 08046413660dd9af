#pragma once
// A compiled structured-output constraint: the automaton of a regex / GBNF grammar / JSON Schema /
// json_object over a tokenizer's vocabulary, with the allowed-token mask of each automaton state
// computed once (a walk of the token trie) and cached. Thread-safe: generate() may share one
// between rows, and the server between requests.
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "lmforge/structured/grammar.h"
#include "lmforge/structured/matcher.h"
#include "lmforge/structured/vocabulary.h"

namespace lmforge::structured {

enum class ConstraintKind { Regex, Grammar, JsonSchema, JsonObject };

struct ConstraintSpec {
  ConstraintKind kind;
  std::string source;  // the pattern, the GBNF text, or the schema's JSON text (unused for JsonObject)
};

// The spec as a byte-level grammar. Throws lmforge::Error ("regex: ...", "grammar: ...",
// "json_schema: ...") for a bad pattern, grammar or schema.
Grammar grammar_of(const ConstraintSpec& spec);

// Masks kept per constraint before the cache starts over (4096 x 6 KB for GPT-2's vocabulary).
inline constexpr size_t kMaxCachedMasks = 4096;

class TokenConstraint {
 public:
  TokenConstraint(Grammar grammar, std::shared_ptr<const TokenVocabulary> vocab);

  struct Mask {
    std::vector<uint64_t> bits;  // bit id: token id may come next
    bool accepting = false;      // the output so far is complete: eos may come next
  };

  int vocab_size() const { return vocab_->size(); }
  StateId start() const { return start_; }
  // The state after `token` (Matcher::kDead when its bytes cannot follow, or it is a special token).
  StateId advance(StateId s, int32_t token) const;
  std::shared_ptr<const Mask> mask(StateId s) const;

  size_t cached_masks() const;
  size_t automaton_states() const;

 private:
  mutable std::mutex mu_;
  mutable Matcher matcher_;
  std::shared_ptr<const TokenVocabulary> vocab_;
  StateId start_;
  mutable std::unordered_map<StateId, std::shared_ptr<const Mask>> masks_;
};

std::shared_ptr<const TokenConstraint> compile_constraint(const ConstraintSpec& spec,
                                                          std::shared_ptr<const TokenVocabulary> vocab);
// compile_constraint, but the same spec over the same vocabulary returns the same constraint while
// it is among the kSharedConstraints most recently used: a server's requests with one schema share
// its cached masks instead of each meeting every state cold.
inline constexpr size_t kSharedConstraints = 16;
std::shared_ptr<const TokenConstraint> shared_constraint(const ConstraintSpec& spec,
                                                         std::shared_ptr<const TokenVocabulary> vocab);

// The automaton state of each row of one generate() call, found from the row's generated tokens:
// a prefix tree of token sequences, so a row reordered by beam search or copied for
// num_return_sequences finds its state by its tokens alone, and each step costs one new edge.
class SequenceStates {
 public:
  explicit SequenceStates(std::shared_ptr<const TokenConstraint> constraint);
  StateId state_after(const int32_t* tokens, size_t n);
  const TokenConstraint& constraint() const { return *constraint_; }

 private:
  struct Node {
    StateId state;
    std::unordered_map<int32_t, uint32_t> children;
  };
  std::mutex mu_;
  std::shared_ptr<const TokenConstraint> constraint_;
  std::vector<Node> nodes_;
};

}  // namespace lmforge::structured
