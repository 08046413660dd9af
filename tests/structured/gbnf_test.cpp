// GBNF grammars: parsing llama.cpp's format and matching whole strings with the pushdown matcher.
#include <gtest/gtest.h>

#include "common/error_of.h"
#include "lmforge/structured/gbnf.h"
#include "lmforge/structured/matcher.h"

namespace lmforge::structured {
namespace {

TEST(Gbnf, NestingIsNotRegular) {
  // Balanced parentheses: a regular expression cannot express this; the stack can.
  Matcher m(parse_gbnf("root ::= \"(\" root \")\" root | \"\"\n"));
  EXPECT_TRUE(m.matches("(()(()))"));
  EXPECT_TRUE(m.matches(""));
  EXPECT_FALSE(m.matches("(()"));
  EXPECT_FALSE(m.matches("())("));
}

TEST(Gbnf, LlamaCppSyntax) {
  const char* text = R"(
# a list of small numbers
root  ::= "[" ws num ( "," ws num )* "]"   # trailing comment
num   ::= [1-9] [0-9]{0,2} | "0"
ws    ::= [ \t\n]?
)";
  Matcher m(parse_gbnf(text));
  EXPECT_TRUE(m.matches("[1, 22,\n333]"));
  EXPECT_TRUE(m.matches("[0]"));
  EXPECT_FALSE(m.matches("[1234]"));
  EXPECT_FALSE(m.matches("[01]"));
  EXPECT_FALSE(m.matches("[1,]"));
}

TEST(Gbnf, EscapesClassesAndUtf8) {
  Matcher m(parse_gbnf(R"(root ::= "\"" [^"\\]* "\"" "\x41" [\u00e9] .)"));
  EXPECT_TRUE(m.matches("\"h\u00e9llo\"A\u00e9\u20ac"));
  EXPECT_FALSE(m.matches("\"a\"b\"A\u00e9x"));
  EXPECT_FALSE(m.matches("\"a\"A\u00e8x"));
}

TEST(Gbnf, RepetitionAppliesToTheWholeLiteral) {
  Matcher m(parse_gbnf("root ::= \"ab\"+ \"c\"?"));
  EXPECT_TRUE(m.matches("ababc"));
  EXPECT_FALSE(m.matches("abbc"));
}

TEST(Gbnf, NullableRepetitionDoesNotLoop) {
  Matcher m(parse_gbnf("root ::= (\"a\"?)* \"b\""));
  EXPECT_TRUE(m.matches("aab"));
  EXPECT_TRUE(m.matches("b"));
}

TEST(Gbnf, ErrorsNameTheProblem) {
  EXPECT_NE(test::error_of([] { parse_gbnf("start ::= \"a\""); }).find("no 'root' rule"), std::string::npos);
  EXPECT_NE(test::error_of([] { parse_gbnf("root ::= item"); }).find("rule 'item' is used but never defined"),
            std::string::npos);
  EXPECT_NE(test::error_of([] { parse_gbnf("root ::= \"a"); }).find("unterminated string literal at line 1"),
            std::string::npos);
  EXPECT_NE(test::error_of([] { Matcher m(parse_gbnf("root ::= root \"a\" | \"b\"")); }).find("left-recursive"),
            std::string::npos);
  EXPECT_NE(test::error_of([] { parse_gbnf("root ::= \"a\"\nroot ::= \"b\""); }).find("defined twice"),
            std::string::npos);
  EXPECT_NE(test::error_of([] { parse_gbnf("root ::= \"a\"\n  x = \"b\""); }).find("line 2"), std::string::npos);
}

}  // namespace
}  // namespace lmforge::structured
