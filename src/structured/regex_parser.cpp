// Regular expression -> Grammar: alternation -> concatenation -> quantified atoms, each group a
// helper rule. The result is a regular grammar (no rule reaches itself except through repetition's
// tail recursion), so the matcher's state set stays finite.
#include <cctype>
#include <optional>
#include <string>

#include "lmforge/structured/regex.h"
#include "structured/quantifier.h"
#include "structured/scanner.h"
#include "structured/utf8_ranges.h"

namespace lmforge::structured {

namespace {

using Ranges = std::vector<CodepointRange>;

const Ranges kDigit = {{'0', '9'}};
const Ranges kWord = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
const Ranges kSpace = {{'\t', '\r'}, {' ', ' '}};

class RegexParser {
 public:
  explicit RegexParser(std::string_view pattern) : in_(pattern, "regex") {}

  Grammar parse() {
    in_.eat('^');
    g_.root = g_.add_rule("root");
    auto alts = alternation();
    if (!in_.done()) in_.fail(in_.peek() == ')' ? "unbalanced ')'" : "unexpected character");
    g_.rules[g_.root].alternatives = std::move(alts);
    return std::move(g_);
  }

 private:
  std::vector<Sequence> alternation() {
    std::vector<Sequence> alts{concatenation()};
    while (in_.eat('|')) alts.push_back(concatenation());
    return alts;
  }

  bool at_end_anchor() const { return in_.peek() == '$' && (in_.peek(1) == '\0' || in_.peek(1) == ')'); }

  Sequence concatenation() {
    Sequence seq;
    while (!in_.done() && in_.peek() != '|' && in_.peek() != ')') {
      if (at_end_anchor()) {
        in_.skip();  // the match is anchored anyway
        continue;
      }
      Sequence unit = atom();
      if (auto q = parse_quantifier(in_)) {
        if (in_.peek() == '+') in_.fail("possessive quantifiers are not supported");
        in_.eat('?');  // lazy: the same whole-string matches
        unit = g_.repeat(unit, q->min, q->max, "rep" + std::to_string(++count_));
      }
      seq.insert(seq.end(), unit.begin(), unit.end());
    }
    return seq;
  }

  Sequence atom() {
    const char c = in_.peek();
    if (c == '(') return group();
    if (c == '[') return {char_class()};
    if (c == '.') {
      in_.skip();
      return {cls({{'\n', '\n'}}, true)};
    }
    if (c == '\\') {
      in_.skip();
      return escape_atom();
    }
    if (c == '*' || c == '+' || c == '?' || c == '{') in_.fail(std::string("nothing to repeat before '") + c + "'");
    if (c == '^' || c == '$') in_.fail("anchors are only supported at the start and end");
    return g_.literal(encode_utf8(in_.codepoint()));
  }

  Sequence group() {
    in_.skip();  // (
    if (in_.eat('?')) {
      if (!in_.eat(':')) in_.fail("lookaround and named groups are not supported");
    }
    auto alts = alternation();
    in_.expect(')', "to close the group");
    return {g_.group(std::move(alts), "group" + std::to_string(++count_))};
  }

  // After a backslash, outside a class.
  Sequence escape_atom() {
    if (auto r = class_escape()) return {cls(r->first, r->second)};
    const char c = in_.peek();
    if (c == 'b' || c == 'B' || c == 'A' || c == 'z' || c == 'Z') in_.fail("anchors and word boundaries are not supported");
    if (c >= '1' && c <= '9') in_.fail("backreferences are not supported");
    return g_.literal(encode_utf8(in_.escape()));
  }

  // \d \w \s and their negations: (ranges, negated).
  std::optional<std::pair<Ranges, bool>> class_escape() {
    const char c = in_.peek();
    const Ranges* r = c == 'd' || c == 'D' ? &kDigit : c == 'w' || c == 'W' ? &kWord : c == 's' || c == 'S' ? &kSpace : nullptr;
    if (!r) return std::nullopt;
    in_.skip();
    return std::make_pair(*r, static_cast<bool>(std::isupper(static_cast<unsigned char>(c))));
  }

  Element cls(Ranges ranges, bool negated) { return g_.char_class(std::move(ranges), negated, "class" + std::to_string(++count_)); }

  Element char_class() {
    in_.skip();  // [
    const bool negated = in_.eat('^');
    Ranges ranges;
    bool first = true;
    while (!(in_.peek() == ']' && !first)) {
      if (in_.done()) in_.fail("unterminated character class");
      first = false;
      if (in_.peek() == '\\') {
        in_.skip();
        if (auto r = class_escape()) {
          if (r->second) in_.fail("negated class escapes (\\D \\W \\S) inside [...] are not supported");
          ranges.insert(ranges.end(), r->first.begin(), r->first.end());
          continue;
        }
        add_range(ranges, in_.escape());
      } else {
        add_range(ranges, in_.codepoint());
      }
    }
    in_.skip();  // ]
    return cls(std::move(ranges), negated);
  }

  // `lo` is read; a following "-x" (not "-]") makes it a range.
  void add_range(Ranges& ranges, char32_t lo) {
    char32_t hi = lo;
    if (in_.peek() == '-' && in_.peek(1) != ']' && in_.peek(1) != '\0') {
      in_.skip();
      hi = in_.eat('\\') ? in_.escape() : in_.codepoint();
      if (hi < lo) in_.fail("character range is out of order");
    }
    ranges.push_back({lo, hi});
  }

  Scanner in_;
  Grammar g_;
  int count_ = 0;
};

}  // namespace

Grammar regex_to_grammar(std::string_view pattern) { return RegexParser(pattern).parse(); }

}  // namespace lmforge::structured
