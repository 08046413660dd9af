// GBNF text -> Grammar. A recursive-descent parser over the Scanner; rule references may come
// before their definitions (they are created empty and checked at the end).
#include <cctype>
#include <map>
#include <set>
#include <string>

#include "lmforge/error.h"
#include "lmforge/structured/gbnf.h"
#include "structured/quantifier.h"
#include "structured/scanner.h"
#include "structured/utf8_ranges.h"

namespace lmforge::structured {

namespace {

bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; }

class GbnfParser {
 public:
  explicit GbnfParser(std::string_view text) : in_(text, "grammar") {}

  Grammar parse() {
    skip_space();
    while (!in_.done()) {
      parse_rule();
      skip_space();
    }
    auto root = names_.find("root");
    if (root == names_.end()) throw Error("grammar: no 'root' rule (the rule the whole output must match)");
    g_.root = root->second;
    for (const auto& [name, id] : names_)
      if (!defined_.count(name)) throw Error("grammar: rule '" + name + "' is used but never defined");
    return std::move(g_);
  }

 private:
  // Spaces, newlines and # comments.
  void skip_space() {
    while (!in_.done()) {
      const char c = in_.peek();
      if (c == '#') {
        while (!in_.done() && in_.peek() != '\n') in_.skip();
      } else if (std::isspace(static_cast<unsigned char>(c))) {
        in_.skip();
      } else {
        return;
      }
    }
  }

  std::string name() {
    std::string n;
    while (is_name_char(in_.peek())) {
      n += in_.peek();
      in_.skip();
    }
    if (n.empty()) in_.fail("expected a rule name");
    return n;
  }

  uint32_t rule_id(const std::string& n) {
    auto it = names_.find(n);
    if (it != names_.end()) return it->second;
    const uint32_t id = g_.add_rule(n);
    names_.emplace(n, id);
    return id;
  }

  // Whether the cursor is at "name ::=" (the start of the next rule).
  bool at_rule_start() const {
    size_t i = 0;
    while (is_name_char(in_.peek(i))) ++i;
    if (i == 0) return false;
    while (in_.peek(i) == ' ' || in_.peek(i) == '\t') ++i;
    return in_.peek(i) == ':' && in_.peek(i + 1) == ':' && in_.peek(i + 2) == '=';
  }

  void parse_rule() {
    const std::string n = name();
    skip_space();
    if (!in_.eat("::=")) in_.fail("expected '::=' after rule name '" + n + "'");
    if (!defined_.insert(n).second) in_.fail("rule '" + n + "' is defined twice");
    const uint32_t id = rule_id(n);
    auto alts = alternatives(n);
    g_.rules[id].alternatives = std::move(alts);
  }

  std::vector<Sequence> alternatives(const std::string& rule) {
    std::vector<Sequence> alts;
    alts.push_back(sequence(rule));
    while (in_.eat('|')) alts.push_back(sequence(rule));
    return alts;
  }

  // Elements up to '|', ')', the next rule or the end. Each unit is kept apart so a postfix
  // operator applies to the last one as a whole (a literal repeats as a whole, as in llama.cpp).
  Sequence sequence(const std::string& rule) {
    Sequence seq;
    for (;;) {
      skip_space();
      if (in_.done() || in_.peek() == '|' || in_.peek() == ')' || at_rule_start()) break;
      Sequence unit = element(rule);
      if (auto q = parse_quantifier(in_)) unit = g_.repeat(unit, q->min, q->max, rule + "-rep" + std::to_string(++count_));
      seq.insert(seq.end(), unit.begin(), unit.end());
    }
    return seq;
  }

  Sequence element(const std::string& rule) {
    const char c = in_.peek();
    if (c == '"') return literal();
    if (c == '[') return {char_class(rule)};
    if (c == '.') {
      in_.skip();
      return {g_.char_class({}, true, rule + "-any")};
    }
    if (c == '(') {
      in_.skip();
      auto alts = alternatives(rule);
      skip_space();
      in_.expect(')', "to close the group");
      return {g_.group(std::move(alts), rule + "-group" + std::to_string(++count_))};
    }
    if (is_name_char(c)) return {{Element::Kind::Rule, rule_id(name())}};
    in_.fail(std::string("unexpected '") + c + "'");
  }

  Sequence literal() {
    in_.skip();  // "
    std::string bytes;
    while (!in_.eat('"')) {
      if (in_.done() || in_.peek() == '\n') in_.fail("unterminated string literal");
      const char32_t cp = in_.eat('\\') ? in_.escape() : in_.codepoint();
      bytes += encode_utf8(cp);
    }
    return g_.literal(bytes);
  }

  Element char_class(const std::string& rule) {
    in_.skip();  // [
    const bool negated = in_.eat('^');
    std::vector<CodepointRange> ranges;
    while (!in_.eat(']')) {
      if (in_.done()) in_.fail("unterminated character class");
      const char32_t lo = class_char();
      char32_t hi = lo;
      if (in_.peek() == '-' && in_.peek(1) != ']') {
        in_.skip();
        hi = class_char();
        if (hi < lo) in_.fail("character range is out of order");
      }
      ranges.push_back({lo, hi});
    }
    return g_.char_class(std::move(ranges), negated, rule + "-class" + std::to_string(++count_));
  }

  char32_t class_char() { return in_.eat('\\') ? in_.escape() : in_.codepoint(); }

  Scanner in_;
  Grammar g_;
  std::map<std::string, uint32_t> names_;
  std::set<std::string> defined_;
  int count_ = 0;  // numbers helper rules
};

}  // namespace

Grammar parse_gbnf(std::string_view text) { return GbnfParser(text).parse(); }

}  // namespace lmforge::structured
