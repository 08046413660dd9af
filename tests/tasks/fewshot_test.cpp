// Few-shot selection and whole prompts: the seed notebook's v1-v4 prompts and lm-eval's mnli
// few-shot context, written by hand; lm-eval's sampling rules; the errors (rules in
// include/lmforge/tasks/fewshot.h).
#include "lmforge/tasks/fewshot.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "lmforge/error.h"
#include "tasks/tasks_test_util.h"

namespace lmforge::tasks {
namespace {

// An HF-export-style MNLI JSONL of `n` rows: premise "P<i>.", hypothesis "H<i>", label i % 3.
Dataset mnli_rows(int n, const std::string& source = "dev.jsonl") {
  std::string text;
  for (int i = 0; i < n; ++i)
    text += "{\"premise\": \"P" + std::to_string(i) + ".\", \"hypothesis\": \"H" + std::to_string(i) +
            "\", \"label\": " + std::to_string(i % 3) + ", \"idx\": " + std::to_string(i) + "}\n";
  return parse_dataset(text, source);
}

Row query(const std::string& premise, const std::string& hypothesis, int64_t id = 100) {
  Row r;
  r.id = id;
  r.line = id + 1;
  r.fields = {{"premise", premise}, {"hypothesis", hypothesis}, {"label", ""}};
  return r;
}

std::vector<int64_t> ids_of(const std::vector<const Row*>& rows) {
  std::vector<int64_t> out;
  for (const Row* r : rows) out.push_back(r->id);
  return out;
}

// The seed calls entailment_instructions_vN + entailment_prompt("Hello, welcome.", "The person is leaving.").
const Row kSeedQuery = query("The person is leaving.", "Hello, welcome.");

TEST(SeedPrompts, V1) {
  const Template t = load_template(kExamples + "mnli_seed_v1.yaml");
  const Dataset d = mnli_rows(3);
  const FewshotSampler s(t, d, nullptr, {});
  EXPECT_EQ(s.num_fewshot(), 0);
  EXPECT_EQ(build_prompt(t, s, kSeedQuery),
            "How are the statements related?\n"
            "mnli hypothesis: Hello, welcome. premise: The person is leaving. target: ");
}

TEST(SeedPrompts, V2) {
  const Template t = load_template(kExamples + "mnli_seed_v2.yaml");
  const FewshotSampler s(t, mnli_rows(3), nullptr, {});
  EXPECT_EQ(build_prompt(t, s, kSeedQuery),
            "Tell me if the next statements entailment, contradiction, neutral.\n"
            "Example - mnli hypothesis: Goodbye. premise: Hey there. target: contradiction.\n"
            "Example - mnli hypothesis: Hello. premise: Hey there. target: entailment.\n"
            "mnli hypothesis: Hello, welcome. premise: The person is leaving. target: ");
}

TEST(SeedPrompts, V3) {
  const Template t = load_template(kExamples + "mnli_seed_v3.yaml");
  const FewshotSampler s(t, mnli_rows(3), nullptr, {});
  EXPECT_EQ(build_prompt(t, s, kSeedQuery),
            "Tell me if the statements entailment, contradiction, neutral.\n"
            "mnli hypothesis: Goodbye. premise: Hey there. target: contradiction.\n"
            "Tell me if the statements entailment, contradiction, neutral.\n"
            "mnli hypothesis: Hello. premise: Hey there. target: entailment.\n"
            "Tell me if the statements entailment, contradiction, neutral.\n"
            "mnli hypothesis: The person is traveling. premise: The cat is black. target: neutral.\n"
            "Tell me if the statements entailment, contradiction, neutral.\n"
            "mnli hypothesis: Hello, welcome. premise: The person is leaving. target: ");
}

// v4: dataset rows 0, 2 and 8 (labels 0, 2, 2 here) for every query.
TEST(SeedPrompts, V4UsesDatasetRows028) {
  const Template t = load_template(kExamples + "mnli_seed_v4.yaml");
  const Dataset d = mnli_rows(13);
  const FewshotSampler s(t, d, nullptr, {});
  EXPECT_EQ(s.num_fewshot(), 3);
  EXPECT_EQ(build_prompt(t, s, d.rows[12]),
            "Tell me if the statements entailment, contradiction, neutral.\n"
            "mnli hypothesis: H0 premise: P0. target: entailment.\n"
            "Tell me if the statements entailment, contradiction, neutral.\n"
            "mnli hypothesis: H2 premise: P2. target: contradiction.\n"
            "Tell me if the statements entailment, contradiction, neutral.\n"
            "mnli hypothesis: H8 premise: P8. target: contradiction.\n"
            "Tell me if the statements entailment, contradiction, neutral.\n"
            "mnli hypothesis: H12 premise: P12. target: ");
}

// lm-eval: examples joined by the few-shot delimiter, one more delimiter, then the query.
TEST(LmEvalMnli, FixedIdsFewshotContext) {
  const Template t = load_template(kExamples + "mnli_lm_eval.yaml");
  const Dataset train = mnli_rows(3, "train.jsonl");
  FewshotOptions o;
  o.ids = {1, 0};
  const FewshotSampler s(t, mnli_rows(2), &train, o);
  EXPECT_EQ(s.pool_source(), "train.jsonl");
  EXPECT_EQ(build_prompt(t, s, query("The new rights are nice enough", "Everyone really likes the newest benefits ")),
            "P1.\nQuestion: H1. True, False or Neither?\nAnswer: Neither\n\n"
            "P0.\nQuestion: H0. True, False or Neither?\nAnswer: True\n\n"
            "The new rights are nice enough\nQuestion: Everyone really likes the newest benefits. True, False or "
            "Neither?\nAnswer:");
  FewshotOptions zero;
  zero.num_fewshot = 0;
  EXPECT_EQ(build_prompt(t, FewshotSampler(t, train, &train, zero), train.rows[2]),
            "P2.\nQuestion: H2. True, False or Neither?\nAnswer:");
}

TEST(Sampling, DrawsKDistinctRowsNeverTheQueryAndIsReproducible) {
  const Template t = load_template(kExamples + "mnli_lm_eval.yaml");
  const Dataset d = mnli_rows(10);
  FewshotOptions o;
  o.num_fewshot = 3;
  const FewshotSampler s(t, d, nullptr, o);
  std::map<int64_t, int> seen;
  for (const Row& q : d.rows) {
    const auto ex = ids_of(s.select(q));
    ASSERT_EQ(ex.size(), 3u);
    EXPECT_EQ(std::set<int64_t>(ex.begin(), ex.end()).size(), 3u);
    EXPECT_EQ(std::count(ex.begin(), ex.end(), q.id), 0);
    EXPECT_EQ(ids_of(s.select(q)), ex);  // the same row gets the same examples, whatever came before
    for (int64_t id : ex) ++seen[id];
  }
  EXPECT_EQ(seen.size(), 10u);
  // Another seed changes some selection; the same seed in a new sampler does not.
  o.seed = 7;
  const FewshotSampler other(t, d, nullptr, o);
  o.seed = 1234;
  const FewshotSampler same(t, d, nullptr, o);
  bool differs = false;
  for (const Row& q : d.rows) {
    differs |= ids_of(other.select(q)) != ids_of(s.select(q));
    EXPECT_EQ(ids_of(same.select(q)), ids_of(s.select(q)));
  }
  EXPECT_TRUE(differs);
}

// With K = pool - 1 every other row is drawn; over many queries every row is drawn about equally.
TEST(Sampling, CoversThePoolUniformly) {
  const Template t = load_template(kExamples + "mnli_lm_eval.yaml");
  const Dataset d = mnli_rows(4);
  FewshotOptions o;
  o.num_fewshot = 3;
  const FewshotSampler all(t, d, nullptr, o);
  for (const Row& q : d.rows) {
    auto ex = ids_of(all.select(q));
    std::sort(ex.begin(), ex.end());
    std::vector<int64_t> others;
    for (int64_t i = 0; i < 4; ++i)
      if (i != q.id) others.push_back(i);
    EXPECT_EQ(ex, others);
  }
  const Dataset pool = mnli_rows(10, "train.jsonl");
  const FewshotSampler s(t, d, &pool, o);
  std::map<int64_t, int> count;
  for (int64_t id = 0; id < 3000; ++id)
    for (const Row* r : s.select(query("p", "h", id))) ++count[r->id];
  ASSERT_EQ(count.size(), 10u);
  for (const auto& [id, c] : count) EXPECT_NEAR(c, 900, 120) << "row " << id;
}

TEST(Sampling, UnlabeledRowsAreNeverDrawn) {
  const Template t = load_template(kExamples + "mnli_lm_eval.yaml");
  const Dataset d = parse_dataset(
      "premise\thypothesis\tlabel\nA\ta\t-1\nB\tb\t0\nC\tc\t-1\nD\td\t2\n", "test.tsv");
  FewshotOptions o;
  o.num_fewshot = 1;
  const FewshotSampler s(t, d, nullptr, o);
  for (const Row& q : d.rows)
    for (const Row* r : s.select(q)) EXPECT_NE(r->label, kNoLabel);
  o.num_fewshot.reset();
  o.ids = {2};
  EXPECT_EQ(error_of([&] { build_prompt(t, FewshotSampler(t, d, nullptr, o), d.rows[1]); }),
            kExamples + "mnli_lm_eval.yaml: row 2 (line 4) has no gold label, so it cannot be shown as a few-shot "
                        "example");
}

TEST(Sampling, InlineExamplesAsPool) {
  const Template t = load_template(kExamples + "mnli_seed_v3.yaml");
  FewshotOptions o;
  o.num_fewshot = 2;
  const FewshotSampler s(t, mnli_rows(2), nullptr, o);
  const auto ex = s.select(kSeedQuery);
  ASSERT_EQ(ex.size(), 2u);
  EXPECT_NE(ex[0], ex[1]);
  EXPECT_EQ(s.pool_source(), kExamples + "mnli_seed_v3.yaml (examples)");
}

TEST(Sampling, Errors) {
  const Template t = load_template(kExamples + "mnli_lm_eval.yaml");
  const Dataset d = mnli_rows(4);
  const Dataset train = mnli_rows(3, "train.jsonl");
  FewshotOptions o;
  o.num_fewshot = 4;
  EXPECT_EQ(error_of([&] { FewshotSampler(t, d, &train, o); }),
            "num_fewshot 4 is larger than the few-shot pool: train.jsonl has 3 rows with a gold label");
  EXPECT_EQ(error_of([&] { FewshotSampler(t, d, nullptr, o); }),
            "num_fewshot 4 is larger than the few-shot pool: dev.jsonl has 4 rows with a gold label and the "
            "evaluated row is never its own example");
  o.num_fewshot = 2;
  EXPECT_NO_THROW(FewshotSampler(t, train, &train, o));
  o.num_fewshot = 3;  // the evaluated file given as the few-shot file: the query row is left out
  EXPECT_EQ(error_of([&] { FewshotSampler(t, train, &train, o); }),
            "num_fewshot 3 is larger than the few-shot pool: train.jsonl has 3 rows with a gold label and the "
            "evaluated row is never its own example");
  o.num_fewshot = -1;
  EXPECT_EQ(error_of([&] { FewshotSampler(t, d, nullptr, o); }), "num_fewshot must be 0 or more, got -1");
  o.num_fewshot = 2;
  o.ids = {0, 1, 2};
  EXPECT_EQ(error_of([&] { FewshotSampler(t, d, nullptr, o); }),
            "num_fewshot 2 differs from the 3 fixed few-shot example ids");
  o.num_fewshot.reset();
  o.ids = {0, 7};
  EXPECT_EQ(error_of([&] { FewshotSampler(t, d, &train, o); }),
            "few-shot example id 7 is not a row of train.jsonl (3 rows, ids from 0)");
  const Template v4 = load_template(kExamples + "mnli_seed_v4.yaml");
  EXPECT_EQ(error_of([&] { FewshotSampler(v4, d, nullptr, {}); }),
            "few-shot example id 8 is not a row of dev.jsonl (4 rows, ids from 0)");
}

}  // namespace
}  // namespace lmforge::tasks
