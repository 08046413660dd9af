// Task datasets: GLUE MNLI TSV, the HF datasets JSONL export, CSV, labels, field mapping and every
// error (rules in include/lmforge/tasks/dataset.h). The files are written by hand in the real formats.
#include "lmforge/tasks/dataset.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>

#include "lmforge/error.h"
#include "tasks/tasks_test_util.h"

namespace lmforge::tasks {
namespace {

namespace fs = std::filesystem;

// A fresh folder per test, removed at the end.
class DatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("lmforge_dataset_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }
  fs::path dir_;
};


std::string field(const Row& r, const std::string& name) {
  const std::string* v = r.get(name);
  return v == nullptr ? "<none>" : *v;
}

// GLUE's MNLI dev_matched.tsv layout: 16 tab-separated columns, no quoting (the second row's
// sentence1 holds an unbalanced literal quote, as real MNLI rows do).
const std::string kGlueHeader =
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
    "sentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n";
const std::string kGlueDev =
    kGlueHeader +
    "0\t63735\t63735n\tslate\t( ( The ( new rights ) ) ( are ( nice enough ) ) )\t( Everyone ( really ( likes ( the "
    "( newest benefits ) ) ) ) )\t(ROOT (S (NP (DT The) (JJ new) (NNS rights)) (VP (VBP are) (ADJP (JJ nice) (RB "
    "enough)))))\t(ROOT (S (NP (NN Everyone)) (VP (ADVP (RB really)) (VBZ likes) (NP (DT the) (JJS newest) (NNS "
    "benefits)))))\tThe new rights are nice enough\tEveryone really likes the newest benefits \tneutral\tentailment\t"
    "neutral\tneutral\tneutral\tneutral\n"
    "1\t91383\t91383c\tgovernment\t( a )\t( b )\t(ROOT a)\t(ROOT b)\tHe said \"we'll see, then left\tHe stayed "
    "silent.\tcontradiction\tcontradiction\tcontradiction\tcontradiction\tcontradiction\tcontradiction\n"
    "2\t755\t755e\ttelephone\t( c )\t( d )\t(ROOT c)\t(ROOT d)\tyeah i know\tI am aware.\tentailment\tentailment\t"
    "entailment\tneutral\tentailment\tentailment\n";

TEST_F(DatasetTest, GlueMnliTsvLoadsWithoutConversion) {
  const Dataset d = load_dataset(write("dev_matched.tsv", kGlueDev));
  ASSERT_EQ(d.rows.size(), 3u);
  EXPECT_EQ(d.label_names, (std::vector<std::string>{"entailment", "neutral", "contradiction"}));
  EXPECT_EQ(field(d.rows[0], "premise"), "The new rights are nice enough");
  EXPECT_EQ(field(d.rows[0], "hypothesis"), "Everyone really likes the newest benefits ");  // kept as written
  EXPECT_EQ(field(d.rows[0], "label"), "neutral");
  EXPECT_EQ(d.rows[0].label, 1);
  EXPECT_EQ(field(d.rows[1], "premise"), "He said \"we'll see, then left");  // the quote is a character
  EXPECT_EQ(d.rows[1].label, 2);
  EXPECT_EQ(d.rows[2].label, 0);
  EXPECT_EQ(field(d.rows[2], "genre"), "telephone");  // every column stays addressable
  EXPECT_EQ(field(d.rows[2], "sentence1"), "yeah i know");
  EXPECT_EQ(d.rows[2].line, 4);
  EXPECT_EQ(d.rows[2].id, 2);
  EXPECT_EQ(d.unlabeled, 0);
}

TEST_F(DatasetTest, GlueTsvWithCrlfAndBom) {
  std::string text = "\xEF\xBB\xBF" + kGlueDev;
  for (size_t p = 0; (p = text.find('\n', p)) != std::string::npos; p += 2) text.replace(p, 1, "\r\n");
  const Dataset d = load_dataset(write("dev_mismatched.tsv", text));
  ASSERT_EQ(d.rows.size(), 3u);
  EXPECT_EQ(d.fields.front(), "index");
  EXPECT_EQ(field(d.rows[2], "label"), "entailment");
}

TEST_F(DatasetTest, GlueTestSplitWithoutGoldLabelIsUnlabeled) {
  const std::string text =
      "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
      "sentence2_parse\tsentence1\tsentence2\n"
      "0\t31493\t31493\ttravel\t( a )\t( b )\t(ROOT a)\t(ROOT b)\tHierbas, ans seco.\tThe liqueur is green.\n";
  const Dataset d = load_dataset(write("test_matched.tsv", text));
  ASSERT_EQ(d.rows.size(), 1u);
  EXPECT_FALSE(d.has_label_field);
  EXPECT_EQ(d.rows[0].label, kNoLabel);
  EXPECT_EQ(d.unlabeled, 1);
  EXPECT_EQ(field(d.rows[0], "hypothesis"), "The liqueur is green.");
}

// SNLI-style "-" (no annotator consensus) is "no gold label".
TEST_F(DatasetTest, DashGoldLabelIsUnlabeled) {
  const std::string text = "sentence1\tsentence2\tgold_label\nA man.\tA woman.\t-\nA dog.\tAn animal.\tentailment\n";
  const Dataset d = load_dataset(write("snli.tsv", text));
  EXPECT_EQ(d.rows[0].label, kNoLabel);
  EXPECT_EQ(field(d.rows[0], "label"), "");
  EXPECT_EQ(d.unlabeled, 1);
  DatasetOptions o;
  o.drop_unlabeled = true;
  const Dataset kept = load_dataset(write("snli2.tsv", text), o);
  ASSERT_EQ(kept.rows.size(), 1u);
  EXPECT_EQ(kept.rows[0].id, 1);  // ids stay the file's positions
  EXPECT_EQ(kept.unlabeled, 1);
}

// `datasets.load_dataset("glue", "mnli")["validation_matched"].to_json(...)`: integer labels in
// GLUE order, -1 on the test splits.
TEST_F(DatasetTest, HfJsonlExport) {
  const std::string text =
      "{\"premise\":\"The new rights are nice enough\",\"hypothesis\":\"Everyone really likes the newest "
      "benefits \",\"label\":1,\"idx\":0}\n"
      "{\"premise\":\"This site includes a list of all award winners.\",\"hypothesis\":\"The Government Executive "
      "articles housed on the website are not able to be searched.\",\"label\":2,\"idx\":1}\n"
      "\n"
      "{\"premise\":\"caf\\u00e9 \\\"quoted\\\"\",\"hypothesis\":\"h\",\"label\":0,\"idx\":2}\n"
      "{\"premise\":\"p\",\"hypothesis\":\"h\",\"label\":-1,\"idx\":3}\n";
  const Dataset d = load_dataset(write("validation_matched.jsonl", text));
  ASSERT_EQ(d.rows.size(), 4u);
  EXPECT_EQ(d.fields, (std::vector<std::string>{"premise", "hypothesis", "label", "idx"}));
  EXPECT_EQ(field(d.rows[0], "label"), "neutral");
  EXPECT_EQ(d.rows[1].label, 2);
  EXPECT_EQ(field(d.rows[1], "label"), "contradiction");
  EXPECT_EQ(field(d.rows[2], "premise"), "caf\xC3\xA9 \"quoted\"");
  EXPECT_EQ(field(d.rows[2], "idx"), "2");
  EXPECT_EQ(d.rows[2].line, 4);  // the blank line counts
  EXPECT_EQ(d.rows[3].label, kNoLabel);
  EXPECT_EQ(d.unlabeled, 1);
}

TEST_F(DatasetTest, JsonArrayFile) {
  const Dataset d = load_dataset(write("x.json", "[{\"premise\": \"p\", \"hypothesis\": \"h\", \"label\": 2}]"));
  ASSERT_EQ(d.rows.size(), 1u);
  EXPECT_EQ(field(d.rows[0], "label"), "contradiction");
}

TEST_F(DatasetTest, CsvQuotedFieldsStringLabelsInFirstAppearanceOrder) {
  const std::string text =
      "question,answer,label\n"
      "\"Is it, really?\",\"yes\",positive\n"
      "\"two\nlines\",\"say \"\"no\"\"\",negative\n"
      "plain,  spaced  ,positive\n";
  const Dataset d = load_dataset(write("qa.csv", text));
  ASSERT_EQ(d.rows.size(), 3u);
  EXPECT_EQ(d.label_names, (std::vector<std::string>{"positive", "negative"}));
  EXPECT_EQ(field(d.rows[0], "question"), "Is it, really?");
  EXPECT_EQ(field(d.rows[1], "question"), "two\nlines");
  EXPECT_EQ(field(d.rows[1], "answer"), "say \"no\"");
  EXPECT_EQ(field(d.rows[2], "answer"), "  spaced  ");
  EXPECT_EQ(d.rows[1].label, 1);
  EXPECT_EQ(d.rows[1].line, 3);
  EXPECT_EQ(d.rows[2].line, 5);
}

TEST_F(DatasetTest, IntegerLabelsWithGivenNames) {
  DatasetOptions o;
  o.label_names = parse_label_names(" negative , positive");
  const Dataset d = load_dataset(write("s.csv", "sentence,label\ngood,1\nbad,0\n"), o);
  EXPECT_EQ(field(d.rows[0], "label"), "positive");
  EXPECT_EQ(d.rows[1].label, 0);
}

TEST_F(DatasetTest, FieldMapAndFormatOverride) {
  DatasetOptions o;
  o.format = parse_data_format("tsv");
  o.field_map = parse_field_map("premise=s1, hypothesis = s2,label=gold");
  const Dataset d = load_dataset(write("pairs.txt", "s1\ts2\tgold\nA.\tB.\t2\n"), o);
  EXPECT_EQ(field(d.rows[0], "premise"), "A.");
  EXPECT_EQ(field(d.rows[0], "hypothesis"), "B.");
  EXPECT_EQ(field(d.rows[0], "label"), "contradiction");  // MNLI-shaped: GLUE names by default
  EXPECT_EQ(field(d.rows[0], "s1"), "A.");
  EXPECT_EQ(d.fields, (std::vector<std::string>{"s1", "s2", "gold", "premise", "hypothesis", "label"}));
}

TEST_F(DatasetTest, KeepFieldsDropsTheRestFromRows) {
  DatasetOptions o;
  o.keep_fields = {"premise", "hypothesis", "genre"};
  const Dataset d = load_dataset(write("dev_matched.tsv", kGlueDev), o);
  EXPECT_EQ(d.rows[0].field_names(), "genre, premise, hypothesis, label");
  EXPECT_EQ(d.rows[1].label, 2);
  EXPECT_EQ(field(d.rows[1], "premise"), "He said \"we'll see, then left");  // from sentence1, not kept itself
  EXPECT_EQ(field(d.rows[1], "genre"), "government");
  EXPECT_EQ(d.fields.size(), 19u);  // the 16 columns and the 3 mapped fields, for messages
}

TEST_F(DatasetTest, KeepFieldsInCsvAndJsonl) {
  DatasetOptions o;
  o.keep_fields = {"q"};
  const Dataset c = load_dataset(write("k.csv", "q,junk,label\nx,y,a\n"), o);
  EXPECT_EQ(c.rows[0].field_names(), "q, label");
  const Dataset j = load_dataset(write("k.jsonl", "{\"junk\": 1, \"q\": \"x\"}\n"), o);
  EXPECT_EQ(j.rows[0].field_names(), "q");
  EXPECT_EQ(j.fields, (std::vector<std::string>{"junk", "q"}));
}

TEST_F(DatasetTest, CustomLabelField) {
  DatasetOptions o;
  o.label_field = "answer";
  const Dataset d = load_dataset(write("a.jsonl", "{\"q\": \"x\", \"answer\": \"yes\"}\n"), o);
  EXPECT_EQ(d.rows[0].label, 0);
  EXPECT_EQ(d.label_names, (std::vector<std::string>{"yes"}));
}

// ---- errors: one line, naming the file, the line and the field --------------------------------

TEST_F(DatasetTest, Errors) {
  const std::string tsv = (dir_ / "a.tsv").string();
  EXPECT_EQ(error_of([&] { load_dataset(dir_ / "none.tsv"); }), (dir_ / "none.tsv").string() + ": no such dataset file");
  EXPECT_EQ(error_of([&] { load_dataset(write("a.txt", "x\n1\n")); }),
            (dir_ / "a.txt").string() +
                ": cannot tell the dataset format from the extension '.txt' (expected .csv, .tsv, .jsonl or .json; "
                "or give the format: csv, tsv, jsonl)");
  EXPECT_EQ(error_of([&] { load_dataset(write("a.tsv", "premise\thypothesis\tlabel\n")); }),
            tsv + ": the dataset has no rows");
  EXPECT_EQ(error_of([&] { load_dataset(write("a.tsv", "premise\thypothesis\tlabel\np\th\n")); }),
            tsv + ":2: 2 fields, but the header has 3");
  EXPECT_EQ(error_of([&] { load_dataset(write("a.tsv", "premise\thypothesis\tlabel\np\th\tmaybe\n")); }),
            tsv + ":2: label 'maybe' is not one of the label names (entailment, neutral, contradiction)");
  EXPECT_EQ(error_of([&] { load_dataset(write("a.tsv", "premise\thypothesis\tlabel\np\th\t0\np\th\t3\n")); }),
            tsv + ":3: label index 3 is out of range for the 3 label names (entailment, neutral, contradiction)");
  EXPECT_EQ(error_of([&] { load_dataset(write("a.tsv", "text\tlabel\nt\t1\n")); }),
            tsv + ":2: label '1' is an index, but no label names were given (e.g. label_names "
                  "entailment,neutral,contradiction)");
  EXPECT_EQ(error_of([&] { load_dataset(write("a.tsv", "text\ttext\nt\tu\n")); }),
            tsv + ":1: header names column 'text' twice");
  DatasetOptions o;
  o.field_map = {{"premise", "sentence9"}};
  EXPECT_EQ(error_of([&] { load_dataset(write("a.tsv", "sentence1\tlabel\np\t0\n"), o); }),
            tsv + ": field mapping premise=sentence9 names no column of the file (columns: sentence1, label)");
}

TEST_F(DatasetTest, JsonlErrors) {
  const std::string f = (dir_ / "b.jsonl").string();
  EXPECT_EQ(error_of([&] { load_dataset(write("b.jsonl", "{\"premise\": \"p\"}\n[1, 2]\n")); }),
            f + ":2: expected a JSON object ({\"field\": value, ...}), got array");
  EXPECT_EQ(error_of([&] { load_dataset(write("b.jsonl", "{\"premise\": \"p\", \"label\": 0}\n{\"premise\": \"q\"}\n")); }),
            f + ":2: no key 'label' (the first row has it)");
  EXPECT_EQ(error_of([&] { load_dataset(write("b.jsonl", "{\"premise\": \"p\"}\n{\"premise\": \"q\", \"extra\": 1}\n")); }),
            f + ":2: key 'extra' is not in the first row (premise)");
  const std::string bad = error_of([&] { load_dataset(write("b.jsonl", "{\"premise\": \"p\"}\n{\"premise\": \n")); });
  EXPECT_EQ(bad.rfind(f + ":2: not valid JSON: ", 0), 0u) << bad;
  EXPECT_EQ(bad.find('\n'), std::string::npos);
}

TEST_F(DatasetTest, CsvErrors) {
  const std::string f = (dir_ / "c.csv").string();
  EXPECT_EQ(error_of([&] { load_dataset(write("c.csv", "a,b\n1,2\n3\n")); }), f + ":3: 1 fields, but the header has 2");
  EXPECT_EQ(error_of([&] { load_dataset(write("c.csv", "a,b\n1,\"2\n3,4\n")); }),
            f + ":4: a quoted field is never closed (a '\"' is missing)");
}

TEST(DatasetParse, OptionErrors) {
  EXPECT_EQ(error_of([] { parse_data_format("xml", "--data_format"); }),
            "--data_format: unknown dataset format 'xml' (expected auto, csv, tsv or jsonl)");
  EXPECT_EQ(error_of([] { parse_field_map("premise", "--field_map"); }),
            "--field_map: 'premise' is not FIELD=COLUMN (e.g. premise=sentence1)");
  EXPECT_EQ(error_of([] { parse_label_names("a,,b", "--label_names"); }), "--label_names: empty label name in 'a,,b'");
  EXPECT_EQ(error_of([] { parse_label_names("a,b,a", "--label_names"); }), "--label_names: label name 'a' given twice");
  EXPECT_EQ(mnli_label_names(), (std::vector<std::string>{"entailment", "neutral", "contradiction"}));
}

}  // namespace
}  // namespace lmforge::tasks
