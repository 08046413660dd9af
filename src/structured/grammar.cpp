// Building the byte-level grammar: literals, character classes, groups and repetition.
#include "lmforge/structured/grammar.h"

#include <algorithm>
#include <functional>
#include <optional>

#include "lmforge/error.h"
#include "structured/utf8_ranges.h"

namespace lmforge::structured {

uint32_t Grammar::add_rule(std::string name) {
  rules.push_back({std::move(name), {}});
  return static_cast<uint32_t>(rules.size() - 1);
}

uint32_t Grammar::byte_set(const ByteSet& set) {
  for (size_t i = 0; i < byte_sets.size(); ++i)
    if (byte_sets[i] == set) return static_cast<uint32_t>(i);
  byte_sets.push_back(set);
  return static_cast<uint32_t>(byte_sets.size() - 1);
}

Sequence Grammar::literal(std::string_view text) {
  Sequence seq;
  for (unsigned char c : text) {
    ByteSet one;
    one.set(c);
    seq.push_back({Element::Kind::Bytes, byte_set(one)});
  }
  return seq;
}

Element Grammar::char_class(std::vector<CodepointRange> ranges, bool negated, const std::string& name) {
  ranges = negated ? complement(std::move(ranges)) : normalize(std::move(ranges));
  ByteSet ascii;
  std::vector<Sequence> multi;
  for (const auto& r : ranges) {
    for (const auto& seq : utf8_sequences(r.lo, r.hi)) {
      if (seq.size() == 1) {
        for (int b = seq[0].first; b <= seq[0].second; ++b) ascii.set(b);
        continue;
      }
      Sequence s;
      for (auto [lo, hi] : seq) {
        ByteSet set;
        for (int b = lo; b <= hi; ++b) set.set(b);
        s.push_back({Element::Kind::Bytes, byte_set(set)});
      }
      multi.push_back(std::move(s));
    }
  }
  if (multi.empty()) return {Element::Kind::Bytes, byte_set(ascii)};  // an empty class matches nothing
  if (ascii.any()) multi.insert(multi.begin(), Sequence{{Element::Kind::Bytes, byte_set(ascii)}});
  return group(std::move(multi), name);
}

Element Grammar::group(std::vector<Sequence> alts, const std::string& name) {
  const uint32_t r = add_rule(name);
  rules[r].alternatives = std::move(alts);
  return {Element::Kind::Rule, r};
}

Sequence Grammar::repeat(const Sequence& item, int min, int max, const std::string& name) {
  Sequence out;
  for (int i = 0; i < min; ++i) out.insert(out.end(), item.begin(), item.end());
  if (max < 0) {  // R ::= item R | ""
    const uint32_t r = add_rule(name + "-star");
    Sequence more = item;
    more.push_back({Element::Kind::Rule, r});
    rules[r].alternatives = {std::move(more), {}};
    out.push_back({Element::Kind::Rule, r});
    return out;
  }
  // (max - min) nested optionals: R1 ::= item | "", Rk ::= item R(k-1) | "".
  std::optional<uint32_t> inner;
  for (int k = 0; k < max - min; ++k) {
    const uint32_t r = add_rule(name + "-opt" + std::to_string(k));
    Sequence more = item;
    if (inner) more.push_back({Element::Kind::Rule, *inner});
    rules[r].alternatives = {std::move(more), {}};
    inner = r;
  }
  if (inner) out.push_back({Element::Kind::Rule, *inner});
  return out;
}

uint32_t Grammar::embed(const Grammar& other, const std::string& prefix) {
  const auto base = static_cast<uint32_t>(rules.size());
  std::vector<uint32_t> set_index(other.byte_sets.size());
  for (size_t i = 0; i < other.byte_sets.size(); ++i) set_index[i] = byte_set(other.byte_sets[i]);
  for (const Rule& r : other.rules) {
    Rule copy{prefix + r.name, r.alternatives};
    for (auto& alt : copy.alternatives)
      for (Element& e : alt) e.index = e.kind == Element::Kind::Bytes ? set_index[e.index] : base + e.index;
    rules.push_back(std::move(copy));
  }
  return base + other.root;
}

uint32_t Grammar::rule_named(const std::string& name) const {
  for (size_t r = 0; r < rules.size(); ++r)
    if (rules[r].name == name) return static_cast<uint32_t>(r);
  throw Error("grammar: no rule '" + name + "'");
}

namespace {

// Rules that can match the empty string (fixed point).
std::vector<bool> nullable_rules(const Grammar& g) {
  std::vector<bool> nullable(g.rules.size(), false);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < g.rules.size(); ++r) {
      if (nullable[r]) continue;
      for (const auto& alt : g.rules[r].alternatives) {
        const bool empty = std::all_of(alt.begin(), alt.end(), [&](const Element& e) {
          return e.kind == Element::Kind::Rule && nullable[e.index];
        });
        if (empty) {
          nullable[r] = changed = true;
          break;
        }
      }
    }
  }
  return nullable;
}

// Rules `r` can begin with (without consuming a byte first), and whether something follows them
// in that alternative: a rule reached again through such an edge grows the stack forever (left
// recursion); one reached only in tail position, as in ("a"?)*, merely loops and the matcher's
// duplicate check ends it.
struct LeadingEdge {
  uint32_t rule;
  bool grows;
};
std::vector<LeadingEdge> leading_rules(const Grammar& g, uint32_t r, const std::vector<bool>& nullable) {
  std::vector<LeadingEdge> out;
  for (const auto& alt : g.rules[r].alternatives) {
    for (size_t i = 0; i < alt.size(); ++i) {
      const Element& e = alt[i];
      if (e.kind != Element::Kind::Rule) break;
      out.push_back({e.index, i + 1 < alt.size()});
      if (!nullable[e.index]) break;
    }
  }
  return out;
}

}  // namespace

void Grammar::check() const {
  for (const auto& rule : rules)
    if (rule.alternatives.empty()) throw Error("grammar: rule '" + rule.name + "' is used but never defined");
  const auto nullable = nullable_rules(*this);
  // Depth-first search for a cycle with a growing edge: 0 unvisited, 1 on the path, 2 done.
  std::vector<int> mark(rules.size(), 0);
  std::vector<std::pair<uint32_t, bool>> path;  // rules on the path and whether the edge into them grows
  std::function<void(uint32_t)> visit = [&](uint32_t r) {
    mark[r] = 1;
    for (const auto& edge : leading_rules(*this, r, nullable)) {
      if (mark[edge.rule] == 1) {
        bool grows = edge.grows;
        for (auto it = path.rbegin(); it != path.rend() && it->first != edge.rule; ++it) grows = grows || it->second;
        if (grows)
          throw Error("grammar: rule '" + rules[edge.rule].name +
                      "' is left-recursive (it can reach itself before matching a character); rewrite it "
                      "with repetition, e.g. list ::= item (\",\" item)*");
      }
      if (mark[edge.rule] == 0) {
        path.emplace_back(edge.rule, edge.grows);
        visit(edge.rule);
        path.pop_back();
      }
    }
    mark[r] = 2;
  };
  for (uint32_t r = 0; r < rules.size(); ++r) {
    if (mark[r] != 0) continue;
    path.assign(1, {r, false});
    visit(r);
  }
}

}  // namespace lmforge::structured
