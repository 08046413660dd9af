// Log-likelihood scoring benchmark: MNLI-style multiple choice (one context, 3 one-token choices,
// lm-eval's " True" / " Neither" / " False") in examples/s, with the shared context run once (KV
// cache fork) versus every choice scored as its own request, at --batch_size rows per forward pass
// and at batch 1. Runs on a GPT-2-shaped model with random weights written once through
// write_random_checkpoint (the same HF-folder loader path as real checkpoints). See
// docs/PERFORMANCE.md.
//
//   bench_score [--preset gpt2|gpt2-medium] [--dir DIR] [--docs 16] [--context 64] [--batch_size 8]
//               [--threads N] [--reps 3]
//
// Contexts are random token ids, their lengths spread evenly over [context/2, 3*context/2] (MNLI
// prompts are ~40-100 GPT-2 tokens). Every figure is the best of --reps runs (the modes take turns); the ISA path, thread
// count and the machine's load average are printed so noisy runs can be told apart.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "bench_util.h"
#include "lmforge/error.h"
#include "lmforge/kernels/kernels.h"
#include "lmforge/model/model.h"
#include "lmforge/model/random_checkpoint.h"
#include "lmforge/tasks/loglikelihood.h"

using namespace lmforge;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string preset = "gpt2", dir;
  int docs = 16, context = 64, batch_size = 8, threads = 0, reps = 3;
};

Options parse(int argc, char** argv) {
  Options o;
  for (bench::FlagReader f(argc, argv); f.next();) {
    if (f.is("--preset")) o.preset = f.value();
    else if (f.is("--dir")) o.dir = f.value();
    else if (f.is("--docs")) o.docs = f.integer();
    else if (f.is("--context")) o.context = f.integer();
    else if (f.is("--batch_size")) o.batch_size = f.integer();
    else if (f.is("--threads")) o.threads = f.integer();
    else if (f.is("--reps")) o.reps = f.integer();
    else throw Error("unknown flag " + f.flag());
  }
  if (o.dir.empty()) o.dir = (fs::temp_directory_path() / ("lmforge_bench_score_" + o.preset)).string();
  return o;
}

// docs x 3 requests: context of random ids (deterministic LCG), choices " True" " Neither" " False".
std::vector<tasks::LLRequest> mnli_like(const Options& o, int vocab) {
  const std::vector<int32_t> choices{6407, 16126, 10352};
  std::vector<tasks::LLRequest> out;
  uint64_t state = 12345;
  for (int d = 0; d < o.docs; ++d) {
    const int len = o.context / 2 + (o.docs > 1 ? d * o.context / (o.docs - 1) : o.context / 2);
    tasks::TokenIds ctx;
    for (int t = 0; t < len; ++t) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      ctx.push_back(static_cast<int32_t>((state >> 33) % static_cast<uint64_t>(vocab)));
    }
    for (int32_t c : choices) out.push_back({ctx, {c % vocab}});
  }
  return out;
}

struct Timing {
  double seconds = 1e30;
  int64_t fed_tokens = 0, forward_calls = 0;
  std::vector<tasks::LLResult> results;
};

// One run; keeps it in `best` when faster.
void time_once(const Model& m, const std::vector<tasks::LLRequest>& reqs, int batch, bool share, Timing& best) {
  tasks::ScoreOptions o;
  o.batch_size = batch;
  o.share_prefix = share;
  tasks::ScoreStats stats;
  const auto t0 = Clock::now();
  auto results = tasks::score_requests(m, reqs, o, &stats);
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (s < best.seconds) best = {s, stats.fed_tokens, stats.forward_calls, std::move(results)};
}

}  // namespace

int main(int argc, char** argv) try {
  const Options o = parse(argc, argv);
  if (o.threads > 0) kernels::set_num_threads(o.threads);
  if (!fs::exists(fs::path(o.dir) / "config.json")) {
    std::printf("writing a random %s checkpoint to %s\n", o.preset.c_str(), o.dir.c_str());
    write_random_checkpoint(o.dir, random_checkpoint_config(o.preset), RandomCheckpointOptions{});
  }
  auto model = Model::load(o.dir, kernels::WeightType::F32);
  const ModelConfig& c = model->config();
  const auto reqs = mnli_like(o, c.vocab_size);
  std::printf("model            %s shape (%d layers, %d wide, vocab %d), float32, random weights, %s\n", o.preset.c_str(),
              c.n_layer, c.n_embd, c.vocab_size, o.dir.c_str());
  std::printf("kernels          ISA path %s, %d threads\n", kernels::isa_description().c_str(), kernels::num_threads());
  std::printf("task             %d MNLI-style examples x 3 one-token choices, contexts %d..%d tokens\n", o.docs, o.context / 2,
              o.context / 2 + o.context);
  std::printf("load average     %s (start)\n\n", bench::load_average().c_str());

  struct Row {
    const char* name;
    int batch;
    bool share;
  };
  const std::vector<Row> rows{{"each choice separately", 1, false},
                              {"each choice separately", o.batch_size, false},
                              {"shared context (KV fork)", 1, true},
                              {"shared context (KV fork)", o.batch_size, true}};
  std::printf("%-26s %6s %12s %12s %14s %10s\n", "mode", "batch", "examples/s", "fed tokens", "forward calls", "speed-up");
  // The modes take turns in every repetition, so a change in the machine's load hits them alike.
  std::vector<Timing> best(rows.size());
  for (int rep = 0; rep < o.reps; ++rep)
    for (size_t i = 0; i < rows.size(); ++i) time_once(*model, reqs, rows[i].batch, rows[i].share, best[i]);
  const double base = o.docs / best[0].seconds;
  double worst = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    // A shared group of 3 rows is never split, so "batch 1" with sharing runs 3 rows per pass.
    const double eps = o.docs / best[i].seconds;
    std::printf("%-26s %6d %12.2f %12lld %14lld %9.2fx\n", rows[i].name, rows[i].batch, eps,
                static_cast<long long>(best[i].fed_tokens), static_cast<long long>(best[i].forward_calls), eps / base);
    for (size_t k = 0; k < best[0].results.size(); ++k)
      worst = std::max(worst, std::abs(best[0].results[k].logprob - best[i].results[k].logprob));
  }
  std::printf("\nmax |logprob - separate batch 1| over all modes: %.3g\n", worst);
  std::printf("load average     %s (end)\n", bench::load_average().c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
