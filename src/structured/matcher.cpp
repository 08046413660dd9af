#include "lmforge/structured/matcher.h"

#include <algorithm>

namespace lmforge::structured {

namespace {
// Deeper stacks are dropped (that parse dies) rather than grown without bound: JSON nested this
// deep is not a useful output, and it keeps a runaway recursion from exhausting memory.
constexpr size_t kMaxStackDepth = 4096;
}  // namespace

size_t Matcher::StackSetHash::operator()(const std::vector<Stack>& set) const {
  size_t h = set.size();
  for (const auto& st : set) {
    h = h * 1000003u ^ st.size();
    for (uint32_t p : st) h = (h ^ p) * 0x100000001b3ull;
  }
  return h;
}

Matcher::Matcher(Grammar grammar) : grammar_(std::move(grammar)) {
  grammar_.check();
  flatten();
  intern({});  // kDead
  std::vector<Stack> stacks, seen;
  for (uint32_t s : alt_starts_[grammar_.root]) {
    Stack st;
    if (flat_[s].kind != Flat::Kind::End) st.push_back(s);
    expand(std::move(st), stacks, seen);
  }
  start_ = intern(std::move(stacks));
}

void Matcher::flatten() {
  alt_starts_.resize(grammar_.rules.size());
  for (size_t r = 0; r < grammar_.rules.size(); ++r) {
    for (const Sequence& alt : grammar_.rules[r].alternatives) {
      alt_starts_[r].push_back(static_cast<uint32_t>(flat_.size()));
      for (const Element& e : alt)
        flat_.push_back({e.kind == Element::Kind::Bytes ? Flat::Kind::Bytes : Flat::Kind::Rule, e.index});
      flat_.push_back({Flat::Kind::End, 0});
    }
  }
}

// Replaces a rule reference on top by each of its alternatives until every top is a byte set (or
// the stack is empty: accepted). `seen` stops loops through rules that match the empty string.
void Matcher::expand(Stack stack, std::vector<Stack>& out, std::vector<Stack>& seen) const {
  if (stack.size() > kMaxStackDepth) return;
  if (std::find(seen.begin(), seen.end(), stack) != seen.end()) return;
  seen.push_back(stack);
  if (stack.empty() || flat_[stack.back()].kind == Flat::Kind::Bytes) {
    out.push_back(std::move(stack));
    return;
  }
  const uint32_t top = stack.back();
  stack.pop_back();
  if (flat_[top + 1].kind != Flat::Kind::End) stack.push_back(top + 1);
  for (uint32_t s : alt_starts_[flat_[top].index]) {
    Stack next = stack;
    if (flat_[s].kind != Flat::Kind::End) next.push_back(s);
    expand(std::move(next), out, seen);
  }
}

StateId Matcher::intern(std::vector<Stack> stacks) {
  std::sort(stacks.begin(), stacks.end());
  stacks.erase(std::unique(stacks.begin(), stacks.end()), stacks.end());
  auto it = ids_.find(stacks);
  if (it != ids_.end()) return it->second;
  const auto id = static_cast<StateId>(states_.size());
  State st;
  st.accepting = std::any_of(stacks.begin(), stacks.end(), [](const Stack& s) { return s.empty(); });
  st.stacks = stacks;
  states_.push_back(std::move(st));
  std::array<StateId, 256> unknown;
  unknown.fill(-1);
  next_.push_back(unknown);
  ids_.emplace(std::move(stacks), id);
  return id;
}

StateId Matcher::advance(StateId s, uint8_t byte) {
  if (StateId known = next_[s][byte]; known >= 0) return known;
  std::vector<Stack> out, seen;
  for (const Stack& st : states_[s].stacks) {
    if (st.empty()) continue;
    const uint32_t top = st.back();
    if (!grammar_.byte_sets[flat_[top].index].test(byte)) continue;
    Stack next(st.begin(), st.end() - 1);
    if (flat_[top + 1].kind != Flat::Kind::End) next.push_back(top + 1);
    expand(std::move(next), out, seen);
  }
  const StateId id = out.empty() ? kDead : intern(std::move(out));
  next_[s][byte] = id;
  return id;
}

StateId Matcher::advance(StateId s, std::string_view bytes) {
  for (unsigned char c : bytes) {
    if (s == kDead) return kDead;
    s = advance(s, static_cast<uint8_t>(c));
  }
  return s;
}

}  // namespace lmforge::structured
