// run_clm.py's data pipeline: files read by extension as datasets' csv/json/text loaders read them,
// the column rule (`text`, else the first), group_texts per 1000 rows, and the errors naming file
// and column. Expected values are worked out by hand (GPT-2 ids from its published vocab.json).
#include <gtest/gtest.h>

#include <tuple>

#include "common/fixtures.h"
#include "io/io_test_util.h"
#include "lmforge/tokenizer/tokenizer.h"
#include "lmforge/train/run_clm.h"

namespace lmforge {
namespace {

using test::TempDir;
using test::ThrowsError;
using test::write_file;
using Rows = std::vector<std::vector<int32_t>>;

TEST(RunClmGroupTexts, ConcatenatesAndDropsTheRemainder) {
  const Rows rows = {{1, 2, 3}, {4, 5}, {6, 7, 8, 9}};
  EXPECT_EQ(group_texts(rows, 4), (Rows{{1, 2, 3, 4}, {5, 6, 7, 8}}));  // 9 dropped
  EXPECT_EQ(group_texts(rows, 9), (Rows{{1, 2, 3, 4, 5, 6, 7, 8, 9}}));
  EXPECT_EQ(group_texts(rows, 10), Rows{});  // fewer tokens than a block: nothing
  EXPECT_EQ(group_texts({{}, {1}, {}, {2}}, 2), (Rows{{1, 2}}));  // empty rows add nothing
  // Two rows per group: {1..5} -> {1,2} {3,4}, 5 dropped; {6..9} -> {6,7} {8,9}.
  EXPECT_EQ(group_texts(rows, 2, 2), (Rows{{1, 2}, {3, 4}, {6, 7}, {8, 9}}));
  EXPECT_TRUE(ThrowsError([&] { group_texts(rows, 0); }, {"block_size", "0"}));
}

TEST(RunClmGroupTexts, EveryThousandRowsDropTheirOwnRemainder) {
  Rows rows;
  for (int32_t i = 0; i < 1005; ++i) rows.push_back({i});
  const Rows blocks = group_texts(rows, 3);
  // Rows 0..999: 333 blocks (999 dropped); rows 1000..1004: 1 block (1003, 1004 dropped). One
  // concatenation of all 1005 ids would give 335.
  ASSERT_EQ(blocks.size(), 334u);
  EXPECT_EQ(blocks[332], (std::vector<int32_t>{996, 997, 998}));
  EXPECT_EQ(blocks[333], (std::vector<int32_t>{1000, 1001, 1002}));
}

TEST(RunClmFiles, CsvUsesTheTextColumnElseTheFirst) {
  TempDir d;
  write_file(d / "a.csv", "id,text\n1,  padded  \n2,\"two\nlines\"\n\n3,\n");
  const TextFileRows a = read_text_file_rows(d / "a.csv", "", "--train_file");
  EXPECT_EQ(a.column, "text");
  // Nothing stripped (pandas keeps fields as written); a blank line is no record; an empty field is "".
  EXPECT_EQ(a.texts, (std::vector<std::string>{"  padded  ", "two\nlines", ""}));
  EXPECT_EQ(a.lines, (std::vector<int64_t>{2, 3, 6}));
  write_file(d / "b.csv", "body,id\nfirst,1\nsecond,2\n");
  const TextFileRows b = read_text_file_rows(d / "b.csv", "", "--train_file");
  EXPECT_EQ(b.column, "body");
  EXPECT_EQ(b.texts, (std::vector<std::string>{"first", "second"}));
}

TEST(RunClmFiles, JsonLinesAndJsonArrays) {
  TempDir d;
  write_file(d / "a.jsonl", "{\"text\": \"one\", \"id\": 1}\n\n{\"id\": 2, \"text\": \"two\\n\"}\n");
  const TextFileRows a = read_text_file_rows(d / "a.jsonl", "", "--train_file");
  EXPECT_EQ(a.column, "text");
  EXPECT_EQ(a.texts, (std::vector<std::string>{"one", "two\n"}));
  EXPECT_EQ(a.lines, (std::vector<int64_t>{1, 3}));
  // No `text`: the first key of the first object, in the file's order (not sorted).
  write_file(d / "b.json", "{\"zeta\": \"z1\", \"alpha\": \"a1\"}\n{\"alpha\": \"a2\", \"zeta\": \"z2\"}\n");
  const TextFileRows b = read_text_file_rows(d / "b.json", "", "--train_file");
  EXPECT_EQ(b.column, "zeta");
  EXPECT_EQ(b.texts, (std::vector<std::string>{"z1", "z2"}));
  write_file(d / "c.json", "[{\"text\": \"x\"}, {\"text\": \"y\"}]");
  EXPECT_EQ(read_text_file_rows(d / "c.json", "", "--train_file").texts, (std::vector<std::string>{"x", "y"}));
}

TEST(RunClmFiles, TxtRowsKeepTheirLineBreaks) {
  TempDir d;
  write_file(d / "a.txt", "alpha\r\nbeta\rgamma\n\ndelta");
  const TextFileRows a = read_text_file_rows(d / "a.txt", "", "--train_file");
  EXPECT_EQ(a.column, "text");
  EXPECT_EQ(a.texts, (std::vector<std::string>{"alpha\n", "beta\n", "gamma\n", "\n", "delta"}));
}

TEST(RunClmFiles, ErrorsNameTheFileAndColumn) {
  TempDir d;
  write_file(d / "val.csv", "id,body\n1,x\n");
  const std::string val = (d / "val.csv").string();
  EXPECT_TRUE(ThrowsError([&] { read_text_file_rows(d / "val.csv", "text", "--validation_file"); },
                          {val, "no column 'text'", "'id', 'body'", "--validation_file"}));
  write_file(d / "val.jsonl", "{\"body\": \"x\"}\n");
  EXPECT_TRUE(ThrowsError([&] { read_text_file_rows(d / "val.jsonl", "text", "--validation_file"); },
                          {"val.jsonl", "no column 'text'", "'body'"}));
  write_file(d / "val.txt", "x\n");
  EXPECT_TRUE(ThrowsError([&] { read_text_file_rows(d / "val.txt", "body", "--validation_file"); },
                          {"val.txt", "no column 'body'", "'text'"}));
  EXPECT_TRUE(ThrowsError([&] { read_text_file_rows(d / "none.csv", "", "--train_file"); },
                          {"none.csv", "no such file", "--train_file"}));
  EXPECT_TRUE(ThrowsError([&] { read_text_file_rows(d / "data.parquet", "", "--train_file"); },
                          {"data.parquet", "--train_file must be a .csv, .json, .jsonl or .txt file", "'.parquet'"}));
  // Malformed files: (name, content, what the message must say).
  const std::vector<std::tuple<std::string, std::string, std::vector<std::string>>> bad = {
      {"short.csv", "id,text\n1,a\n2\n", {"short.csv:3", "1 fields, the header has 2"}},
      {"gap.jsonl", "{\"text\": \"a\"}\n{\"id\": 1}\n", {"gap.jsonl:2", "without column 'text'"}},
      {"num.jsonl", "{\"text\": 5}\n", {"num.jsonl:1", "'text' must be a string, got 5"}},
      {"broken.jsonl", "{\"text\": \"a\"}\n{\"text\": \n", {"broken.jsonl:2", "invalid JSON"}},
      {"empty.txt", "", {"empty.txt", "no rows"}},
      {"bad.txt", "ok\n\xff\xfe\n", {"bad.txt:2", "UTF-8"}},
  };
  for (const auto& [name, content, needles] : bad) {
    write_file(d / name, content);
    const auto file = d / name;  // (clang 14 cannot capture a structured binding)
    EXPECT_TRUE(ThrowsError([&] { read_text_file_rows(file, "", "--train_file"); }, needles)) << name;
  }
}

TrainConfig run_clm_config(const std::filesystem::path& train, int block) {
  TrainConfig c;
  set_config_value(c, "train_file", train.string(), "--train_file");
  c.block_size = block;
  return c;
}

// A training and a validation file written into `d`, as --train_file / --validation_file.
TrainConfig run_clm_files(const TempDir& d, const std::string& train, const std::string& train_text,
                          const std::string& val, const std::string& val_text, int block) {
  write_file(d / train, train_text);
  write_file(d / val, val_text);
  TrainConfig c = run_clm_config(d / train, block);
  c.validation_file = (d / val).string();
  return c;
}

// GPT-2 ids: "Hello" 15496, " world" 995, "\n" 198 (vocab.json).
TEST(RunClmData, TrainAndValidationFilesBecomeBlocks) {
  TempDir d;
  const Tokenizer tok = Tokenizer::from_dir(test::data_dir() / "tokenizer");
  const TrainConfig c = run_clm_files(d, "train.txt", "Hello world\nHello world\nHello", "val.csv", "text\nHello world\n", 2);
  const TrainingData td = load_training_data(c, 128, tok);
  // 15496 995 198 | 15496 995 198 | 15496 -> [15496 995] [198 15496] [995 198], the last 15496 dropped;
  // no eos between rows, no prefix or suffix.
  ASSERT_EQ(td.data.train.size(), 3u);
  EXPECT_EQ(td.data.train[0].ids, (std::vector<int32_t>{15496, 995}));
  EXPECT_EQ(td.data.train[1].ids, (std::vector<int32_t>{198, 15496}));
  EXPECT_EQ(td.data.train[2].ids, (std::vector<int32_t>{995, 198}));
  // The CSV field "Hello world" has no line break: 15496 995.
  ASSERT_EQ(td.data.validation.size(), 1u);
  EXPECT_EQ(td.data.validation[0].ids, (std::vector<int32_t>{15496, 995}));
  EXPECT_EQ(td.data.summary.train_examples, 3);
  EXPECT_EQ(td.data.summary.validation_examples, 1);
  // The default block size is min(1024, n_positions).
  EXPECT_EQ(loader_options(run_clm_config(d / "train.txt", 0), 4, 0).block_size, 4);
  EXPECT_EQ(loader_options(run_clm_config(d / "train.txt", 0), 2048, 0).block_size, 1024);
  EXPECT_FALSE(loader_options(run_clm_config(d / "train.txt", 0), 2048, 0).packing);
  EXPECT_TRUE(ThrowsError([&] { loader_options(run_clm_config(d / "train.txt", 256), 128, 0); },
                          {"block_size", "256", "n_positions 128"}));
}

TEST(RunClmData, ValidationFileMustHaveTheTrainingColumn) {
  TempDir d;
  const Tokenizer tok = Tokenizer::from_dir(test::data_dir() / "tokenizer");
  const TrainConfig c = run_clm_files(d, "train.csv", "id,text\n1,Hello world\n", "val.csv", "id,body\n1,Hello world\n", 2);
  EXPECT_TRUE(ThrowsError([&] { load_training_data(c, 128, tok); }, {"val.csv", "no column 'text'", "--validation_file"}));
  // A training file without `text` reads its first column, `body`, and so must the validation file.
  const TrainConfig c2 =
      run_clm_files(d, "train2.csv", "body,id\nHello world,1\n", "val2.csv", "id,text\n1,Hello world\n", 2);
  EXPECT_TRUE(ThrowsError([&] { load_training_data(c2, 128, tok); }, {"val2.csv", "no column 'body'"}));
}

TEST(RunClmData, TooFewTokensForABlockIsAnError) {
  TempDir d;
  const Tokenizer tok = Tokenizer::from_dir(test::data_dir() / "tokenizer");
  write_file(d / "train.txt", "Hello world");
  TrainConfig c = run_clm_config(d / "train.txt", 8);
  c.validation_fraction = 0;
  EXPECT_TRUE(ThrowsError([&] { load_training_data(c, 128, tok); },
                          {"train.txt", "2 tokens in 1 rows make no block of 8 tokens", "--block_size"}));
}

TEST(RunClmData, WithoutValidationFileTheRowsAreSplitBeforeGrouping) {
  TempDir d;
  const Tokenizer tok = Tokenizer::from_dir(test::data_dir() / "tokenizer");
  std::string text;
  for (int i = 0; i < 10; ++i) text += "Hello\n";  // each row: 15496 198
  write_file(d / "train.txt", text);
  TrainConfig c = run_clm_config(d / "train.txt", 2);
  c.validation_fraction = 0.2;  // ceil(0.2 * 10) = 2 rows
  const TrainingData td = load_training_data(c, 128, tok);
  EXPECT_EQ(td.data.train.size(), 8u);
  EXPECT_EQ(td.data.validation.size(), 2u);
  for (const auto& b : td.data.validation) EXPECT_EQ(b.ids, (std::vector<int32_t>{15496, 198}));
}

TEST(RunClmData, HeadlineModeTakesAValidationCsvWhole) {
  TempDir d;
  const Tokenizer tok = Tokenizer::from_dir(test::data_dir() / "tokenizer");
  write_file(d / "train.csv", "headline_text\nHello\nHello world\n");
  write_file(d / "val.csv", "headline_text\nworld\n");
  TrainConfig c;
  c.data_path = (d / "train.csv").string();
  c.validation_file = (d / "val.csv").string();
  c.prefix = "";
  c.suffix = "";
  const TrainingData td = load_training_data(c, 128, tok);
  EXPECT_EQ(td.data.train.size(), 2u);  // validation_fraction is not used
  ASSERT_EQ(td.data.validation.size(), 1u);
  EXPECT_EQ(td.data.validation[0].ids, (std::vector<int32_t>{6894, 50256}));  // "world" + <|endoftext|>
}

}  // namespace
}  // namespace lmforge
