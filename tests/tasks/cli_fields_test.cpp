// The extraction workflow end to end through the binary: `lmforge generate --fields` (one JSON
// object per generated sequence; the continuation is HF's, from tests/data/loglikelihood's generate
// fixtures), `lmforge eval fields` on hand-written predictions and references (every number below
// worked out by hand), bad input as one line and exit 1, and examples/extraction/make_dataset.mjs
// (byte-stable for a seed; its targets score 1.0 against its own reference columns).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "common/run.h"
#include "common/temp_dir_test.h"
#include "lmforge/tasks/dataset.h"

namespace lmforge::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// HF's greedy continuations of gpt2-tiny (tests/data/loglikelihood/cases.jsonl, kind generate).
std::vector<json> hf_generate_cases() {
  std::vector<json> out;
  for (const auto& c : read_jsonl(data_dir() / "loglikelihood" / "cases.jsonl"))
    if (c.at("kind") == "generate" && c.at("model") == "models/gpt2-tiny") out.push_back(c);
  return out;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

class CliFields : public TempDirTest {
 protected:
  CliFields() : TempDirTest("lmforge_cli_fields_") {}
  static RunResult generate(const std::string& args) {
    return run_cli("generate --model " + model_dir("gpt2-tiny").string() + " " + args);
  }
  // One line "error: ...NEEDLE...", exit 1, nothing on stdout.
  static void expect_error(const RunResult& r, const std::string& needle) {
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "wanted '" << needle << "' in: " << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
};

// ---- generate --fields -----------------------------------------------------------------------------

TEST_F(CliFields, GenerateFieldsIsOneObjectPerSequenceWithHfsContinuation) {
  const auto cases = hf_generate_cases();
  ASSERT_GE(cases.size(), 2u);
  std::string prompts;
  for (size_t i = 0; i < 2; ++i) {
    ASSERT_EQ(cases[i]["inputs"]["max_new_tokens"], 5);
    prompts += " --prompt '" + cases[i]["inputs"]["prompt"].get<std::string>() + "'";
  }
  const auto r = generate(prompts + " --max_new_tokens 5 --fields");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  for (size_t i = 0; i < 2; ++i) {
    const std::string prompt = cases[i]["inputs"]["prompt"], text = cases[i]["expected"]["text_skip_special"];
    // Neither holds a character JSON would escape, so the line can be written out as expected.
    ASSERT_EQ(prompt.find_first_of("\"\\"), std::string::npos);
    ASSERT_EQ(text.find_first_of("\"\\<"), std::string::npos);
    // The continuation alone (not the prompt), and no tags in it: no fields.
    EXPECT_EQ(lines[i], "{\"prompt_index\":" + std::to_string(i) + ",\"sequence_index\":0,\"prompt\":\"" + prompt +
                            "\",\"text\":\"" + text + "\",\"fields\":{}}");
  }
  EXPECT_NE(r.err.find("generated tokens"), std::string::npos) << r.err;
}

TEST_F(CliFields, GenerateFieldsKeepsTagsPrimedAfterThePromptsEnd) {
  const auto r = generate("--prompt '<language> en <back> A <front> B <END> <language> en <title>' --max_new_tokens 3 "
                          "--fields");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json line = json::parse(r.out);
  const std::string text = line["text"];
  ASSERT_EQ(text.find('<'), std::string::npos) << "the check needs a continuation without tags: " << text;
  // The answer is "<language> en <title>" + text: the title is the continuation, trimmed.
  const size_t b = text.find_first_not_of(" \t\n\r\f\v"), e = text.find_last_not_of(" \t\n\r\f\v");
  const std::string title = b == std::string::npos ? "" : text.substr(b, e - b + 1);
  EXPECT_EQ(line["fields"].dump(), json({{"language", "en"}, {"title", title}}).dump());
}

TEST_F(CliFields, GenerateFieldsNumbersEveryReturnSequence) {
  const auto r = generate("--prompt '<language> en <back> A <front> B <END>' --prompt 'hello' --do_sample --seed 3 "
                          "--num_return_sequences 3 --max_new_tokens 3 --fields");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 6u) << r.out;
  for (size_t j = 0; j < lines.size(); ++j) {
    const json line = json::parse(lines[j]);
    std::vector<std::string> keys;
    for (const auto& [k, v] : line.items()) keys.push_back(k);
    // nlohmann::json sorts keys; the printed order is checked on the raw line.
    EXPECT_EQ(lines[j].rfind("{\"prompt_index\":" + std::to_string(j / 3) + ",\"sequence_index\":" +
                                 std::to_string(j % 3) + ",\"prompt\":",
                             0),
              0u)
        << lines[j];
    EXPECT_EQ(keys, (std::vector<std::string>{"fields", "prompt", "prompt_index", "sequence_index", "text"}));
    EXPECT_EQ(line["prompt"], j < 3 ? "<language> en <back> A <front> B <END>" : "hello");
    EXPECT_TRUE(line["text"].is_string());
    EXPECT_TRUE(line["fields"].is_object());
  }
}

TEST_F(CliFields, GenerateFieldsBadFlags) {
  expect_error(generate("--prompt hi --fields --json"), "--fields and --json are two output formats");
  expect_error(generate("--prompt hi --fields --show_choices 2"), "--show_choices cannot be combined with --fields");
  expect_error(generate("--prompt hi --fields --benchmark_mode --benchmark_seq_length 2"),
               "--fields cannot be combined with --benchmark_mode");
  expect_error(run_cli("generate --model " + model_dir("gptj-tiny").string() + " --prompt_ids '1 2' --fields"),
               "--fields: the model folder '" + model_dir("gptj-tiny").string() + "' has no tokenizer");
}

// ---- eval fields -----------------------------------------------------------------------------------

const char* kReferences =
    "prompt,rewrite,title,agency,photographer,date\n"
    "<language> en <back> A <front> B <END>,\"1994 - A: Scotland, Glasgow.\",A,,,1994\n"
    "<language> en <back> C <front> D <END>,\"C: Wales, Cardiff.\",C,Kestrel Press Agency,Ann Bell,\n"
    "<language> en <back> E <front> F <END>,\"May 1961 - E: England, York.\",E,,Jo Orr,May 1961\n";

// Row 0: all five right. Row 1: photographer missing (Ann Bell), date "1961" where there is none.
// Row 2: no "fields", so its text is parsed: all right (the <END> ends the record before "junk").
const char* kPredictions =
    R"({"prompt_index":0,"sequence_index":0,"prompt":"<language> en <back> A <front> B <END>","text":"","fields":{"language":"en","rewrite":"1994 - A: Scotland, Glasgow.","title":"A","date":"1994"}})"
    "\n"
    R"({"prompt_index":1,"sequence_index":0,"prompt":"<language> en <back> C <front> D <END>","fields":{"language":"en","rewrite":"C: Wales, Cardiff.","title":"C","agency":"Kestrel Press Agency","date":"1961"}})"
    "\n"
    R"({"prompt_index":2,"text":" <language> en <rewrite> May 1961 - E: England, York. <title> E <photographer> Jo Orr <date> May 1961 <END> junk"})"
    "\n";

TEST_F(CliFields, EvalFieldsText) {
  const auto r = run_cli("eval fields --predictions " + write("p.jsonl", kPredictions) + " --references " +
                         write("val.csv", kReferences));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "exact match over 3 predictions of 3 reference rows\n"
            "field         all rows       rows with a reference value\n"
            "rewrite       1.0000  (3/3)  1.0000  (3/3)\n"
            "title         1.0000  (3/3)  1.0000  (3/3)\n"
            "agency        1.0000  (3/3)  1.0000  (1/1)\n"
            "photographer  0.6667  (2/3)  0.5000  (1/2)\n"
            "date          0.6667  (2/3)  1.0000  (2/2)\n"
            "all fields    0.6667  (2/3)\n");
}

TEST_F(CliFields, EvalFieldsJsonAndChosenFields) {
  const std::string args = "eval fields --predictions " + write("p.jsonl", kPredictions) + " --references " +
                           write("val.csv", kReferences) + " --json";
  auto r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["predictions"], 3);
  EXPECT_EQ(j["references"], 3);
  const std::vector<std::pair<std::string, int>> want = {
      {"rewrite", 3}, {"title", 3}, {"agency", 3}, {"photographer", 2}, {"date", 2}};
  ASSERT_EQ(j["fields"].size(), want.size());
  for (const auto& [f, correct] : want) {
    EXPECT_EQ(j["fields"][f]["correct"], correct) << f;
    EXPECT_EQ(j["fields"][f]["total"], 3) << f;
    EXPECT_DOUBLE_EQ(j["fields"][f]["accuracy"].get<double>(), correct / 3.0) << f;
  }
  // Rows with a reference value: agency only row 1 (right), photographer rows 1 (wrong) and 2.
  const std::vector<std::pair<std::string, std::pair<int, int>>> with_value = {
      {"rewrite", {3, 3}}, {"title", {3, 3}}, {"agency", {1, 1}}, {"photographer", {1, 2}}, {"date", {2, 2}}};
  for (const auto& [f, ct] : with_value) {
    EXPECT_EQ(j["fields"][f]["with_value"]["correct"], ct.first) << f;
    EXPECT_EQ(j["fields"][f]["with_value"]["total"], ct.second) << f;
    EXPECT_DOUBLE_EQ(j["fields"][f]["with_value"]["accuracy"].get<double>(), double(ct.first) / ct.second) << f;
  }
  EXPECT_EQ(j["all_fields"]["correct"], 2);
  EXPECT_EQ(j["all_fields"]["total"], 3);
  // The fields in the order asked for (the raw line keeps it).
  EXPECT_LT(r.out.find("\"rewrite\""), r.out.find("\"title\""));
  EXPECT_LT(r.out.find("\"photographer\""), r.out.find("\"date\""));

  // Title and agency only: every prediction has both right.
  r = run_cli(args + " --fields title,agency");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = json::parse(r.out);
  EXPECT_EQ(j["fields"].size(), 2u);
  EXPECT_EQ(j["all_fields"]["correct"], 3);
}

TEST_F(CliFields, EvalFieldsTwoSequencesPerRowAndTrainingTextReferences) {
  // References as full training texts (prompt + target), fields parsed from them; two predictions
  // for row 0 (one right, one with the wrong title), one for row 1 (right).
  const std::string refs = write("train.csv",
                                 "text\n"
                                 "<language> en <back> A <front> B <END> <language> en <rewrite> R <title> T <date> 1994\n"
                                 "<language> en <back> C <front> D <END> <language> en <rewrite> S <title> U\n");
  const std::string preds = write("p.jsonl",
                                  R"({"prompt_index":0,"text":"<language> en <rewrite> R <title> T <date> 1994"})"
                                  "\n"
                                  R"({"prompt_index":0,"text":"<language> en <rewrite> R <title> X <date> 1994"})"
                                  "\n"
                                  R"({"prompt_index":1,"text":"<language> en <rewrite> S <title> U"})"
                                  "\n");
  const auto r = run_cli("eval fields --predictions " + preds + " --references " + refs + " --text_column text");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "exact match over 3 predictions of 2 reference rows (1 to 2 per row)\n"
            "field         all rows       rows with a reference value\n"
            "rewrite       1.0000  (3/3)  1.0000  (3/3)\n"
            "title         0.6667  (2/3)  0.6667  (2/3)\n"
            "agency        1.0000  (3/3)  -\n"
            "photographer  1.0000  (3/3)  -\n"
            "date          1.0000  (3/3)  1.0000  (2/2)\n"
            "all fields    0.6667  (2/3)\n");
  // No reference has an agency: its with_value accuracy is null, not 0.
  const json j = json::parse(run_cli("eval fields --predictions " + preds + " --references " + refs +
                                     " --text_column text --json").out);
  EXPECT_EQ(j["fields"]["agency"]["with_value"], (json{{"correct", 0}, {"total", 0}, {"accuracy", nullptr}}));
}

TEST_F(CliFields, EvalFieldsBadInput) {
  const std::string refs = write("val.csv", kReferences);
  const std::string preds = write("p.jsonl", kPredictions);
  const auto eval = [](const std::string& p, const std::string& r) {
    return run_cli("eval fields --predictions " + p + " --references " + r);
  };
  expect_error(eval(path("missing.jsonl"), refs), "--predictions: cannot open " + path("missing.jsonl"));
  expect_error(eval(preds, path("missing.csv")), path("missing.csv") + ": no such dataset file");
  expect_error(eval(preds, write("noagency.csv", "prompt,rewrite,title,photographer,date\nP,R,T,,\n")),
               path("noagency.csv") + ": no column 'agency' (columns: prompt, rewrite, title, photographer, date)");
  expect_error(eval(write("bad.jsonl", "{\"prompt_index\":0,\"text\":\"\"}\n{\"prompt_index\":1,\"text\":\n"), refs),
               path("bad.jsonl") + ":2: not valid JSON");
  expect_error(eval(write("notobj.jsonl", "\n\n\"text\"\n"), refs), path("notobj.jsonl") + ":3: a prediction is a JSON object");
  expect_error(eval(write("few.jsonl", "{\"prompt_index\":0,\"text\":\"\"}\n{\"prompt_index\":2,\"text\":\"\"}\n"), refs),
               refs + ": 1 row has no prediction in " + path("few.jsonl") + ", the first row 1 (line 3)");
  expect_error(eval(write("past.jsonl", "{\"prompt_index\":3,\"text\":\"\"}\n"), refs),
               path("past.jsonl") + ":1: prompt_index 3 is past the last row of " + refs + " (3 rows)");
  expect_error(eval(write("order.jsonl", "{\"prompt_index\":0,\"prompt\":\"<language> en <back> C <front> D <END>\","
                                         "\"text\":\"\"}\n"),
                    refs),
               path("order.jsonl") + ":1: the prompt does not end with the prompt of " + refs + " row 0 (line 2)");
  expect_error(eval(write("empty.jsonl", ""), refs), path("empty.jsonl") + ": no predictions");
  // A missing required flag is a usage error (exit 2).
  const auto r = run_cli("eval fields --references " + refs);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--predictions"), std::string::npos) << r.err;
}

// ---- examples/extraction/make_dataset.mjs ----------------------------------------------------------

TEST_F(CliFields, MakeDatasetIsByteStableAndItsTargetsScorePerfect) {
  if (std::system("command -v node >/dev/null 2>&1") != 0) GTEST_SKIP() << "node is not installed";
  const std::string script = std::string(LMFORGE_SOURCE_DIR) + "/examples/extraction/make_dataset.mjs";
  const auto make = [&](const std::string& out, int seed) {
    const std::string cmd = "node " + script + " --out " + path(out) + " --seed " + std::to_string(seed) +
                            " --train 30 --validation 20 >/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  };
  make("a", 7);
  make("b", 7);
  make("c", 8);
  for (const char* f : {"train.csv", "validation.csv"}) {
    EXPECT_EQ(read(dir_ / "a" / f), read(dir_ / "b" / f)) << f;
    EXPECT_NE(read(dir_ / "a" / f), read(dir_ / "c" / f)) << f;
  }
  EXPECT_EQ(count_lines(read(dir_ / "a" / "train.csv")), 31);  // header + 30 one-line records
  EXPECT_EQ(read(dir_ / "a" / "train.csv").rfind("text\n", 0), 0u);

  // Predictions = the validation targets: every field right, whether the references are the field
  // columns or are parsed from the full training text (prompt dropped).
  const tasks::Dataset val = tasks::load_dataset(dir_ / "a" / "validation.csv");
  ASSERT_EQ(val.rows.size(), 20u);
  ASSERT_EQ(val.fields, (std::vector<std::string>{"text", "prompt", "target", "rewrite", "title", "agency",
                                                  "photographer", "date"}));
  std::string preds;
  for (const auto& row : val.rows) {
    EXPECT_EQ(*row.get("text"), *row.get("prompt") + " " + *row.get("target"));
    EXPECT_EQ(row.get("prompt")->rfind("<language> en <back> ", 0), 0u);
    EXPECT_TRUE(row.get("prompt")->ends_with(" <END>"));
    EXPECT_EQ(row.get("target")->rfind("<language> en <rewrite> ", 0), 0u);
    preds += json{{"prompt_index", row.id}, {"prompt", *row.get("prompt")}, {"text", *row.get("target")}}.dump() + "\n";
  }
  const std::string p = write("targets.jsonl", preds), refs = (dir_ / "a" / "validation.csv").string();
  for (const std::string& extra : {std::string(), std::string(" --text_column text")}) {
    const auto r = run_cli("eval fields --predictions " + p + " --references " + refs + extra + " --json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json j = json::parse(r.out);
    for (const auto& [f, v] : j["fields"].items()) EXPECT_EQ(v["correct"], 20) << f << extra;
    EXPECT_EQ(j["all_fields"]["correct"], 20) << extra;
  }
}

}  // namespace
}  // namespace lmforge::test
