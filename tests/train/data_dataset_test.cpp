// load_dataset: prefix + text + suffix + eos, truncation, and the seeded train/validation split.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "common/fixtures.h"
#include "io/io_test_util.h"
#include "lmforge/tokenizer/tokenizer.h"
#include "lmforge/train/data.h"

namespace lmforge {
namespace {

using test::TempDir;
using test::ThrowsError;
using test::write_file;

const Tokenizer& gpt2() {
  static const Tokenizer tok = Tokenizer::from_dir(test::data_dir() / "tokenizer");
  return tok;
}

// GPT-2 vocabulary facts: printable ASCII byte b is token b - 33 ('|' = 91, '.' = 13);
// <|endoftext|> is 50256.
constexpr int32_t kEos = 50256, kPipe = 91, kDot = 13;

std::vector<int32_t> cat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(Dataset, ExampleIsPrefixTextSuffixThenEosToken) {
  TempDir dir;
  write_file(dir / "d.csv", "publish_date,headline_text\n20030219,aba decides against community broadcasting licence  \n");
  DataOptions o;
  o.data_path = dir / "d.csv";
  o.validation_fraction = 0;
  const Dataset ds = load_dataset(o, gpt2());
  ASSERT_EQ(ds.train.size(), 1u);
  EXPECT_TRUE(ds.validation.empty());
  EXPECT_EQ(ds.eos_id, kEos);
  const auto& ids = ds.train[0].ids;
  // The trailing spaces are removed before the suffix; eos is a token, not encoded text.
  EXPECT_EQ(ids, cat(gpt2().encode("|HEADLINE| aba decides against community broadcasting licence."), {kEos}));
  EXPECT_EQ(ids.front(), kPipe);
  EXPECT_EQ(ids[ids.size() - 2], kDot);
  EXPECT_EQ(ids.back(), kEos);
  EXPECT_EQ(ds.train[0].line, 2);
  EXPECT_EQ(ds.summary.train_tokens, static_cast<int64_t>(ids.size()));
}

TEST(Dataset, PrefixSuffixAndEosConfigurable) {
  TempDir dir;
  write_file(dir / "d.csv", "headline_text\nhello world\n");
  DataOptions o;
  o.data_path = dir / "d.csv";
  o.validation_fraction = 0;
  o.prefix = "";
  o.suffix = "";
  EXPECT_EQ(load_dataset(o, gpt2()).train[0].ids, cat(gpt2().encode("hello world"), {kEos}));
  o.prefix = "News: ";
  o.suffix = " END";
  o.append_eos = false;
  EXPECT_EQ(load_dataset(o, gpt2()).train[0].ids, gpt2().encode("News: hello world END"));
}

TEST(Dataset, LongRowsAreTruncatedAndCounted) {
  TempDir dir;
  write_file(dir / "d.csv", "headline_text\none two three four five six seven eight\nhi\n");
  DataOptions o;
  o.data_path = dir / "d.csv";
  o.validation_fraction = 0;
  o.max_tokens = 7;  // "|HEADLINE| hi." + eos is exactly 7 tokens: kept whole
  const Dataset ds = load_dataset(o, gpt2());
  ASSERT_EQ(ds.train.size(), 2u);
  const auto full = cat(gpt2().encode("|HEADLINE| one two three four five six seven eight."), {kEos});
  ASSERT_GT(full.size(), 7u);
  EXPECT_EQ(ds.train[0].ids, std::vector<int32_t>(full.begin(), full.begin() + 7));  // first 7 tokens kept
  EXPECT_EQ(ds.train[1].ids, cat(gpt2().encode("|HEADLINE| hi."), {kEos}));          // short one untouched
  EXPECT_EQ(ds.summary.truncated, 1);
  EXPECT_EQ(ds.summary.max_example_tokens, 7);
}

std::string numbered_csv(int n) {
  std::string t = "publish_date,headline_text\n";
  for (int i = 0; i < n; ++i) t += std::to_string(20030219 + i) + ",headline " + std::to_string(i) + "\n";
  return t;
}

TEST(Dataset, DefaultsGive4000Train1000Validation) {
  TempDir dir;
  write_file(dir / "big.csv", numbered_csv(6000));
  DataOptions o;  // max_rows 5000, validation_fraction 0.2, seed 42
  o.data_path = dir / "big.csv";
  const Dataset a = load_dataset(o, gpt2());
  EXPECT_EQ(a.summary.records_read, 5000);  // `first` stops after 5000 usable rows
  EXPECT_EQ(a.summary.selected, 5000);
  EXPECT_EQ(a.train.size(), 4000u);
  EXPECT_EQ(a.validation.size(), 1000u);
  EXPECT_EQ(a.summary.train_examples, 4000);
  EXPECT_EQ(a.summary.validation_examples, 1000);

  // Disjoint, together exactly lines 2..5001, each side in file order.
  std::set<int64_t> lines;
  for (const auto& e : a.train) lines.insert(e.line);
  for (const auto& e : a.validation) lines.insert(e.line);
  EXPECT_EQ(lines.size(), 5000u);
  EXPECT_EQ(*lines.begin(), 2);
  EXPECT_EQ(*lines.rbegin(), 5001);
  auto by_line = [](const Example& x, const Example& y) { return x.line < y.line; };
  EXPECT_TRUE(std::is_sorted(a.train.begin(), a.train.end(), by_line));
  EXPECT_TRUE(std::is_sorted(a.validation.begin(), a.validation.end(), by_line));
  // The row content matches its line: line L holds "headline L-2".
  const auto& v0 = a.validation[0];
  EXPECT_EQ(v0.ids, cat(gpt2().encode("|HEADLINE| headline " + std::to_string(v0.line - 2) + "."), {kEos}));

  // Same seed: same split. Another seed: another split of the same sizes.
  const Dataset b = load_dataset(o, gpt2());
  ASSERT_EQ(b.validation.size(), a.validation.size());
  for (size_t i = 0; i < a.validation.size(); ++i) EXPECT_EQ(a.validation[i].line, b.validation[i].line);
  o.seed = 43;
  const Dataset c = load_dataset(o, gpt2());
  EXPECT_EQ(c.validation.size(), 1000u);
  size_t same = 0;
  for (size_t i = 0; i < 1000; ++i) same += a.validation[i].line == c.validation[i].line;
  EXPECT_LT(same, 1000u);
}

TEST(Split, SizesFollowCeilOfFraction) {
  auto sizes = [](int64_t n, double f) {
    auto [tr, va] = split_indices(n, f, 42);
    return std::make_pair(tr.size(), va.size());
  };
  EXPECT_EQ(sizes(5000, 0.2), std::make_pair(size_t{4000}, size_t{1000}));
  EXPECT_EQ(sizes(10, 0.25), std::make_pair(size_t{7}, size_t{3}));  // ceil(2.5) = 3, as HF
  EXPECT_EQ(sizes(30, 0.1), std::make_pair(size_t{27}, size_t{3}));  // 0.1*30 is 3.0000000000000004 in double
  EXPECT_EQ(sizes(7, 0.0), std::make_pair(size_t{7}, size_t{0}));
  EXPECT_EQ(sizes(3, 0.01), std::make_pair(size_t{2}, size_t{1}));
  auto [tr, va] = split_indices(50, 0.2, 1);
  std::vector<int64_t> all = tr;
  all.insert(all.end(), va.begin(), va.end());
  std::sort(all.begin(), all.end());
  for (int64_t i = 0; i < 50; ++i) EXPECT_EQ(all[static_cast<size_t>(i)], i);
  EXPECT_THROW(split_indices(10, 1.0, 1), Error);
  EXPECT_THROW(split_indices(10, -0.1, 1), Error);
}

TEST(Dataset, Errors) {
  TempDir dir;
  write_file(dir / "one.csv", "headline_text\nonly row\n");
  DataOptions o;
  o.data_path = dir / "one.csv";
  o.validation_fraction = 0.5;  // ceil(0.5) = 1 validation row, 0 left to train on
  EXPECT_TRUE(ThrowsError([&] { load_dataset(o, gpt2()); }, {"one.csv", "no training rows"}));
  o.validation_fraction = 1.5;
  EXPECT_TRUE(ThrowsError([&] { load_dataset(o, gpt2()); }, {"validation_fraction"}));
  o.validation_fraction = 0.2;
  o.text_column = "title";
  EXPECT_TRUE(ThrowsError([&] { load_dataset(o, gpt2()); }, {"one.csv", "no column 'title'", "'headline_text'"}));
  o.text_column = "headline_text";
  o.prefix = "\xFF";
  EXPECT_TRUE(ThrowsError([&] { load_dataset(o, gpt2()); }, {"prefix"}));
}

// ---- response_template (completion-only loss) --------------------------------------------------

// The masked count n must be the largest n whose tokens decode to a prefix of the prompt part (the
// text up to and including the template): checked by decoding, not by re-running the rule.
void expect_masks_exactly_the_prompt(const Example& ex, const std::string& text, const std::string& templ) {
  const std::string prompt = text.substr(0, text.find(templ) + templ.size());
  const auto decoded = [&](size_t n) { return gpt2().decode(std::vector<int32_t>(ex.ids.begin(), ex.ids.begin() + n)); };
  ASSERT_GT(ex.n_masked, 0);
  ASSERT_LT(static_cast<size_t>(ex.n_masked), ex.ids.size());
  const std::string in = decoded(static_cast<size_t>(ex.n_masked));
  EXPECT_EQ(prompt.compare(0, in.size(), in), 0) << "masked tokens '" << in << "' are not inside '" << prompt << "'";
  const std::string past = decoded(static_cast<size_t>(ex.n_masked) + 1);
  EXPECT_GT(past.size(), prompt.size()) << "token " << ex.n_masked << " still lies inside the prompt: '" << past << "'";
}

TEST(Dataset, ResponseTemplateMasksThePromptTokens) {
  TempDir dir;
  write_file(dir / "d.csv",
             "text\n"
             "<language> en <back> PHOTO BY JOHN SMITH <b> 1994 <END> <language> en <rewrite> 1994 - x <title> JOHN SMITH\n"
             "Question: what is 2+2? ### Answer: 4\n"
             "no template here\n"
             "ends with the template <END>\n");
  DataOptions o;
  o.data_path = dir / "d.csv";
  o.text_column = "text";
  o.prefix = "<|endoftext|> ";
  o.suffix = "";
  o.validation_fraction = 0;
  o.response_template = " <END>";
  Dataset ds = load_dataset(o, gpt2());
  ASSERT_EQ(ds.train.size(), 4u);
  const std::string row0 = "<|endoftext|> <language> en <back> PHOTO BY JOHN SMITH <b> 1994 <END> <language> en <rewrite> 1994 - x <title> JOHN SMITH";
  expect_masks_exactly_the_prompt(ds.train[0], row0, " <END>");
  EXPECT_EQ(ds.train[0].ids, cat(gpt2().encode(row0), {kEos}));  // the row is still tokenized whole
  // Rows without the template: no loss at all (TRL's collator ignores them), counted.
  EXPECT_EQ(static_cast<size_t>(ds.train[1].n_masked), ds.train[1].ids.size());
  EXPECT_EQ(static_cast<size_t>(ds.train[2].n_masked), ds.train[2].ids.size());
  EXPECT_EQ(ds.summary.no_response_template, 2);
  EXPECT_NE(ds.summary.to_string().find("2 rows without the response template"), std::string::npos);
  // A template at the very end: everything but the eos is masked.
  EXPECT_EQ(static_cast<size_t>(ds.train[3].n_masked), ds.train[3].ids.size() - 1);

  // A template that ends inside a BPE token: the straddling token keeps its loss.
  o.response_template = "### Ans";
  ds = load_dataset(o, gpt2());
  expect_masks_exactly_the_prompt(ds.train[1], "<|endoftext|> Question: what is 2+2? ### Answer: 4", "### Ans");
  o.response_template = "### Answer:";
  ds = load_dataset(o, gpt2());
  expect_masks_exactly_the_prompt(ds.train[1], "<|endoftext|> Question: what is 2+2? ### Answer: 4", "### Answer:");
  EXPECT_EQ(gpt2().decode({ds.train[1].ids.begin() + ds.train[1].n_masked, ds.train[1].ids.end() - 1}), " 4");

  // Without a template nothing is masked.
  o.response_template = "";
  for (const auto& ex : load_dataset(o, gpt2()).train) EXPECT_EQ(ex.n_masked, 0);
}

TEST(Dataset, ResponseTemplateInNoRowIsAnError) {
  TempDir dir;
  write_file(dir / "d.csv", "text\nfirst row\nsecond row\n");
  DataOptions o;
  o.data_path = dir / "d.csv";
  o.text_column = "text";
  o.validation_fraction = 0;
  o.response_template = "### Answer:";
  EXPECT_TRUE(ThrowsError([&] { load_dataset(o, gpt2()); }, {"d.csv", "response_template '### Answer:'", "none of the 2 rows"}));
  o.response_template = std::string(1, static_cast<char>(0xFF));
  EXPECT_TRUE(ThrowsError([&] { load_dataset(o, gpt2()); }, {"response_template", "UTF-8"}));
}

}  // namespace
}  // namespace lmforge
