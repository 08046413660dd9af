#pragma once
// The pushdown matcher that runs a Grammar over bytes, as llama.cpp's grammar sampler runs GBNF:
// a state is the SET of possible parse stacks (each stack holds the positions still to match, the
// top one always a byte set). Consuming a byte advances every stack whose top accepts it and
// expands rule references until each top is a byte set again; stacks that cannot take the byte
// die. An empty stack means the whole input matched (accepting).
//
// Stack sets are interned: equal sets get one StateId, and each (state, byte) transition is computed
// once and remembered, so the matcher becomes a DFA built lazily as input is seen. A regular
// grammar (a regex) has finitely many states; a recursive one (JSON) gets a new state per nesting
// context it actually meets. Not thread-safe: callers serialize (constraint.h holds a mutex).
#include <array>
#include <cstdint>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lmforge/structured/grammar.h"

namespace lmforge::structured {

using StateId = int32_t;

class Matcher {
 public:
  // Checks the grammar (Grammar::check) and builds the start state.
  explicit Matcher(Grammar grammar);

  static constexpr StateId kDead = 0;  // the empty stack set: nothing can follow
  StateId start() const { return start_; }
  StateId advance(StateId s, uint8_t byte);
  StateId advance(StateId s, std::string_view bytes);  // byte by byte; kDead as soon as one fails
  bool accepting(StateId s) const { return states_[s].accepting; }
  // Whether `text` as a whole is in the language.
  bool matches(std::string_view text) { return accepting(advance(start_, text)); }
  size_t state_count() const { return states_.size(); }

  const Grammar& grammar() const { return grammar_; }

 private:
  using Stack = std::vector<uint32_t>;  // positions into flat_, top at the back
  struct StackSetHash {
    size_t operator()(const std::vector<Stack>& set) const;
  };
  struct State {
    std::vector<Stack> stacks;
    bool accepting = false;
  };
  struct Flat {  // a grammar element, or the end of a sequence
    enum class Kind : uint8_t { Bytes, Rule, End } kind;
    uint32_t index;
  };

  void flatten();
  void expand(Stack stack, std::vector<Stack>& out, std::vector<Stack>& seen) const;
  StateId intern(std::vector<Stack> stacks);

  Grammar grammar_;
  std::vector<Flat> flat_;
  std::vector<std::vector<uint32_t>> alt_starts_;  // per rule: position of each alternative's first element
  std::vector<State> states_;
  std::vector<std::array<StateId, 256>> next_;  // per state: -1 = not computed yet
  std::unordered_map<std::vector<Stack>, StateId, StackSetHash> ids_;
  StateId start_ = kDead;
};

}  // namespace lmforge::structured
