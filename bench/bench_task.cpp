// Generate-mode task evaluation benchmark (issue 12): examples/s of greedy generate() over
// MNLI-style prompts one prompt per call (batch 1) against --micro_batch_size prompts per call, as
// the task runner calls it: left padding, max_new_tokens = --output_length, eos 50256 (pad 50256).
// Runs on a GPT-2-shaped model with random weights written once through write_random_checkpoint
// (the same HF-folder loader path as real checkpoints). See docs/PERFORMANCE.md.
//
//   bench_task [--preset gpt2|gpt2-medium] [--dir DIR] [--dtype float32|bfloat16|int8|int8_dynamic]
//              [--examples 48] [--micro_batch_size 12] [--output_length 10] [--context 75]
//              [--spread 35] [--sorted] [--eos on|off] [--threads N] [--reps 3]
//
// Prompts are random token ids (never an eos id), their lengths drawn uniformly from
// [context - spread, context + spread] (MNLI prompts are ~40-110 GPT-2 tokens), in dataset order:
// a micro-batch mixes lengths and is left-padded to its longest prompt. --sorted orders them by
// length first (lm-eval's generate_until does), so micro-batches pad less.
//
// Fairness: with --eos on (the task's setting) a row ends at its first eos; at batch 1 that ends
// the call, in a micro-batch the row keeps running (HF pads it) until every row is done. Random
// weights rarely choose eos, and the table says how many tokens each mode generated and how many
// rows stopped early; --eos off (no eos, pad 50256) always generates --output_length tokens.
// Both modes must give the same tokens: the number of examples whose generated tokens differ is
// printed.
//
// Every figure is the best of --reps runs, the modes taking turns; "prefill" is the time from the
// call to its first chosen token (prompt forward pass, LM head, argmax), "decode" the rest. The ISA
// path, thread count and load average are printed so noisy runs can be told apart.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "bench_util.h"
#include "lmforge/error.h"
#include "lmforge/generate/generate.h"
#include "lmforge/kernels/kernels.h"
#include "lmforge/model/model.h"
#include "lmforge/model/random_checkpoint.h"

using namespace lmforge;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int32_t kEos = 50256;

struct Options {
  std::string preset = "gpt2", dir, dtype = "float32";
  int examples = 48, micro_batch = 12, output_length = 10, context = 75, spread = 35, threads = 0, reps = 3;
  bool sorted = false, eos = true;
};

Options parse(int argc, char** argv) {
  Options o;
  for (bench::FlagReader f(argc, argv); f.next();) {
    if (f.is("--preset")) o.preset = f.value();
    else if (f.is("--dir")) o.dir = f.value();
    else if (f.is("--dtype")) o.dtype = f.value();
    else if (f.is("--examples")) o.examples = f.integer();
    else if (f.is("--micro_batch_size")) o.micro_batch = f.integer();
    else if (f.is("--output_length")) o.output_length = f.integer();
    else if (f.is("--context")) o.context = f.integer();
    else if (f.is("--spread")) o.spread = f.integer();
    else if (f.is("--sorted")) o.sorted = true;
    else if (f.is("--eos")) o.eos = f.value() != "off";
    else if (f.is("--threads")) o.threads = f.integer();
    else if (f.is("--reps")) o.reps = f.integer();
    else throw Error("unknown flag " + f.flag());
  }
  if (o.examples < 1 || o.micro_batch < 1 || o.output_length < 1 || o.reps < 1) throw Error("counts must be >= 1");
  if (o.spread < 0 || o.context - o.spread < 1) throw Error("--context - --spread must be >= 1");
  if (o.dir.empty()) o.dir = (fs::temp_directory_path() / ("lmforge_bench_task_" + o.preset)).string();
  return o;
}

uint64_t next_random(uint64_t& state) {
  state = state * 6364136223846793005ULL + 1442695040888963407ULL;
  return state >> 33;
}

// Random prompts (deterministic LCG), no eos id in them.
std::vector<std::vector<int32_t>> make_prompts(const Options& o, int vocab) {
  std::vector<std::vector<int32_t>> out;
  uint64_t state = 2024;
  for (int d = 0; d < o.examples; ++d) {
    const int len = o.context - o.spread + static_cast<int>(next_random(state) % (2 * o.spread + 1));
    std::vector<int32_t> p;
    while (static_cast<int>(p.size()) < len) {
      const auto t = static_cast<int32_t>(next_random(state) % static_cast<uint64_t>(vocab));
      if (t != kEos) p.push_back(t);
    }
    out.push_back(std::move(p));
  }
  if (o.sorted)
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
  return out;
}

struct Run {
  double seconds = 1e30, prefill_seconds = 0;
  int64_t generated = 0;      // tokens the rows generated (up to and including an eos)
  int64_t fed = 0;            // tokens the layers ran: prompts (not their padding) + decode steps x rows
  int stopped = 0;            // rows that ended on eos before output_length tokens
  int calls = 0;
  std::vector<std::vector<int32_t>> outputs;  // generated tokens per example
};

// All examples, `batch` prompts per generate() call; kept in `best` when faster.
void run_once(const Model& m, const std::vector<std::vector<int32_t>>& prompts, int batch, const GenerationConfig& cfg,
              Run& best) {
  Run r;
  double prefill = 0;
  const auto t0 = Clock::now();
  for (size_t b = 0; b < prompts.size(); b += batch) {
    const std::vector<std::vector<int32_t>> chunk(prompts.begin() + b,
                                                  prompts.begin() + std::min(prompts.size(), b + batch));
    const auto c0 = Clock::now();
    bool first = true;
    int steps = 0;
    GenerationCallbacks cb;
    cb.on_tokens = [&](const std::vector<int32_t>&) {
      if (first) prefill += std::chrono::duration<double>(Clock::now() - c0).count();
      first = false;
      ++steps;
    };
    const GenerationOutput out = generate(m, chunk, cfg, cb);
    ++r.calls;
    for (const auto& p : chunk) r.fed += static_cast<int64_t>(p.size()) + steps - 1;
    for (const auto& seq : out.sequences) {
      std::vector<int32_t> gen;
      for (size_t i = out.prompt_length; i < seq.size(); ++i) {
        gen.push_back(seq[i]);
        if (cfg.eos_token_id.size() && seq[i] == kEos) break;
      }
      r.generated += static_cast<int64_t>(gen.size());
      if (static_cast<int>(gen.size()) < *cfg.max_new_tokens) ++r.stopped;
      r.outputs.push_back(std::move(gen));
    }
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.prefill_seconds = prefill;
  if (r.seconds < best.seconds) best = std::move(r);
}

}  // namespace

int main(int argc, char** argv) try {
  const Options o = parse(argc, argv);
  if (o.threads > 0) kernels::set_num_threads(o.threads);
  const auto wtype = kernels::weight_type_from_string(o.dtype);
  if (!wtype) throw Error("--dtype " + o.dtype + ": float32, bfloat16, float16, int8 or int8_dynamic");
  if (!fs::exists(fs::path(o.dir) / "config.json")) {
    std::printf("writing a random %s checkpoint to %s\n", o.preset.c_str(), o.dir.c_str());
    write_random_checkpoint(o.dir, random_checkpoint_config(o.preset), RandomCheckpointOptions{});
  }
  auto model = Model::load(o.dir, *wtype);
  const ModelConfig& c = model->config();
  const auto prompts = make_prompts(o, c.vocab_size);
  int64_t prompt_tokens = 0;
  for (const auto& p : prompts) prompt_tokens += static_cast<int64_t>(p.size());

  GenerationConfig cfg;  // greedy, as the task runner calls it
  cfg.max_new_tokens = o.output_length;
  cfg.pad_token_id = kEos;
  if (o.eos) cfg.eos_token_id = {kEos};

  std::printf("model            %s shape (%d layers, %d wide, vocab %d), %s, random weights, %s\n", o.preset.c_str(),
              c.n_layer, c.n_embd, c.vocab_size, kernels::to_string(*wtype), o.dir.c_str());
  std::printf("kernels          ISA path %s, %d threads\n", kernels::isa_description().c_str(),
              kernels::num_threads());
  std::printf("task             %d examples, prompts %d..%d tokens (mean %.1f)%s, greedy, max_new_tokens %d, eos %s\n",
              o.examples, o.context - o.spread, o.context + o.spread, static_cast<double>(prompt_tokens) / o.examples,
              o.sorted ? " sorted by length" : " in dataset order", o.output_length, o.eos ? "50256 (pad 50256)" : "off");
  std::printf("load average     %s (start)\n\n", bench::load_average().c_str());

  const std::vector<int> batches{1, o.micro_batch};
  std::vector<Run> best(batches.size());
  // The modes take turns in every repetition, so a change in the machine's load hits them alike.
  for (int rep = 0; rep < o.reps; ++rep)
    for (size_t i = 0; i < batches.size(); ++i) run_once(*model, prompts, batches[i], cfg, best[i]);

  std::printf("%6s %6s %11s %13s %10s %9s %9s %11s %9s %8s\n", "batch", "calls", "examples/s", "generated/s", "generated",
              "stopped", "prefill", "run tokens", "padding", "speed-up");
  const double base = o.examples / best[0].seconds;
  for (size_t i = 0; i < batches.size(); ++i) {
    const Run& r = best[i];
    int64_t padded = 0;
    for (size_t b = 0; b < prompts.size(); b += batches[i]) {
      size_t longest = 0;
      const size_t e = std::min(prompts.size(), b + batches[i]);
      for (size_t k = b; k < e; ++k) longest = std::max(longest, prompts[k].size());
      for (size_t k = b; k < e; ++k) padded += static_cast<int64_t>(longest - prompts[k].size());
    }
    std::printf("%6d %6d %11.2f %13.1f %10lld %9d %8.0f%% %11lld %8.1f%% %7.2fx\n", batches[i], r.calls,
                o.examples / r.seconds, r.generated / r.seconds, static_cast<long long>(r.generated), r.stopped,
                100.0 * r.prefill_seconds / r.seconds, static_cast<long long>(r.fed),
                100.0 * padded / (prompt_tokens + padded), o.examples / r.seconds / base);
  }
  int differ = 0;
  for (int k = 0; k < o.examples; ++k) differ += best[0].outputs[k] != best[1].outputs[k];
  std::printf("\nprefill = share of the time up to each call's first token; run tokens = tokens through the layers (prompts and decode "
              "steps; left padding is skipped)\npadding = left-padding share of the prompt positions\nexamples whose generated tokens differ between batch 1 and %d: %d of %d\n",
              o.micro_batch, differ, o.examples);
  std::printf("load average     %s (end)\n", bench::load_average().c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_task: %s\n", e.what());
  return 1;
}
