// The shared prompt-file reader: plain one-prompt-per-line files, CSV files with a header, and the
// errors (rules in include/lmforge/io/prompt_file.h).
#include "lmforge/io/prompt_file.h"

#include <gtest/gtest.h>

#include <sstream>

#include "common/error_of.h"
#include "io/io_test_util.h"

namespace lmforge {
namespace {

using test::error_of;
using test::TempDir;
using test::write_file;
using Prompts = std::vector<std::string>;

Prompts parse(const std::string& text, const std::string& column = "") {
  PromptFileOptions o;
  o.column = column;
  return parse_prompts(text, "'p.csv'", o);
}

std::string parse_error(const std::string& text, const std::string& column = "") {
  return error_of([&] { parse(text, column); });
}

// ---- plain text: one prompt per line -------------------------------------------------------------

TEST(PromptFile, OnePromptPerLine) {
  EXPECT_EQ(parse("Community\nFarmers"), (Prompts{"Community", "Farmers"}));
  EXPECT_EQ(parse("Community\nFarmers\n"), (Prompts{"Community", "Farmers"}));
}

TEST(PromptFile, PlainLinesKeepCommasAndQuotes) {
  // Without a header a line is not CSV: a prompt with commas or quotes stays whole.
  EXPECT_EQ(parse("Hello, world\nHe said \"hi\", then left\n\"quoted\"\n\"unbalanced"),
            (Prompts{"Hello, world", "He said \"hi\", then left", "\"quoted\"", "\"unbalanced"}));
}

TEST(PromptFile, BlankLinesCrlfBomAndTrailingSpaces) {
  EXPECT_EQ(parse("\xEF\xBB\xBF\n\nCommunity\r\n\r\n  \t\n  Farmers rally \t\r\n\n"),
            (Prompts{"Community", "  Farmers rally"}))
      << "trailing spaces go, leading spaces stay (' the' and 'the' are different tokens)";
}

// ---- CSV with a header ----------------------------------------------------------------------------

TEST(PromptFile, HeaderPromptOrTextIsSkipped) {
  EXPECT_EQ(parse("prompt\nCommunity\nFarmers\n"), (Prompts{"Community", "Farmers"}));
  EXPECT_EQ(parse("text\nCommunity\n"), (Prompts{"Community"}));
  EXPECT_EQ(parse("\xEF\xBB\xBFPrompt\r\nA\r\n"), (Prompts{"A"})) << "case and BOM do not matter";
  EXPECT_EQ(parse("\n\n prompt \nA\n"), (Prompts{"A"})) << "the first non-blank line is the header";
}

TEST(PromptFile, CsvQuotingWithAHeader) {
  EXPECT_EQ(parse("prompt\nCommunity\n\"Farmers, \"\"again\"\"\"\n\"two\nlines\"\n"),
            (Prompts{"Community", "Farmers, \"again\"", "two\nlines"}));
}

TEST(PromptFile, ColumnChoice) {
  const std::string csv = "id,text,prompt\n1,a text,the prompt\n2,\"b, text\",\"another, prompt\"\n";
  EXPECT_EQ(parse(csv), (Prompts{"the prompt", "another, prompt"})) << "`prompt` before `text`";
  EXPECT_EQ(parse(csv, "text"), (Prompts{"a text", "b, text"}));
  EXPECT_EQ(parse(csv, "ID"), (Prompts{"1", "2"}));
  EXPECT_EQ(parse("id,text\n1,only text\n"), (Prompts{"only text"}));
  // A requested column makes its name a header even when it is not `prompt` / `text`.
  EXPECT_EQ(parse("headline_text\nCommunity\n", "headline_text"), (Prompts{"Community"}));
  EXPECT_EQ(parse("headline_text\nCommunity\n"), (Prompts{"headline_text", "Community"}))
      << "without --prompt_column, a first line that names neither prompt nor text is a prompt";
}

TEST(PromptFile, EmptyFieldsAndBlankRecordsAreSkipped) {
  EXPECT_EQ(parse("id,prompt\n1,\n\n2,  \n,\n3,B\n"), (Prompts{"B"}));
}

// ---- errors ---------------------------------------------------------------------------------------

TEST(PromptFile, NoPromptIsAnError) {
  for (const std::string text : {"", "\n\n", " \r\n", "\xEF\xBB\xBF", "prompt\n", "prompt\n\n,\n"}) {
    const std::string e = parse_error(text);
    EXPECT_NE(e.find("prompt_file: 'p.csv' holds no prompt"), std::string::npos) << e;
  }
  PromptFileOptions allow;
  allow.allow_empty = true;
  EXPECT_TRUE(parse_prompts("\n", "stdin", allow).empty());
  EXPECT_TRUE(parse_prompts("prompt\n", "stdin", allow).empty());
}

TEST(PromptFile, MissingColumnIsAnError) {
  std::string e = parse_error("id,text\n1,a\n", "prompt_text");
  EXPECT_NE(e.find("'p.csv' has no column 'prompt_text'"), std::string::npos) << e;
  EXPECT_NE(e.find("id,text"), std::string::npos) << "shows the first line: " << e;
  e = parse_error("Community\nFarmers\n", "prompt");
  EXPECT_NE(e.find("has no column 'prompt'"), std::string::npos) << e;
}

TEST(PromptFile, WrongFieldCountNamesTheLine) {
  const std::string e = parse_error("prompt\nA\nHello, world\n");
  EXPECT_NE(e.find("'p.csv' line 3: 2 fields, but the header has 1"), std::string::npos) << e;
  EXPECT_NE(e.find("quote"), std::string::npos) << e;
}

TEST(PromptFile, UnclosedQuoteIsAnError) {
  const std::string e = parse_error("prompt\n\"never closed\nB\n");
  EXPECT_NE(e.find("never closed"), std::string::npos) << e;
}

TEST(PromptFile, ErrorsAreOneLineAndNameTheFlag) {
  PromptFileOptions o;
  o.column = "a";
  o.label = "--prompt_file";
  const std::string e = error_of([&] { parse_prompts("a,b\n\"x\ny\n", "'f.csv'", o); });
  EXPECT_EQ(e.rfind("--prompt_file: 'f.csv'", 0), 0u) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << "one line: " << e;
}

// ---- files and standard input ----------------------------------------------------------------------

TEST(PromptFile, ReadsFiles) {
  TempDir dir;
  write_file(dir / "p.csv", "prompt\r\nCommunity\r\nFarmers\r\n");
  EXPECT_EQ(read_prompt_file(dir / "p.csv"), (Prompts{"Community", "Farmers"}));
}

TEST(PromptFile, MissingFileOrFolderIsAnError) {
  TempDir dir;
  std::string e = error_of([&] { read_prompt_file(dir / "nope.csv"); });
  EXPECT_NE(e.find("prompt_file: cannot read '" + (dir / "nope.csv").string() + "'"), std::string::npos) << e;
  EXPECT_NE(e.find("No such file"), std::string::npos) << e;
  e = error_of([&] { read_prompt_file(dir.path()); });
  EXPECT_NE(e.find("it is a folder"), std::string::npos) << e;
  write_file(dir / "empty.csv", "");
  e = error_of([&] { read_prompt_file(dir / "empty.csv"); });
  EXPECT_NE(e.find("'" + (dir / "empty.csv").string() + "' holds no prompt"), std::string::npos) << e;
}

TEST(PromptFile, StreamsUseTheSameRules) {
  std::istringstream in("prompt\n\"a, b\"\n");
  EXPECT_EQ(read_prompts(in, "standard input"), (Prompts{"a, b"}));
  std::istringstream empty("");
  const std::string e = error_of([&] { read_prompts(empty, "standard input"); });
  EXPECT_NE(e.find("prompt_file: standard input holds no prompt"), std::string::npos) << e;
}

}  // namespace
}  // namespace lmforge
