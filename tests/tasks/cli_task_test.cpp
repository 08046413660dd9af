// `lmforge task` end to end: the multiple-choice and generate fixtures of
// tests/data/loglikelihood/cases.jsonl (HF transformers, computed the lm-eval way) through the
// binary as datasets + templates; the report's numbers against counts worked out from the fixtures;
// the training-text export; and bad input as one line, exit 1, nothing written.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "common/run.h"
#include "common/temp_dir_test.h"
#include "tasks/tasks_test_util.h"

namespace lmforge::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using tasks::kExamples;

const std::vector<std::string> kMnli = {"entailment", "neutral", "contradiction"};

std::vector<json> fixture_cases(const std::string& kind, const std::string& task = "") {
  std::vector<json> out;
  for (const auto& c : read_jsonl(data_dir() / "loglikelihood" / "cases.jsonl"))
    if (c.at("kind") == kind && (task.empty() || c.at("inputs").at("task") == task)) out.push_back(c);
  return out;
}

class CliTask : public TempDirTest {
 protected:
  CliTask() : TempDirTest("lmforge_cli_task_") {}
  std::string write_jsonl(const std::string& name, const std::vector<json>& rows) {
    std::string text;
    for (const auto& r : rows) text += r.dump() + "\n";
    return write(name, text);
  }
  static std::vector<json> read_lines(const std::string& file) { return read_jsonl(file); }

  RunResult task(const std::string& args) { return run_cli("task --model " + model_dir("gpt2-tiny").string() + " " + args); }
  json task_json(const std::string& args) {
    const auto r = task(args + " --json");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? json::parse(r.out) : json();
  }
  // One line on stderr naming `needle`, exit 1, nothing on stdout, no predictions file.
  void expect_error(const std::string& args, const std::string& needle) {
    const std::string out = path("never.jsonl");
    const auto r = task(args + " --output " + out);
    EXPECT_EQ(r.exit_code, 1) << args;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "wanted '" << needle << "' in: " << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
    EXPECT_FALSE(fs::exists(out));
  }
};

// lm-eval's GLUE mnli through the built-in template: every choice's log-likelihood, is_greedy and
// both predictions as HF computed them, at micro-batch 12 and 1.
TEST_F(CliTask, LoglikelihoodModeMatchesTheMnliFixtures) {
  const auto cases = fixture_cases("multiple_choice", "mnli");
  ASSERT_EQ(cases.size(), 8u);
  std::vector<json> rows;
  int correct = 0, correct_norm = 0;
  for (const auto& c : cases) {
    const json& in = c.at("inputs");
    rows.push_back({{"premise", in.at("premise")}, {"hypothesis", in.at("hypothesis")}, {"label", in.at("label")}});
    correct += c.at("expected").at("pred_acc") == in.at("label");
    correct_norm += c.at("expected").at("pred_acc_norm") == in.at("label");
  }
  const std::string data = write_jsonl("mnli.jsonl", rows);
  // The built-in template at micro-batch 12 and 1, and the same template given as flags.
  const std::string file = "--template " + kExamples + "mnli_lm_eval.yaml";
  const std::string flags =
      "--prompt_template '{premise}\\nQuestion: {hypothesis|strip|period} True, False or Neither?\\nAnswer:' "
      "--choices True,Neither,False --target_delimiter ' '";
  for (const auto& [mb, tmpl] : std::vector<std::pair<std::string, std::string>>{{"12", file}, {"1", file}, {"5", flags}}) {
    const std::string out = path("pred" + mb + ".jsonl");
    const json summary = task_json("--data " + data + " " + tmpl + " --mode loglikelihood --micro_batch_size " + mb + " --output " + out);
    EXPECT_EQ(summary.at("correct"), correct);
    EXPECT_EQ(summary.at("correct_norm"), correct_norm);
    EXPECT_DOUBLE_EQ(summary.at("accuracy").get<double>(), correct / 8.0);
    const auto pred = read_lines(out);
    ASSERT_EQ(pred.size(), cases.size());
    for (size_t i = 0; i < cases.size(); ++i) {
      const json& in = cases[i].at("inputs");
      const json& e = cases[i].at("expected");
      const std::string id = cases[i].at("id");
      EXPECT_EQ(pred[i].at("prompt"), in.at("context")) << id;  // the template renders lm-eval's doc_to_text
      for (size_t k = 0; k < 3; ++k) {
        const double want = e.at("per_choice")[k].at("ll");
        EXPECT_NEAR(pred[i].at("ll")[k].get<double>(), want, 1e-4 * std::max(1.0, std::abs(want))) << id << " choice " << k;
        EXPECT_EQ(pred[i].at("is_greedy")[k], e.at("per_choice")[k].at("is_greedy")) << id;
      }
      EXPECT_EQ(pred[i].at("prediction"), kMnli[e.at("pred_acc").get<int>()]) << id;
      EXPECT_EQ(pred[i].at("prediction_norm"), kMnli[e.at("pred_acc_norm").get<int>()]) << id;
      EXPECT_EQ(pred[i].at("label"), kMnli[in.at("label").get<int>()]) << id;
    }
  }
}

// Free-form multiple choice (choice words of very different lengths, where acc and acc_norm
// disagree): a CSV with one field per choice and a template whose choices are those fields.
TEST_F(CliTask, LoglikelihoodModeMatchesTheCustomFixtures) {
  std::string csv = "context,c0,c1,c2,c3,label\n";
  std::vector<json> cases;
  auto quote = [](const std::string& s) {
    std::string q(1, '"');
    for (char ch : s) {
      q.push_back(ch);
      if (ch == '"') q.push_back('"');
    }
    q.push_back('"');
    return q;
  };
  for (const auto& c : fixture_cases("multiple_choice", "custom")) {
    const json& in = c.at("inputs");
    if (in.at("choice_words").size() != 4) continue;
    cases.push_back(c);
    csv += quote(in.at("context"));
    for (const auto& w : in.at("choice_words")) {
      csv.push_back(',');
      csv += quote(w);
    }
    csv.push_back(',');
    csv += std::to_string(in.at("label").get<int>());
    csv.push_back('\n');
  }
  ASSERT_EQ(cases.size(), 3u);
  const std::string data = write("custom.csv", csv);
  const std::string tmpl = write("custom.yaml", "text: \"{context}\"\nchoices: [\"{c0}\", \"{c1}\", \"{c2}\", \"{c3}\"]\n");
  const std::string out = path("custom_pred.jsonl");
  const auto r = task("--data " + data + " --template " + tmpl + " --label_names a,b,c,d --mode loglikelihood --output " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto pred = read_lines(out);
  const std::vector<std::string> names = {"a", "b", "c", "d"};
  ASSERT_EQ(pred.size(), 3u);
  for (size_t i = 0; i < cases.size(); ++i) {
    const json& e = cases[i].at("expected");
    for (size_t k = 0; k < 4; ++k) {
      const double want = e.at("per_choice")[k].at("ll");
      EXPECT_NEAR(pred[i].at("ll")[k].get<double>(), want, 1e-4 * std::max(1.0, std::abs(want))) << cases[i].at("id");
    }
    EXPECT_EQ(pred[i].at("prediction"), names[e.at("pred_acc").get<int>()]) << cases[i].at("id");
    EXPECT_EQ(pred[i].at("prediction_norm"), names[e.at("pred_acc_norm").get<int>()]) << cases[i].at("id");
  }
}

// The generate-then-parse fixtures: HF greedy generate() of 5 tokens after the seed's fine-tuning
// prompt; the raw output is HF's decode (special tokens kept), the answer its first line stripped.
TEST_F(CliTask, GenerateModeMatchesTheGenerateFixtures) {
  const auto cases = fixture_cases("generate");
  ASSERT_EQ(cases.size(), 4u);
  std::vector<json> rows;
  for (const auto& c : cases)
    rows.push_back({{"premise", c.at("inputs").at("premise")}, {"hypothesis", c.at("inputs").at("hypothesis")}, {"label", 1}});
  const std::string data = write_jsonl("gen.jsonl", rows);
  for (const std::string mb : {"1", "4", "3"}) {
    const std::string out = path("gen" + mb + ".jsonl");
    const json s = task_json("--data " + data + " --template " + kExamples + "mnli_finetune.yaml --output_length 5 --micro_batch_size " + mb + " --output " + out);
    EXPECT_EQ(s.at("unmatched"), 4);  // random weights: no label
    EXPECT_EQ(s.at("generated_tokens"), 20);
    const auto pred = read_lines(out);
    ASSERT_EQ(pred.size(), 4u);
    for (size_t i = 0; i < cases.size(); ++i) {
      const json& in = cases[i].at("inputs");
      const json& e = cases[i].at("expected");
      EXPECT_EQ(pred[i].at("prompt"), in.at("prompt")) << cases[i].at("id");
      EXPECT_EQ(pred[i].at("output_ids"), e.at("new_ids")) << cases[i].at("id") << " micro-batch " << mb;
      EXPECT_EQ(pred[i].at("output"), e.at("text")) << cases[i].at("id");
      std::string answer = e.at("text_skip_special");
      answer.erase(0, answer.find_first_not_of(' '));
      EXPECT_EQ(pred[i].at("answer"), answer) << cases[i].at("id");
      EXPECT_TRUE(pred[i].at("prediction").is_null());
    }
  }
}

// Generate mode with a model whose greedy answer is known: the fixture's greedy continuation of a
// text prompt is its label, so exact matching, the report and the confusion matrix can be checked.
TEST_F(CliTask, GenerateModeScoresMatchesAndCountsUnmatched) {
  // gen_00's first generated token decodes to "Reward": make that a label name; gen_01's is " dramas".
  const auto cases = fixture_cases("generate");
  std::vector<json> rows;
  rows.push_back({{"premise", cases[0].at("inputs").at("premise")}, {"hypothesis", cases[0].at("inputs").at("hypothesis")}, {"label", "Reward"}});
  rows.push_back({{"premise", cases[1].at("inputs").at("premise")}, {"hypothesis", cases[1].at("inputs").at("hypothesis")}, {"label", "Reward"}});
  rows.push_back({{"premise", cases[1].at("inputs").at("premise")}, {"hypothesis", cases[1].at("inputs").at("hypothesis")}, {"label", "dramas"}});
  const std::string data = write_jsonl("labels.jsonl", rows);
  const std::string tmpl = "--prompt_template 'mnli hypothesis: {hypothesis} premise: {premise} target:' --label_names Reward,dramas";
  json s = task_json("--data " + data + " " + tmpl + " --output_length 1");
  EXPECT_EQ(s.at("correct"), 2);  // row 0 says Reward, row 2 says dramas; row 1 (gold Reward) says dramas
  EXPECT_EQ(s.at("unmatched"), 0);
  EXPECT_EQ(s.at("confusion_matrix").at("counts"), json::parse("[[1, 1, 0], [0, 1, 0]]"));
  EXPECT_DOUBLE_EQ(s.at("per_class").at("dramas").at("precision").get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(s.at("per_class").at("Reward").at("recall").get<double>(), 0.5);
  // Two tokens: "Reward cru" does not equal a label, but contains one.
  s = task_json("--data " + data + " " + tmpl + " --output_length 2");
  EXPECT_EQ(s.at("unmatched"), 3);
  s = task_json("--data " + data + " " + tmpl + " --output_length 2 --match contains");
  EXPECT_EQ(s.at("correct"), 2);
  s = task_json("--data " + data + " " + tmpl + " --output_length 2 --answer_regex '(\\w+) cru'");
  EXPECT_EQ(s.at("correct"), 1);   // only gen_00's output has " cru"
  EXPECT_EQ(s.at("unmatched"), 2);
}

// Sampling with --seed: micro-batch b draws from seed + b x 0x9e3779b97f4a7c15, so the same prompt
// in two micro-batches is not given the same random numbers (it was, when every micro-batch
// restarted from --seed), and a run is still repeatable.
TEST_F(CliTask, SampledMicroBatchesDrawFromStreamsOfTheirOwn) {
  const std::string data = write("same.csv", "premise,hypothesis,label\np,h,neutral\np,h,neutral\np,h,neutral\n");
  const std::string out = path("sampled.jsonl");
  const std::string args = "--data " + data + " --template " + kExamples +
                           "mnli_lm_eval.yaml --mode generate --do_sample --top_k 0 --seed 3 --output_length 12 "
                           "--micro_batch_size 1 --output " + out;
  ASSERT_EQ(task(args).exit_code, 0);
  const auto first = read_lines(out);
  ASSERT_EQ(first.size(), 3u);
  EXPECT_NE(first[0].at("output"), first[1].at("output"));
  EXPECT_NE(first[1].at("output"), first[2].at("output"));
  ASSERT_EQ(task(args).exit_code, 0);
  EXPECT_EQ(read_lines(out), first);
}

TEST_F(CliTask, TextReportAndRowSelection) {
  const std::string data = write("rows.csv", "premise,hypothesis,label\np0,h0,neutral\np1,h1,entailment\np2,h2,contradiction\np3,h3,neutral\n");
  const auto r = task("--data " + data + " --template " + kExamples + "mnli_lm_eval.yaml --mode loglikelihood --rows 1:3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("task: 2 rows of"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("accuracy (acc) "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("acc_norm "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("confusion matrix"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("examples/s"), std::string::npos) << r.out;
  EXPECT_EQ(task_json("--data " + data + " --template " + kExamples + "mnli_lm_eval.yaml --mode loglikelihood --limit 3").at("rows"), 3);
  const std::string out = path("sel.jsonl");
  ASSERT_EQ(task("--data " + data + " --template " + kExamples + "mnli_lm_eval.yaml --mode loglikelihood --rows 2: --output " + out).exit_code, 0);
  const auto pred = read_lines(out);
  ASSERT_EQ(pred.size(), 2u);
  EXPECT_EQ(pred[0].at("id"), 2);
  EXPECT_EQ(pred[1].at("id"), 3);
}

// Few-shot examples in the prompt, as lm-eval builds it: example text, target delimiter, the
// example's choice, the few-shot delimiter, then the query.
TEST_F(CliTask, FewshotExamplesAreInThePrompt) {
  const std::string data = write("fs.csv", "premise,hypothesis,label\np0,h0,neutral\np1,h1,entailment\np2,h2,contradiction\n");
  const std::string out = path("fs.jsonl");
  const auto r = task("--data " + data + " --template " + kExamples + "mnli_lm_eval.yaml --mode loglikelihood --fewshot_ids 1,2 --rows 0:1 --output " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_lines(out).at(0).at("prompt"),
            "p1\nQuestion: h1. True, False or Neither?\nAnswer: True\n\n"
            "p2\nQuestion: h2. True, False or Neither?\nAnswer: False\n\n"
            "p0\nQuestion: h0. True, False or Neither?\nAnswer:");
  // A drawn example is never the evaluated row itself, and the draw is the same on every run.
  const std::string pool = write("pool.csv", "premise,hypothesis,label\nq0,g0,neutral\nq1,g1,entailment\n");
  const std::string out2 = path("fs2.jsonl");
  ASSERT_EQ(task("--data " + data + " --template " + kExamples + "mnli_lm_eval.yaml --mode loglikelihood --num_fewshot 2 --fewshot_file " + pool + " --output " + out2).exit_code, 0);
  for (const auto& line : read_lines(out2)) {
    const std::string prompt = line.at("prompt");
    EXPECT_NE(prompt.find("q0\nQuestion: g0. True, False or Neither?\nAnswer: Neither\n\n"), std::string::npos) << prompt;
    EXPECT_NE(prompt.find("q1\nQuestion: g1. True, False or Neither?\nAnswer: True\n\n"), std::string::npos) << prompt;
  }
}

TEST_F(CliTask, PrintLiveShowsEveryRow) {
  const std::string data = write("live.csv", "premise,hypothesis,label\np0,h0,neutral\np1,h1,entailment\np2,h2,contradiction\n");
  const auto r = task("--data " + data + " --template " + kExamples + "mnli_finetune.yaml --micro_batch_size 2 --output_length 2 --print_live");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const std::string row : {"[row 0] ", "[row 1] ", "[row 2] "}) EXPECT_NE(r.out.find(row), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(gold contradiction)"), std::string::npos) << r.out;
  // Streamed token by token at micro-batch 1: the same lines.
  const auto streamed = task("--data " + data + " --template " + kExamples + "mnli_finetune.yaml --micro_batch_size 1 --output_length 2 --print_live");
  ASSERT_EQ(streamed.exit_code, 0) << streamed.err;
  const std::string live = r.out.substr(0, r.out.find("task: "));
  EXPECT_EQ(count_lines(live), 3) << live;
  EXPECT_EQ(streamed.out.substr(0, streamed.out.find("task: ")), live);
}

TEST_F(CliTask, WriteTrainingCsvIsTheFineTuningText) {
  const std::string data = write("train.tsv",
                                 "index\tsentence1\tsentence2\tgold_label\n"
                                 "0\tA man sleeps.\tA person rests.\tentailment\n"
                                 "1\tIt rains.\tIt is \"dry\".\tcontradiction\n"
                                 "2\tNo label here.\tNone.\t-\n");
  const std::string out = path("train_text.csv");
  const auto r = run_cli("task --data " + data + " --template " + kExamples + "mnli_finetune.yaml --write_training_csv " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream in(out);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text,
            "text\n"
            "\"mnli hypothesis: A person rests. premise: A man sleeps. target: entailment\"\n"
            "\"mnli hypothesis: It is \"\"dry\"\". premise: It rains. target: contradiction\"\n");
}

TEST_F(CliTask, BadInputIsOneLineAndWritesNothing) {
  const std::string data = write("bad.csv", "premise,hypothesis,label\np0,h0,neutral\np1,h1,entailment\n");
  const std::string lm = "--template " + kExamples + "mnli_lm_eval.yaml --mode loglikelihood ";
  expect_error("--data " + data + " --prompt_template 'premise: {premis}'", "'premis'");
  expect_error("--data " + data + " --prompt_template 'premise: {premis}'", "available: premise, hypothesis, label");
  const std::string unknown = write("unknown.csv", "premise,hypothesis,label\np0,h0,maybe\n");
  expect_error("--data " + unknown + " " + lm, "maybe");
  expect_error("--data " + data + " --prompt_template '{premise}' --label_names yes,no", "neutral");
  expect_error("--data " + data + " " + lm + "--num_fewshot 5", "num_fewshot");
  const std::string empty = write("empty.csv", "premise,hypothesis,label\n");
  expect_error("--data " + empty + " " + lm, "empty.csv");
  expect_error("--data " + data + " " + lm + "--sequence_length 8", "row 0 (line 2)");
  expect_error("--data " + data + " --template " + kExamples + "mnli_finetune.yaml --sequence_length 12", "--sequence_length 12");
  const std::string blank = write("blank.yaml", "text: \"{premise}\"\nchoices: [\"yes\", \"\", \"no\"]\ntarget_delimiter: \"\"\n");
  expect_error("--data " + data + " --template " + blank + " --mode loglikelihood", "tokenizes to nothing");
  expect_error("--data " + data + " " + lm + "--rows 5:9", "selects no rows");
  expect_error("--data " + data + " --template " + kExamples + "mnli_finetune.yaml --match fuzzy", "--match");
  expect_error("--data " + data + " " + lm + "--match contains", "--mode generate");
  expect_error("--data " + data + " --template " + kExamples + "mnli_finetune.yaml --num_return_sequences 2", "--num_return_sequences");
  expect_error("--data " + data, "no prompt template");
  const auto r = task("--data " + data + " " + lm + "--output " + path("no/such/folder/p.jsonl"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--output: the folder"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace lmforge::test
