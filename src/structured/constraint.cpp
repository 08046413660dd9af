#include "lmforge/structured/constraint.h"

#include <list>
#include <tuple>

#include <nlohmann/json.hpp>

#include "lmforge/error.h"
#include "lmforge/structured/gbnf.h"
#include "lmforge/structured/json_schema.h"
#include "lmforge/structured/regex.h"

namespace lmforge::structured {

Grammar grammar_of(const ConstraintSpec& spec) {
  switch (spec.kind) {
    case ConstraintKind::Regex:
      return regex_to_grammar(spec.source);
    case ConstraintKind::Grammar:
      return parse_gbnf(spec.source);
    case ConstraintKind::JsonObject:
      return parse_gbnf(json_object_gbnf());
    case ConstraintKind::JsonSchema: {
      nlohmann::ordered_json schema;
      try {
        schema = nlohmann::ordered_json::parse(spec.source);
      } catch (const nlohmann::ordered_json::exception& e) {  // parse_error, or out_of_range for a huge number
        throw Error(std::string("json_schema: not valid JSON: ") + e.what());
      }
      return json_schema_to_grammar(schema);
    }
  }
  throw Error("structured output: unknown constraint kind");
}

TokenConstraint::TokenConstraint(Grammar grammar, std::shared_ptr<const TokenVocabulary> vocab)
    : matcher_(std::move(grammar)), vocab_(std::move(vocab)), start_(matcher_.start()) {}

StateId TokenConstraint::advance(StateId s, int32_t token) const {
  if (token < 0 || token >= vocab_->size() || vocab_->bytes(token).empty()) return Matcher::kDead;
  std::lock_guard<std::mutex> lock(mu_);
  return matcher_.advance(s, vocab_->bytes(token));
}

std::shared_ptr<const TokenConstraint::Mask> TokenConstraint::mask(StateId s) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = masks_.find(s); it != masks_.end()) return it->second;
  auto m = std::make_shared<Mask>();
  m->bits.assign((static_cast<size_t>(vocab_->size()) + 63) / 64, 0);
  m->accepting = matcher_.accepting(s);
  if (s != Matcher::kDead) vocab_->trie().allowed(matcher_, s, m->bits);
  // A recursive grammar (json_object) meets new states as long as outputs nest differently; a
  // server keeps its constraints, so the masks (6 KB each for GPT-2) are dropped wholesale past a
  // bound rather than kept forever. Masks already handed out stay valid (shared_ptr).
  if (masks_.size() >= kMaxCachedMasks) masks_.clear();
  masks_.emplace(s, m);
  return m;
}

size_t TokenConstraint::cached_masks() const {
  std::lock_guard<std::mutex> lock(mu_);
  return masks_.size();
}

size_t TokenConstraint::automaton_states() const {
  std::lock_guard<std::mutex> lock(mu_);
  return matcher_.state_count();
}

std::shared_ptr<const TokenConstraint> compile_constraint(const ConstraintSpec& spec,
                                                          std::shared_ptr<const TokenVocabulary> vocab) {
  return std::make_shared<const TokenConstraint>(grammar_of(spec), std::move(vocab));
}

std::shared_ptr<const TokenConstraint> shared_constraint(const ConstraintSpec& spec,
                                                         std::shared_ptr<const TokenVocabulary> vocab) {
  struct Entry {
    ConstraintKind kind;
    std::string source;
    std::shared_ptr<const TokenVocabulary> vocab;
    std::shared_ptr<const TokenConstraint> constraint;
  };
  static std::mutex mu;
  static std::list<Entry> recent;  // most recently used first
  {
    std::lock_guard<std::mutex> lock(mu);
    for (auto it = recent.begin(); it != recent.end(); ++it) {
      if (it->kind == spec.kind && it->source == spec.source && it->vocab == vocab) {
        recent.splice(recent.begin(), recent, it);
        return recent.front().constraint;
      }
    }
  }
  auto built = compile_constraint(spec, vocab);  // outside the lock: a bad spec throws, a big one takes a while
  std::lock_guard<std::mutex> lock(mu);
  recent.push_front({spec.kind, spec.source, std::move(vocab), built});
  if (recent.size() > kSharedConstraints) recent.pop_back();
  return built;
}

SequenceStates::SequenceStates(std::shared_ptr<const TokenConstraint> constraint)
    : constraint_(std::move(constraint)) {
  nodes_.push_back({constraint_->start(), {}});
}

StateId SequenceStates::state_after(const int32_t* tokens, size_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  uint32_t node = 0;
  for (size_t i = 0; i < n; ++i) {
    auto it = nodes_[node].children.find(tokens[i]);
    if (it != nodes_[node].children.end()) {
      node = it->second;
      continue;
    }
    const StateId next = constraint_->advance(nodes_[node].state, tokens[i]);
    const auto child = static_cast<uint32_t>(nodes_.size());
    nodes_[node].children.emplace(tokens[i], child);
    nodes_.push_back({next, {}});
    node = child;
  }
  return nodes_[node].state;
}

}  // namespace lmforge::structured
