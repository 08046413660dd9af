#pragma once
// The one automaton representation structured output uses: a context-free grammar over BYTES.
// Regular expressions, GBNF grammars, JSON Schemas and the built-in JSON grammar all compile to it
// (docs/STRUCTURED.md), and one pushdown matcher (matcher.h) runs it. Character classes over
// Unicode code points become alternatives of UTF-8 byte-range sequences when they are compiled
// (utf8_ranges.h), so the matcher never decodes UTF-8 and rejects invalid UTF-8 by construction.
#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lmforge::structured {

using ByteSet = std::bitset<256>;

// One step of a sequence: consume one byte from a set, or match a whole rule.
struct Element {
  enum class Kind : uint8_t { Bytes, Rule };
  Kind kind;
  uint32_t index;  // into Grammar::byte_sets or Grammar::rules
  bool operator==(const Element&) const = default;
};
using Sequence = std::vector<Element>;

struct Rule {
  std::string name;                   // for error messages (generated helper rules have derived names)
  std::vector<Sequence> alternatives;  // an empty sequence matches the empty string
};

// An inclusive range of Unicode code points.
struct CodepointRange {
  char32_t lo, hi;
};

class Grammar {
 public:
  std::vector<Rule> rules;
  std::vector<ByteSet> byte_sets;
  uint32_t root = 0;

  // A new rule with no alternatives yet (filled in by the caller).
  uint32_t add_rule(std::string name);
  // Index of `set` in byte_sets (equal sets share one index).
  uint32_t byte_set(const ByteSet& set);

  // Elements that match each byte of `text` in turn.
  Sequence literal(std::string_view text);
  // An element that matches one code point in `ranges` (or, `negated`, any valid one outside them),
  // as its UTF-8 bytes. ASCII-only classes are one byte-set element; others a helper rule.
  Element char_class(std::vector<CodepointRange> ranges, bool negated, const std::string& name);

  // Repetition of `item` (a sequence matched as a unit) between `min` and `max` times (max < 0: no
  // upper bound), as right-recursive helper rules named after `name`. The matcher needs right
  // recursion: a left-recursive rule would expand forever.
  Sequence repeat(const Sequence& item, int min, int max, const std::string& name);
  // A rule whose alternatives are `alts`: a group "( a | b )" used as one element.
  Element group(std::vector<Sequence> alts, const std::string& name);

  // Copies `other`'s rules (names prefixed) and byte sets into this grammar; returns the id its
  // root rule has here. (A JSON Schema string `pattern` is a regex grammar embedded this way.)
  uint32_t embed(const Grammar& other, const std::string& prefix);
  // The id of the rule called `name`; throws lmforge::Error when there is none.
  uint32_t rule_named(const std::string& name) const;

  // Throws lmforge::Error naming the rule when a rule is referenced but never defined (no
  // alternatives), or when a rule can reach itself without consuming a byte (left recursion).
  void check() const;
};

// A code point set's complement within valid Unicode scalar values (surrogates excluded).
std::vector<CodepointRange> complement(std::vector<CodepointRange> ranges);

}  // namespace lmforge::structured
