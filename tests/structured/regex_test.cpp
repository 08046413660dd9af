// Regular expressions: which whole strings match, including UTF-8, and the errors for what is not
// supported.
#include <gtest/gtest.h>

#include "common/error_of.h"
#include "lmforge/structured/matcher.h"
#include "lmforge/structured/regex.h"

namespace lmforge::structured {
namespace {

bool full_match(const std::string& pattern, const std::string& text) {
  Matcher m(regex_to_grammar(pattern));
  return m.matches(text);
}

struct Case {
  const char* pattern;
  const char* text;
  bool match;
};

// Each case is checked both ways: a pattern that accepts everything would fail the false ones.
const Case kCases[] = {
    {"abc", "abc", true},
    {"abc", "ab", false},
    {"abc", "abcd", false},
    {"cat|dog", "dog", true},
    {"cat|dog", "cow", false},
    {"^(yes|no)$", "no", true},
    {R"(\d{4}-[01]\d-[0-3]\d)", "2026-12-05", true},
    {R"(\d{4}-[01]\d-[0-3]\d)", "2026-1-05", false},
    {R"(\d{4}-[01]\d-[0-3]\d)", "2026-12-05 ", false},
    {"[a-c]+x?", "abcab", true},
    {"[a-c]+x?", "ax", true},
    {"[a-c]+x?", "x", false},
    {"[^0-9]*", "hello world", true},
    {"[^0-9]*", "hell0", false},
    {"a{2,3}", "aaa", true},
    {"a{2,3}", "aaaa", false},
    {"a{2,3}", "a", false},
    {"a{2,}", "aaaaaa", true},
    {R"(\w+@\w+\.com)", "me@mail.com", true},
    {R"(\w+@\w+\.com)", "me@mailxcom", false},
    {"(?:ab)*c", "ababc", true},
    {"a.c", "a-c", true},
    {"a.c", "a\nc", false},
    {"x*?y", "xxy", true},  // lazy: the same whole-string matches
    // UTF-8, matched byte by byte
    {"caf\u00e9", "caf\u00e9", true},
    {"[\u00e0-\u00ff]+", "\u00e9\u00e8", true},
    {"[\u00e0-\u00ff]+", "e", false},
    {".", "\u20ac", true},       // one code point of 3 bytes
    {".", "\U0001F600", true},   // 4 bytes
    {".", "\xC3", false},        // half a character
    {".", "\xFF", false},        // never valid UTF-8
    {".", "\xED\xA0\x80", false},  // an encoded surrogate
    {"[^a]", "\u4e2d", true},
    {"[^a]", "a", false},
};

TEST(Regex, WholeStringMatches) {
  for (const Case& c : kCases) EXPECT_EQ(full_match(c.pattern, c.text), c.match) << c.pattern << " on '" << c.text << "'";
}

TEST(Regex, UnsupportedSyntaxIsOneClearError) {
  EXPECT_NE(test::error_of([] { regex_to_grammar("(a)\\1"); }).find("backreferences are not supported"), std::string::npos);
  EXPECT_NE(test::error_of([] { regex_to_grammar("(?=a)"); }).find("lookaround"), std::string::npos);
  EXPECT_NE(test::error_of([] { regex_to_grammar("(ab"); }).find("expected ')'"), std::string::npos);
  EXPECT_NE(test::error_of([] { regex_to_grammar("ab)"); }).find("unbalanced ')'"), std::string::npos);
  EXPECT_NE(test::error_of([] { regex_to_grammar("*a"); }).find("nothing to repeat"), std::string::npos);
  EXPECT_NE(test::error_of([] { regex_to_grammar("[a-"); }).find("regex: "), std::string::npos);
  EXPECT_NE(test::error_of([] { regex_to_grammar("a{3,1}"); }).find("max < min"), std::string::npos);
}

}  // namespace
}  // namespace lmforge::structured
