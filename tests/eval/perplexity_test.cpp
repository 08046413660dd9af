// Perplexity against HF transformers' loss on the public model fixtures (kinds "ppl" and
// "ppl_sliding" in tests/data/models/*/cases.jsonl).
#include <gtest/gtest.h>

#include <cmath>

#include "common/fixtures.h"
#include "lmforge/error.h"
#include "lmforge/eval/perplexity.h"
#include "lmforge/model/model.h"
#include "lmforge/tokenizer/tokenizer.h"

namespace lmforge::eval {
namespace {

constexpr double kRelTol = 1e-5;  // the fixture README's tolerance for perplexity / loss

void expect_rel(double got, double want, const std::string& what) {
  EXPECT_NEAR(got, want, kRelTol * std::fabs(want)) << what;
}

TEST(Perplexity, MatchesHfLoss) {
  int checked = 0;
  for (const std::string& name : test::model_names()) {
    const auto model = Model::load(test::model_dir(name));
    for (const auto& c : test::model_cases(name, "ppl")) {
      const auto ids = c.at("input_ids").get<std::vector<int32_t>>();
      const PerplexityResult r = perplexity(*model, ids);
      const double loss = c.at("output").at("loss");
      expect_rel(r.mean_nll(), loss, c.at("id"));
      expect_rel(r.perplexity, std::exp(loss), c.at("id"));
      expect_rel(r.perplexity, c.at("output").at("perplexity"), c.at("id"));
      EXPECT_EQ(r.tokens, static_cast<int64_t>(ids.size()) - 1);
      EXPECT_EQ(r.windows.size(), 1u);
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
}

TEST(Perplexity, SlidingWindowsMatchHf) {
  int checked = 0;
  for (const std::string& name : test::model_names()) {
    const auto model = Model::load(test::model_dir(name));
    for (const auto& c : test::model_cases(name, "ppl_sliding")) {
      const std::string id = c.at("id");
      const auto ids = c.at("input_ids").get<std::vector<int32_t>>();
      const PerplexityOptions opt{c.at("args").at("max_length").get<int>(), c.at("args").at("stride").get<int>()};
      const PerplexityResult r = perplexity(*model, ids, opt);
      const auto& want = c.at("output").at("windows");
      ASSERT_EQ(r.windows.size(), want.size()) << id;
      double weighted = 0;
      for (size_t w = 0; w < want.size(); ++w) {
        EXPECT_EQ(r.windows[w].begin, want[w].at("begin").get<int64_t>()) << id;
        EXPECT_EQ(r.windows[w].end, want[w].at("end").get<int64_t>()) << id;
        EXPECT_EQ(r.windows[w].trg_len, want[w].at("trg_len").get<int64_t>()) << id;
        expect_rel(r.windows[w].loss, want[w].at("loss"), id + " window " + std::to_string(w));
        weighted += want[w].at("loss").get<double>() * static_cast<double>(r.windows[w].scored);
      }
      expect_rel(r.window_mean_perplexity, c.at("output").at("perplexity"), id);
      // The token-weighted value from HF's own window losses.
      expect_rel(r.perplexity, std::exp(weighted / static_cast<double>(r.tokens)), id + " token-weighted");
      EXPECT_EQ(r.tokens, static_cast<int64_t>(ids.size()) - 1) << id;  // stride < max_length: all but the first
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
}

// One window over the whole text equals the sliding result's definition when the text fits.
TEST(Perplexity, StrideIrrelevantWhenTextFits) {
  const auto model = Model::load(test::model_dir("gpt2-tiny"));
  const std::vector<int32_t> ids = {5, 17, 300, 42, 9, 11, 250, 3};
  const double a = perplexity(*model, ids).perplexity;
  const double b = perplexity(*model, ids, {8, 3}).perplexity;
  EXPECT_DOUBLE_EQ(a, b);
  // Disjoint windows (stride == max_length): each window's first token has no context and is not scored.
  const PerplexityResult d = perplexity(*model, ids, {4, 4});
  EXPECT_EQ(d.windows.size(), 2u);
  EXPECT_EQ(d.tokens, 6);
}

TEST(Perplexity, RejectsBadOptions) {
  const auto model = Model::load(test::model_dir("gpt2-tiny"));
  const std::vector<int32_t> ids = {5, 17, 300};
  EXPECT_THROW(perplexity(*model, {5}), Error);
  EXPECT_THROW(perplexity(*model, ids, {8, 9}), Error);
  EXPECT_THROW(perplexity(*model, ids, {8, -1}), Error);
  EXPECT_THROW(perplexity(*model, ids, {model->max_positions() + 1, 1}), Error);
}

TEST(Perplexity, CorpusIsTokenWeighted) {
  const auto model = Model::load(test::model_dir("gpt2-tiny"));
  const Tokenizer tok = Tokenizer::from_dir(test::model_dir("gpt2-tiny"));
  const std::vector<std::string> texts = {"farmers pleased with figures", "a", "council approves new budget for roads"};
  const CorpusPerplexity c = corpus_perplexity(*model, tok, texts);
  ASSERT_EQ(c.rows.size(), 3u);
  double nll = 0;
  int64_t tokens = 0;
  for (const auto& r : c.rows) {
    if (r.tokens == 0) continue;
    nll += r.nll_sum;
    tokens += r.tokens;
  }
  EXPECT_EQ(c.tokens, tokens);
  EXPECT_DOUBLE_EQ(c.perplexity, std::exp(nll / static_cast<double>(tokens)));
  EXPECT_EQ(c.skipped, tok.encode("a").size() < 2 ? 1 : 0);
}


// Context tokens condition the rest but are not scored: with one window, the full score splits
// exactly into the context's own score and the rest's.
TEST(Perplexity, ContextTokensAreNotScored) {
  const auto model = Model::load(test::model_dir("gpt2-tiny"));
  const std::vector<int32_t> ids = {5, 17, 300, 42, 9, 11, 250, 3};
  const PerplexityResult full = perplexity(*model, ids);
  PerplexityOptions ctx;
  ctx.context_tokens = 5;
  const PerplexityResult rest = perplexity(*model, ids, ctx);
  const PerplexityResult head = perplexity(*model, {5, 17, 300, 42, 9});
  EXPECT_EQ(rest.tokens, 3);
  EXPECT_NEAR(full.nll_sum, head.nll_sum + rest.nll_sum, 1e-9 * full.nll_sum);
  // Sliding windows: the same tokens scored; the first window [0, 4) lies inside the context and
  // scores nothing, and is left out of the window mean.
  ctx.max_length = 4;
  ctx.stride = 2;
  const PerplexityResult slid = perplexity(*model, ids, ctx);
  EXPECT_EQ(slid.tokens, 3);
  EXPECT_EQ(slid.windows.front().scored, 0);
  EXPECT_TRUE(std::isfinite(slid.window_mean_perplexity));
  ctx.context_tokens = 8;
  EXPECT_THROW(perplexity(*model, ids, ctx), Error);
}

// finetune's rows end with eos; free text keeps the prefix as context, split where BPE splits it.
TEST(Perplexity, RenderTextAsTrainingOrAsContext) {
  const Tokenizer tok = Tokenizer::from_dir(test::model_dir("gpt2-tiny"));
  const RenderedText row = render_text(tok, "farmers pleased", TextFormat{"|HEADLINE| ", ".", false, true});
  std::vector<int32_t> want = tok.encode("|HEADLINE| farmers pleased.");
  want.push_back(*tok.eos_id());
  EXPECT_EQ(row.ids, want);
  EXPECT_EQ(row.context_tokens, 0);

  const RenderedText text = render_text(tok, "farmers pleased", TextFormat{"|HEADLINE| ", "", true, false});
  EXPECT_EQ(text.ids, tok.encode("|HEADLINE| farmers pleased"));
  ASSERT_GT(text.context_tokens, 0);
  const std::vector<int32_t> context(text.ids.begin(), text.ids.begin() + text.context_tokens);
  EXPECT_EQ(tok.decode(context), "|HEADLINE|");  // the trailing space travels with " farmers", as in training
  const std::vector<int32_t> scored(text.ids.begin() + text.context_tokens, text.ids.end());
  EXPECT_EQ(tok.decode(scored), " farmers pleased");
}

}  // namespace
}  // namespace lmforge::eval
