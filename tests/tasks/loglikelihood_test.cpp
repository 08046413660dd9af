// lm-eval log-likelihood scoring: parity with tests/data/loglikelihood/cases.jsonl (HF transformers
// computed the lm-eval way, see its README), the rolling windows checked by hand from
// lm_eval.utils.get_rolling_token_windows + make_disjoint_window, and the batched / shared-prefix
// paths against scoring each request alone.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "lmforge/error.h"
#include "lmforge/model/model.h"
#include "lmforge/tasks/loglikelihood.h"
#include "lmforge/tokenizer/tokenizer.h"

namespace lmforge::test {
namespace {

using nlohmann::json;
using tasks::LLRequest;
using tasks::LLResult;
using Ids = std::vector<int32_t>;

const Model& model(const std::string& rel) {  // "models/gpt2-tiny"
  static std::map<std::string, std::unique_ptr<Model>> cache;
  auto& m = cache[rel];
  if (!m) m = Model::load(data_dir() / rel);
  return *m;
}

const Tokenizer& gpt2_tokenizer() {
  static Tokenizer t = Tokenizer::from_dir(data_dir() / "models" / "gpt2-tiny");
  return t;
}

std::vector<json> cases(const std::string& kind) {
  std::vector<json> out;
  for (const auto& c : read_jsonl(data_dir() / "loglikelihood" / "cases.jsonl"))
    if (c.at("kind") == kind) out.push_back(c);
  return out;
}

tasks::ScoreOptions alone() {
  tasks::ScoreOptions o;
  o.batch_size = 1;
  o.share_prefix = false;
  return o;
}

double worst_ll = 0, worst_token = 0;  // largest differences seen, printed by the last test

// The scoring fields every kind shares (README "Scoring one request"). `e` holds `logprob` or `ll`.
void expect_scored(const LLResult& r, const json& e, const std::string& id) {
  EXPECT_EQ(r.input_ids, e.at("input_ids").get<Ids>()) << id;
  EXPECT_EQ(r.truncated_tokens, e.at("truncated_tokens").get<int>()) << id;
  const double want = e.contains("logprob") ? e.at("logprob").get<double>() : e.at("ll").get<double>();
  EXPECT_NEAR(r.logprob, want, 1e-4 * std::max(1.0, std::abs(want))) << id;
  worst_ll = std::max(worst_ll, std::abs(r.logprob - want));
  const auto tokens = e.at("token_logprobs").get<std::vector<double>>();
  ASSERT_EQ(r.token_logprobs.size(), tokens.size()) << id;
  for (size_t i = 0; i < tokens.size(); ++i) {
    EXPECT_NEAR(r.token_logprobs[i], tokens[i], 1e-4) << id << " token " << i;
    worst_token = std::max(worst_token, std::abs(r.token_logprobs[i] - tokens[i]));
  }
  EXPECT_EQ(r.greedy_tokens, e.at("greedy_tokens").get<Ids>()) << id;
  EXPECT_EQ(r.is_greedy, e.at("is_greedy").get<bool>()) << id;
}

TEST(LoglikelihoodParity, PairCasesOfBothModels) {
  int checked = 0;
  for (const auto& c : cases("pair")) {
    const LLRequest r{c.at("inputs").at("context_ids").get<Ids>(), c.at("inputs").at("continuation_ids").get<Ids>()};
    const auto& m = model(c.at("model").get<std::string>());
    ASSERT_EQ(m.max_positions(), c.at("max_length").get<int>());
    expect_scored(tasks::score_requests(m, {r}, alone())[0], c.at("expected"), c.at("id").get<std::string>());
    ++checked;
  }
  EXPECT_EQ(checked, 36);  // README: 12 gpt2-tiny + 24 gptj-tiny
}

TEST(LoglikelihoodParity, TextPairCasesEncodeAndScore) {
  int checked = 0;
  for (const auto& c : cases("text_pair")) {
    const json& e = c.at("expected");
    const std::string id = c.at("id");
    const auto enc = tasks::encode_pair(gpt2_tokenizer(), c.at("inputs").at("context"), c.at("inputs").at("continuation"), 50256);
    EXPECT_EQ(enc.context_after_move, e.at("context_after_move").get<std::string>()) << id;
    EXPECT_EQ(enc.continuation_after_move, e.at("continuation_after_move").get<std::string>()) << id;
    ASSERT_EQ(enc.context_enc, e.at("context_enc").get<Ids>()) << id;
    ASSERT_EQ(enc.continuation_enc, e.at("continuation_enc").get<Ids>()) << id;
    const auto& m = model(c.at("model").get<std::string>());
    expect_scored(tasks::score_requests(m, {{enc.context_enc, enc.continuation_enc}}, alone())[0], e, id);
    ++checked;
  }
  EXPECT_EQ(checked, 17);
}

std::vector<tasks::MultipleChoiceDoc> mc_docs(const std::vector<json>& rows) {
  std::vector<tasks::MultipleChoiceDoc> docs;
  for (const auto& c : rows) {
    tasks::MultipleChoiceDoc d{c.at("inputs").at("context"), {}};
    for (const auto& pc : c.at("expected").at("per_choice")) d.choices.push_back(pc.at("choice"));
    docs.push_back(d);
  }
  return docs;
}

void expect_mc(const std::vector<tasks::MultipleChoiceResult>& got, const std::vector<json>& rows) {
  ASSERT_EQ(got.size(), rows.size());
  for (size_t d = 0; d < rows.size(); ++d) {
    const json& e = rows[d].at("expected");
    const std::string id = rows[d].at("id");
    const auto& pcs = e.at("per_choice");
    ASSERT_EQ(got[d].scores.size(), pcs.size()) << id;
    for (size_t i = 0; i < pcs.size(); ++i) {
      EXPECT_EQ(got[d].encoded[i].context_enc, pcs[i].at("context_enc").get<Ids>()) << id << " choice " << i;
      EXPECT_EQ(got[d].encoded[i].continuation_enc, pcs[i].at("continuation_enc").get<Ids>()) << id << " choice " << i;
      EXPECT_EQ(got[d].scores[i].truncated_tokens, pcs[i].at("truncated_tokens").get<int>()) << id;
      json want = pcs[i];
      // per_choice has no input_ids: it is (context_enc + continuation_enc)[-(max_length+1):][:-1].
      Ids full = pcs[i].at("context_enc").get<Ids>();
      for (int32_t t : pcs[i].at("continuation_enc").get<Ids>()) full.push_back(t);
      const size_t keep = std::min(full.size(), static_cast<size_t>(rows[d].at("max_length").get<int>()) + 1);
      want["input_ids"] = Ids(full.end() - static_cast<long>(keep), full.end() - 1);
      expect_scored(got[d].scores[i], want, id + " choice " + std::to_string(i));
    }
    EXPECT_EQ(got[d].choice_lengths, e.at("choice_lengths").get<std::vector<int>>()) << id;
    EXPECT_EQ(got[d].pred_acc, e.at("pred_acc").get<int>()) << id;
    EXPECT_EQ(got[d].pred_acc_norm, e.at("pred_acc_norm").get<int>()) << id;
  }
}

TEST(LoglikelihoodParity, MultipleChoiceOneDocumentAtATimeUnshared) {
  const auto rows = cases("multiple_choice");
  ASSERT_EQ(rows.size(), 12u);
  for (const auto& row : rows) expect_mc(tasks::score_multiple_choice(model("models/gpt2-tiny"), gpt2_tokenizer(), mc_docs({row}), alone()), {row});
}

TEST(LoglikelihoodParity, MultipleChoiceAllDocumentsBatchedWithSharedPrefix) {
  const auto rows = cases("multiple_choice");
  tasks::ScoreOptions o;
  o.batch_size = 8;
  o.share_prefix = true;
  expect_mc(tasks::score_multiple_choice(model("models/gpt2-tiny"), gpt2_tokenizer(), mc_docs(rows), o), rows);
}

// ---- batched and shared-prefix paths equal scoring each request alone -------------------------

// Every pair / text_pair / multiple-choice request of one model as token lists.
std::vector<LLRequest> all_requests(const std::string& model_rel) {
  std::vector<LLRequest> out;
  for (const std::string kind : {"pair", "text_pair", "multiple_choice"})
    for (const auto& c : cases(kind)) {
      if (c.at("model") != model_rel) continue;
      const json& e = c.at("expected");
      if (kind == "pair") out.push_back({c.at("inputs").at("context_ids").get<Ids>(), c.at("inputs").at("continuation_ids").get<Ids>()});
      if (kind == "text_pair") out.push_back({e.at("context_enc").get<Ids>(), e.at("continuation_enc").get<Ids>()});
      if (kind == "multiple_choice")
        for (const auto& pc : e.at("per_choice")) out.push_back({pc.at("context_enc").get<Ids>(), pc.at("continuation_enc").get<Ids>()});
    }
  return out;
}

// Largest |difference| of token log-probs; greedy tokens must agree.
double compare(const std::vector<LLResult>& a, const std::vector<LLResult>& b) {
  double worst = 0;
  EXPECT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].input_ids, b[i].input_ids) << i;
    EXPECT_EQ(a[i].greedy_tokens, b[i].greedy_tokens) << i;
    for (size_t t = 0; t < a[i].token_logprobs.size(); ++t)
      worst = std::max(worst, static_cast<double>(std::abs(a[i].token_logprobs[t] - b[i].token_logprobs[t])));
  }
  return worst;
}

TEST(LoglikelihoodBatching, BatchedAndSharedEqualAlone) {
  for (const std::string rel : {"models/gpt2-tiny", "models/gptj-tiny"}) {
    const auto requests = all_requests(rel);
    ASSERT_GE(requests.size(), 24u);
    const auto ref = tasks::score_requests(model(rel), requests, alone());
    for (int batch : {3, 8, 64})
      for (bool share : {false, true}) {
        tasks::ScoreOptions o;
        o.batch_size = batch;
        o.share_prefix = share;
        tasks::ScoreStats stats;
        const double worst = compare(ref, tasks::score_requests(model(rel), requests, o, &stats));
        // Measured (this machine's OpenBLAS): at most 2.9e-6, shared or not. Not bit-identical:
        // right padding lengthens the attention's key axis for the shorter rows, and a row's
        // place among the M rows of an sgemm can change its rounding (two identical rows of one
        // batch differ in the CLI test). Padding never leaks into real rows: that would be O(1).
        EXPECT_LE(worst, 2e-5) << rel << " batch " << batch << " share " << share;
        std::printf("[ measured ] %s batch %d share %d: max |token logprob - alone| = %.3g (%lld forward calls, %lld fed tokens)\n",
                    rel.c_str(), batch, share, worst, static_cast<long long>(stats.forward_calls),
                    static_cast<long long>(stats.fed_tokens));
      }
  }
}

TEST(LoglikelihoodBatching, SharedPrefixFeedsTheContextOnce) {
  // Three continuations of one 20-token context: 20 - 1 prefix tokens once, then 3 rows.
  Ids ctx;
  for (int i = 0; i < 20; ++i) ctx.push_back(100 + i);
  const std::vector<LLRequest> reqs{{ctx, {7}}, {ctx, {8, 9}}, {ctx, {10}}};
  tasks::ScoreOptions o;
  tasks::ScoreStats shared, separate;
  tasks::score_requests(model("models/gpt2-tiny"), reqs, o, &shared);
  o.share_prefix = false;
  tasks::score_requests(model("models/gpt2-tiny"), reqs, o, &separate);
  // Fed rows: ctx (A, C) and ctx + [8] (B); the first scored position is 19 in all three. Shared:
  // ctx[0:19] once, then 3 rows of 2 slots (B feeds ctx[19], 8; A and C ctx[19] and a pad).
  EXPECT_EQ(shared.fed_tokens, 19 + 3 * 2);
  EXPECT_EQ(separate.fed_tokens, 3 * 19 + 3 * 2);  // the same prefix in each of the 3 rows
}

// The additive model API the shared path rests on: a forked row continues exactly as the row it
// was forked from would (same cache bits), and bad forks are one-line errors.
TEST(LoglikelihoodBatching, ForkedRowsContinueLikeTheirSource) {
  const Model& m = model("models/gpt2-tiny");
  const int V = m.vocab_size();
  const std::vector<int32_t> ctx{464, 3139, 286, 4881, 318}, pos{0, 1, 2, 3, 4};
  const std::vector<uint8_t> ones(8, 1);
  std::vector<float> unused(static_cast<size_t>(V) * 5), a(static_cast<size_t>(V) * 2), b(static_cast<size_t>(V));
  auto s = m.start(1, 5);
  s->forward(5, ctx.data(), pos.data(), ones.data(), unused.data(), false);
  auto f = s->fork({0, 0}, 7);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->rows(), 2);
  EXPECT_EQ(f->length(), 5);
  const std::vector<int32_t> next{6342, 6342}, next_pos{5, 5};
  f->forward(1, next.data(), next_pos.data(), ones.data(), a.data(), false);
  // Reference: the same 6 tokens through a fresh one-row session, in the same two calls.
  auto r = m.start(1, 6);
  r->forward(5, ctx.data(), pos.data(), ones.data(), unused.data(), false);
  r->forward(1, next.data(), next_pos.data(), ones.data(), b.data(), false);
  for (int v = 0; v < V; ++v) {
    ASSERT_NEAR(a[v], b[v], 1e-5) << v;
    ASSERT_EQ(a[v], a[V + v]) << v;  // both forked rows alike
  }
  EXPECT_THROW(s->fork({0}, 4), Error);    // below the session's length
  EXPECT_THROW(s->fork({0}, 129), Error);  // beyond n_positions
  EXPECT_THROW(s->fork({1}, 6), Error);    // no such row
}

// ---- rolling windows, by hand from lm_eval.utils -----------------------------------------------

Ids range(int a, int b) {
  Ids v;
  for (int i = a; i < b; ++i) v.push_back(i);
  return v;
}

TEST(LoglikelihoodRolling, WindowsOf34TokensInWindowsOf10) {
  // first window: ([P], t[0:10]); then pred_len = 10: end 20 -> input t[9:19], disjoint context
  // t[9:10]; end 30 -> t[19:20]; last: 4 tokens, end 34, input t[23:33] minus its last 3 -> t[23:30].
  const auto w = tasks::rolling_windows(range(0, 34), -100, 10);
  ASSERT_EQ(w.size(), 4u);
  EXPECT_EQ(w[0].context, Ids{-100});
  EXPECT_EQ(w[0].continuation, range(0, 10));
  EXPECT_EQ(w[1].context, range(9, 10));
  EXPECT_EQ(w[1].continuation, range(10, 20));
  EXPECT_EQ(w[2].context, range(19, 20));
  EXPECT_EQ(w[2].continuation, range(20, 30));
  EXPECT_EQ(w[3].context, range(23, 30));
  EXPECT_EQ(w[3].continuation, range(30, 34));
}

TEST(LoglikelihoodRolling, ShortAndEmptyTexts) {
  EXPECT_TRUE(tasks::rolling_windows({}, 5, 10).empty());
  const auto one = tasks::rolling_windows(range(0, 3), 5, 10);  // fits: ([P], all)
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].context, Ids{5});
  EXPECT_EQ(one[0].continuation, range(0, 3));
  const auto exact = tasks::rolling_windows(range(0, 11), 5, 10);  // 10 then 1: end 11, input t[0:10] minus 0
  ASSERT_EQ(exact.size(), 2u);
  EXPECT_EQ(exact[1].context, range(0, 10));
  EXPECT_EQ(exact[1].continuation, range(10, 11));
  // context_len 4: pred_len 7; second window end 17, input t[6:16], keep its first 10 - 6 = 4.
  const auto c4 = tasks::rolling_windows(range(0, 17), 5, 10, 4);
  ASSERT_EQ(c4.size(), 2u);
  EXPECT_EQ(c4[1].context, range(6, 10));
  EXPECT_EQ(c4[1].continuation, range(10, 17));
}

TEST(LoglikelihoodRolling, OneWindowEqualsThePairWithEot) {
  const auto& m = model("models/gpt2-tiny");
  const Ids text = gpt2_tokenizer().encode("The quick brown fox jumps over the lazy dog. It was a sunny day.");
  const double pair = tasks::score_requests(m, {{{50256}, text}}, alone())[0].logprob;
  EXPECT_EQ(tasks::score_rolling(m, text, 50256, alone()), pair);
  // Longer than the window (128): the windows' continuations tile the text exactly once.
  Ids longer;
  while (longer.size() < 300) longer.insert(longer.end(), text.begin(), text.end());
  size_t covered = 0;
  for (const auto& w : tasks::rolling_windows(longer, 50256, 128)) {
    EXPECT_EQ(Ids(longer.begin() + covered, longer.begin() + covered + w.continuation.size()), w.continuation);
    EXPECT_LE(w.context.size() + w.continuation.size(), 129u);
    covered += w.continuation.size();
  }
  EXPECT_EQ(covered, longer.size());
  EXPECT_TRUE(std::isfinite(tasks::score_rolling(m, longer, 50256)));
}

// ---- helpers and bad input -----------------------------------------------------------------------

TEST(LoglikelihoodHelpers, PythonRstripLenAndArgmax) {
  EXPECT_EQ(tasks::python_rstrip("a b \t\n\r\x0b\x0c"), "a b");
  EXPECT_EQ(tasks::python_rstrip("x\xc2\xa0\xe3\x80\x80"), "x");  // NBSP, ideographic space
  EXPECT_EQ(tasks::python_rstrip("\xc3\xa9"), "\xc3\xa9");         // é is not space
  EXPECT_EQ(tasks::python_rstrip("   "), "");
  EXPECT_EQ(tasks::code_point_length("Neither"), 7);
  EXPECT_EQ(tasks::code_point_length("caf\xc3\xa9"), 4);
  EXPECT_EQ(tasks::argmax_first({-1.0, -0.5, -0.5}), 1);
  EXPECT_EQ(tasks::argmax_first({-2.0}), 0);
}

TEST(LoglikelihoodErrors, BadRequestsThrowNamingTheRequest) {
  const auto& m = model("models/gpt2-tiny");
  auto message = [&](const LLRequest& r) {
    try {
      tasks::score_requests(m, {{{1}, {2}}, r});
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({{}, {1}}).find("request 1: the context is empty"), std::string::npos);
  EXPECT_NE(message({{1}, {}}).find("request 1: the continuation is empty"), std::string::npos);
  EXPECT_NE(message({{1}, Ids(129, 5)}).find("more than max_length 128"), std::string::npos);
  EXPECT_NE(message({{1}, {50257}}).find("outside the vocabulary"), std::string::npos);
  // A continuation of exactly max_length is accepted (lm-eval asserts <=).
  EXPECT_NO_THROW(tasks::score_requests(m, {{{1}, Ids(128, 5)}}));
}

TEST(LoglikelihoodParity, WorstDifferences) {
  std::printf("[ measured ] worst |logprob - HF| = %.3g, worst |token logprob - HF| = %.3g\n", worst_ll, worst_token);
}

}  // namespace
}  // namespace lmforge::test
