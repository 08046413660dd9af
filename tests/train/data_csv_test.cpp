// CSV reading (libcsv) and the selection of usable text rows. Every expectation is read off the
// hand-written CSV text in the test.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "io/io_test_util.h"
#include "lmforge/train/data.h"

namespace lmforge {
namespace {

using test::TempDir;
using test::ThrowsError;
using test::write_file;
using Records = std::vector<std::vector<std::string>>;

struct Read {
  Records records;
  std::vector<int64_t> lines;
};

Read read_all(const std::filesystem::path& file) {
  CsvReader r(file);
  Read out;
  std::vector<std::string> f;
  while (r.next(f)) {
    out.records.push_back(f);
    out.lines.push_back(r.line());
  }
  return out;
}

Read read_text(const std::string& text) {
  TempDir dir;
  write_file(dir / "t.csv", text);
  return read_all(dir / "t.csv");
}

TEST(CsvReader, QuotedFieldsCommasAndEscapedQuotes) {
  const auto r = read_text("publish_date,headline_text\n20030219,\"hello, world\"\n20030220,\"say \"\"hi\"\"\"\n");
  ASSERT_EQ(r.records.size(), 3u);
  EXPECT_EQ(r.records[0], (std::vector<std::string>{"publish_date", "headline_text"}));
  EXPECT_EQ(r.records[1], (std::vector<std::string>{"20030219", "hello, world"}));
  EXPECT_EQ(r.records[2], (std::vector<std::string>{"20030220", "say \"hi\""}));
  EXPECT_EQ(r.lines, (std::vector<int64_t>{1, 2, 3}));
}

TEST(CsvReader, EmbeddedNewlineKeepsLineNumbers) {
  const auto r = read_text("a,b\n1,\"line1\nline2\nline3\"\n2,x\n");
  ASSERT_EQ(r.records.size(), 3u);
  EXPECT_EQ(r.records[1][1], "line1\nline2\nline3");
  EXPECT_EQ(r.records[2], (std::vector<std::string>{"2", "x"}));
  EXPECT_EQ(r.lines, (std::vector<int64_t>{1, 2, 5}));
}

TEST(CsvReader, CrlfLineEnds) {
  const auto r = read_text("a,b\r\n1,x\r\n2,\"p\r\nq\"\r\n3,y\r\n");
  ASSERT_EQ(r.records.size(), 4u);
  EXPECT_EQ(r.records[0], (std::vector<std::string>{"a", "b"}));  // no stray \r on the last field
  EXPECT_EQ(r.records[1], (std::vector<std::string>{"1", "x"}));
  EXPECT_EQ(r.records[2], (std::vector<std::string>{"2", "p\r\nq"}));  // kept as written inside quotes
  EXPECT_EQ(r.records[3], (std::vector<std::string>{"3", "y"}));
  EXPECT_EQ(r.lines, (std::vector<int64_t>{1, 2, 3, 5}));
}

TEST(CsvReader, Utf8BomIsDropped) {
  const auto r = read_text("\xEF\xBB\xBFheadline_text\ncaf\xC3\xA9 opens\n");
  ASSERT_EQ(r.records.size(), 2u);
  EXPECT_EQ(r.records[0][0], "headline_text");
  EXPECT_EQ(r.records[1][0], "caf\xC3\xA9 opens");
}

TEST(CsvReader, BomOnlyAtTheStart) {
  const auto r = read_text("h\n\xEF\xBB\xBFx\n");
  ASSERT_EQ(r.records.size(), 2u);
  EXPECT_EQ(r.records[1][0], "\xEF\xBB\xBFx");
}

TEST(CsvReader, SpacesKeptNoTrailingNewlineBlankLinesSkipped) {
  const auto r = read_text("a, b \n\n  x ,y\n\n\nlast,row");
  ASSERT_EQ(r.records.size(), 3u);
  EXPECT_EQ(r.records[0], (std::vector<std::string>{"a", " b "}));
  EXPECT_EQ(r.records[1], (std::vector<std::string>{"  x ", "y"}));
  EXPECT_EQ(r.records[2], (std::vector<std::string>{"last", "row"}));
  EXPECT_EQ(r.lines, (std::vector<int64_t>{1, 3, 6}));
}

TEST(CsvReader, EmptyFieldsAndLongFile) {
  std::string text = "a,b,c\n";
  for (int i = 0; i < 20000; ++i) text += std::to_string(i) + ",,\"q" + std::to_string(i) + "\"\n";  // > one 64 KiB chunk
  const auto r = read_text(text);
  ASSERT_EQ(r.records.size(), 20001u);
  EXPECT_EQ(r.records[1], (std::vector<std::string>{"0", "", "q0"}));
  EXPECT_EQ(r.records[20000], (std::vector<std::string>{"19999", "", "q19999"}));
  EXPECT_EQ(r.lines[20000], 20001);
}

TEST(CsvReader, Errors) {
  TempDir dir;
  EXPECT_TRUE(ThrowsError([&] { CsvReader r(dir / "missing.csv"); }, {"missing.csv", "no such file"}));
  EXPECT_TRUE(ThrowsError([&] { CsvReader r(dir.path()); }, {"folder"}));
  write_file(dir / "open.csv", "a\n\"never closed\nmore\n");
  EXPECT_TRUE(ThrowsError([&] { read_all(dir / "open.csv"); }, {"open.csv", "unterminated quoted field"}));
}

TEST(Utf8, Validation) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("h\xC3\xA9llo"));          // é
  EXPECT_TRUE(is_valid_utf8("\xE2\x82\xAC"));          // €
  EXPECT_TRUE(is_valid_utf8("\xF0\x9F\x98\x80"));      // U+1F600
  EXPECT_TRUE(is_valid_utf8("\xF4\x8F\xBF\xBF"));      // U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xFF"));
  EXPECT_FALSE(is_valid_utf8("\x80"));                 // lone continuation byte
  EXPECT_FALSE(is_valid_utf8("\xC3"));                 // truncated
  EXPECT_FALSE(is_valid_utf8("\xC3x"));                // bad continuation
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));             // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xE0\x80\xAF"));         // overlong 3-byte
  EXPECT_FALSE(is_valid_utf8("\xF0\x80\x80\xAF"));     // overlong 4-byte
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));         // UTF-16 surrogate D800
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));     // > U+10FFFF
  EXPECT_FALSE(is_valid_utf8("latin-1 caf\xE9"));
}

// 9 data records: 4 usable, 2 malformed, 1 invalid UTF-8, 2 empty.
const char* kMixed =
    "publish_date,headline_text\n"  // line 1
    "1,first headline\n"            // 2  usable
    "2,\n"                          // 3  empty
    "3,\"   \"\n"                   // 4  empty (only spaces)
    "4\n"                           // 5  malformed: missing column value
    "5,bad \xFF byte\n"             // 6  invalid UTF-8
    "6,\"second, with comma\"\n"    // 7  usable
    "7,third  \t\n"                 // 8  usable, trailing whitespace removed
    "8,x,extra\n"                   // 9  malformed: one field too many
    "9,\"multi\nline\"\n";          // 10 usable (spans 10-11)

TEST(TextRows, SkipsAndCountsBadRows) {
  TempDir dir;
  write_file(dir / "mixed.csv", kMixed);
  DataOptions o;
  o.data_path = dir / "mixed.csv";
  o.max_rows = 0;
  const TextRows r = read_text_rows(o);
  EXPECT_EQ(r.texts, (std::vector<std::string>{"first headline", "second, with comma", "third", "multi\nline"}));
  EXPECT_EQ(r.lines, (std::vector<int64_t>{2, 7, 8, 10}));
  const DataSummary& s = r.summary;
  EXPECT_EQ(s.records_read, 9);
  EXPECT_EQ(s.skipped_malformed, 2);
  EXPECT_EQ(s.skipped_invalid_utf8, 1);
  EXPECT_EQ(s.skipped_empty, 2);
  EXPECT_EQ(s.skipped(), 5);
  EXPECT_EQ(s.usable, 4);
  EXPECT_EQ(s.selected, 4);
  EXPECT_EQ(s.column, "headline_text");
  const std::string line = s.to_string();
  EXPECT_NE(line.find("2 empty"), std::string::npos) << line;
  EXPECT_NE(line.find("2 malformed"), std::string::npos) << line;
  EXPECT_NE(line.find("1 invalid UTF-8"), std::string::npos) << line;
}

TEST(TextRows, FirstNStopsReading) {
  TempDir dir;
  write_file(dir / "mixed.csv", kMixed);
  DataOptions o;
  o.data_path = dir / "mixed.csv";
  o.max_rows = 2;
  const TextRows r = read_text_rows(o);
  EXPECT_EQ(r.texts, (std::vector<std::string>{"first headline", "second, with comma"}));
  // Records 1..6 were read to find two usable rows.
  EXPECT_EQ(r.summary.records_read, 6);
  EXPECT_EQ(r.summary.skipped_empty, 2);
  EXPECT_EQ(r.summary.skipped_malformed, 1);
  EXPECT_EQ(r.summary.skipped_invalid_utf8, 1);
  EXPECT_EQ(r.summary.selected, 2);
}

TEST(TextRows, ColumnChosenByName) {
  TempDir dir;
  write_file(dir / "c.csv", "id,title,headline_text\n1,T1,h1\n2,T2,h2\n");
  DataOptions o;
  o.data_path = dir / "c.csv";
  EXPECT_EQ(read_text_rows(o).texts, (std::vector<std::string>{"h1", "h2"}));
  o.text_column = "title";
  EXPECT_EQ(read_text_rows(o).texts, (std::vector<std::string>{"T1", "T2"}));
  o.text_column = "id";
  EXPECT_EQ(read_text_rows(o).texts, (std::vector<std::string>{"1", "2"}));
  // A header written with spaces after the commas still finds the column.
  write_file(dir / "s.csv", "publish_date, headline_text\n1, spaced\n");
  o.data_path = dir / "s.csv";
  o.text_column = "headline_text";
  EXPECT_EQ(read_text_rows(o).texts, (std::vector<std::string>{" spaced"}));
}

TEST(TextRows, Errors) {
  TempDir dir;
  DataOptions o;
  o.data_path = dir / "nope.csv";
  EXPECT_TRUE(ThrowsError([&] { read_text_rows(o); }, {"nope.csv", "no such file"}));

  write_file(dir / "cols.csv", "publish_date,headline_text\n1,a\n");
  o.data_path = dir / "cols.csv";
  o.text_column = "title";
  EXPECT_TRUE(ThrowsError([&] { read_text_rows(o); }, {"cols.csv", "no column 'title'", "'publish_date'", "'headline_text'"}));

  o.text_column = "headline_text";
  write_file(dir / "empty.csv", "");
  o.data_path = dir / "empty.csv";
  EXPECT_TRUE(ThrowsError([&] { read_text_rows(o); }, {"empty.csv", "empty CSV"}));

  write_file(dir / "header_only.csv", "publish_date,headline_text\n");
  o.data_path = dir / "header_only.csv";
  EXPECT_TRUE(ThrowsError([&] { read_text_rows(o); }, {"header_only.csv", "no usable rows", "headline_text"}));

  write_file(dir / "all_bad.csv", "publish_date,headline_text\n1,\n2,  \n3\n4,\xC3\n");
  o.data_path = dir / "all_bad.csv";
  EXPECT_TRUE(ThrowsError([&] { read_text_rows(o); },
                          {"all_bad.csv", "no usable rows", "4 records", "2 empty", "1 malformed", "1 invalid UTF-8"}));
}

std::string numbered_csv(int n) {
  std::string t = "publish_date,headline_text\n";
  for (int i = 0; i < n; ++i) t += std::to_string(20000000 + i) + ",h" + std::to_string(i) + "\n";
  return t;
}

TEST(TextRows, RandomSampleIsSeededDistinctAndInFileOrder) {
  TempDir dir;
  write_file(dir / "n.csv", numbered_csv(100) + "x,\n");  // one empty row at the end, after the sample rows
  DataOptions o;
  o.data_path = dir / "n.csv";
  o.max_rows = 10;
  o.sample = SampleMode::Random;
  o.seed = 7;
  const TextRows a = read_text_rows(o);
  ASSERT_EQ(a.texts.size(), 10u);
  EXPECT_TRUE(std::is_sorted(a.lines.begin(), a.lines.end()));
  EXPECT_EQ(std::set<std::string>(a.texts.begin(), a.texts.end()).size(), 10u);
  for (size_t i = 0; i < a.texts.size(); ++i) EXPECT_EQ(a.texts[i], "h" + std::to_string(a.lines[i] - 2));
  // Random mode reads everything, so the trailing empty row is counted.
  EXPECT_EQ(a.summary.records_read, 101);
  EXPECT_EQ(a.summary.skipped_empty, 1);
  EXPECT_EQ(a.summary.usable, 100);
  EXPECT_EQ(a.summary.selected, 10);

  EXPECT_EQ(read_text_rows(o).texts, a.texts);  // same seed, same sample
  o.seed = 8;
  EXPECT_NE(read_text_rows(o).texts, a.texts);
  o.max_rows = 1000;  // more than there are: all of them
  EXPECT_EQ(read_text_rows(o).texts.size(), 100u);
}

TEST(TextRows, RandomSampleIsUniform) {
  // Each of 40 rows should be kept with probability 10/40 = 0.25. Over 2000 seeds the count of
  // each row is Binomial(2000, 0.25): mean 500, sd ~19.4; allow 6 sd.
  TempDir dir;
  write_file(dir / "n.csv", numbered_csv(40));
  DataOptions o;
  o.data_path = dir / "n.csv";
  o.max_rows = 10;
  o.sample = SampleMode::Random;
  std::map<std::string, int> count;
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    o.seed = seed;
    for (const auto& t : read_text_rows(o).texts) ++count[t];
  }
  ASSERT_EQ(count.size(), 40u);
  for (const auto& [t, c] : count) EXPECT_NEAR(c, 500, 117) << t;
}

}  // namespace
}  // namespace lmforge
