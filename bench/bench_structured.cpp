// Structured-output overhead: what the constraint adds to each generated token on GPT-2's real
// vocabulary (50257 tokens), next to one decode step of a 124M model measured in the same run. See
// docs/STRUCTURED.md and docs/PERFORMANCE.md.
//
//   bench_structured [--dir DIR] [--tokenizer DIR] [--threads N] [--reps 5]
//
// Each workload is a valid output, tokenized with GPT-2's tokenizer, fed token by token through
// the StructuredOutputProcessor exactly as generate() calls it (the row's ids, a 50257-wide logits
// row). cold: a freshly compiled constraint, so every automaton state is met for the first time and
// its mask is computed by walking the token trie; warm: the same constraint again in a new
// generate() call (new per-call prefix tree; automaton transitions and masks cached). Decode step:
// one single-token forward of the random-weight 124M model (batch 1, after a 16-token prompt),
// float32, the best mean of --reps runs of 32 steps.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "bench_util.h"
#include "generate/processors.h"
#include "lmforge/kernels/kernels.h"
#include "lmforge/model/model.h"
#include "lmforge/model/random_checkpoint.h"
#include "lmforge/structured/constraint.h"
#include "lmforge/tokenizer/tokenizer.h"

using namespace lmforge;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Workload {
  const char* name;
  structured::ConstraintSpec spec;
  const char* output;  // a valid output the run feeds token by token
};

const char* kSchema = R"({"type": "object", "properties": {
  "name": {"type": "string"}, "age": {"type": "integer"}, "email": {"type": "string"},
  "role": {"enum": ["admin", "editor", "viewer"]}, "active": {"type": "boolean"},
  "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 8},
  "address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
              "required": ["city"]}},
  "required": ["name", "age", "role", "active"]})";

const Workload kWorkloads[] = {
    {"json_schema", {structured::ConstraintKind::JsonSchema, kSchema},
     R"({"name": "Ada Lovelace", "age": 36, "role": "editor", "active": true, "email": "ada@example.com", )"
     R"("tags": ["math", "poetry", "engines"], "address": {"city": "London", "zip": "W1J 7NT"}})"},
    {"regex", {structured::ConstraintKind::Regex,
               R"((19|20)\d\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]) [A-Z][a-z]+( [a-z]+){3,12}\.)"},
     "2024-05-17 The meeting was moved to the big hall downstairs."},
};

// Mean seconds of one single-token forward at batch 1.
double decode_step(const Model& m, int reps) {
  const int prompt = 16, steps = 32, V = m.vocab_size();
  double best = 1e9;
  for (int r = 0; r < reps; ++r) {
    auto s = m.start(1, prompt + steps);
    std::vector<float> logits(V);
    std::vector<int32_t> tok(prompt), pos(prompt);
    std::vector<uint8_t> mask(prompt, 1);
    for (int i = 0; i < prompt; ++i) tok[i] = (i * 7919) % V, pos[i] = i;
    s->forward(prompt, tok.data(), pos.data(), mask.data(), logits.data());
    const auto t0 = Clock::now();
    for (int k = 0; k < steps; ++k) {
      int32_t t = (k * 31) % V, p = prompt + k;
      uint8_t one = 1;
      s->forward(1, &t, &p, &one, logits.data());
    }
    best = std::min(best, seconds_since(t0) / steps);
  }
  return best;
}

struct PerToken {
  double mean = 0, max = 0;
};

// One pass of the output through a new processor (one generate() call): per-token seconds.
PerToken feed(const std::shared_ptr<const structured::TokenConstraint>& c, const std::vector<int32_t>& prompt,
              const std::vector<int32_t>& output, const std::vector<float>& logits) {
  gen::StructuredOutputProcessor p(c, static_cast<int>(prompt.size()), {50256});
  std::vector<int32_t> ids = prompt;
  std::vector<float> scores;
  PerToken out;
  double total = 0;
  for (size_t i = 0; i <= output.size(); ++i) {  // the last step is the one that allows eos
    scores = logits;
    const auto t0 = Clock::now();
    p.apply(ids, scores.data(), static_cast<int>(scores.size()));
    const double s = seconds_since(t0);
    total += s;
    out.max = std::max(out.max, s);
    const int32_t expected = i < output.size() ? output[i] : 50256;
    if (!std::isfinite(scores[expected])) throw Error("the workload's token " + std::to_string(i) + " was masked");
    if (i < output.size()) ids.push_back(output[i]);
  }
  out.mean = total / static_cast<double>(output.size() + 1);
  return out;
}

}  // namespace

int main(int argc, char** argv) try {
  std::string dir = "/tmp/lmforge-bench-gpt2", tok_dir = "tests/data/tokenizer";
  int threads = 0, reps = 5;
  for (bench::FlagReader f(argc, argv); f.next();) {
    if (f.is("--dir")) dir = f.value();
    else if (f.is("--tokenizer")) tok_dir = f.value();
    else if (f.is("--threads")) threads = f.integer();
    else if (f.is("--reps")) reps = f.integer();
    else throw Error("unknown flag " + f.flag() + " (--dir, --tokenizer, --threads, --reps)");
  }
  if (threads > 0) kernels::set_num_threads(threads);
  if (!fs::exists(fs::path(dir) / "config.json")) {
    std::printf("writing a random gpt2 checkpoint to %s\n", dir.c_str());
    write_random_checkpoint(dir, random_checkpoint_config("gpt2"), RandomCheckpointOptions{});
  }
  auto model = Model::load(dir, kernels::WeightType::F32);
  const Tokenizer tok = Tokenizer::from_dir(tok_dir);
  std::printf("kernels          ISA path %s, %d threads; load average %s\n", kernels::isa_description().c_str(),
              kernels::num_threads(), bench::load_average().c_str());

  const auto t_vocab = Clock::now();
  const auto vocab = structured::vocabulary_of(tok);
  std::printf("vocabulary       %d tokens, trie of %zu nodes built in %.1f ms (once per tokenizer)\n", vocab->size(),
              vocab->trie().node_count(), 1e3 * seconds_since(t_vocab));
  const double step = decode_step(*model, reps);
  std::printf("decode step      %.2f ms (124M, float32, batch 1)\n\n", 1e3 * step);

  std::vector<float> logits(model->vocab_size());
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>((i * 2654435761u) % 1000) / 100.0f;
  const std::vector<int32_t> prompt = tok.encode("Output:");
  std::printf("%-12s %6s %9s | %-28s | %-28s\n", "workload", "tokens", "compile", "cold ms/token (mean, max)",
              "warm ms/token (mean, max)");
  for (const Workload& w : kWorkloads) {
    const auto output = tok.encode(w.output);
    const auto t0 = Clock::now();
    auto c = structured::compile_constraint(w.spec, vocab);
    const double compile = seconds_since(t0);
    const PerToken cold = feed(c, prompt, output, logits);
    PerToken warm{1e9, 0};
    for (int r = 0; r < reps; ++r) {
      const PerToken p = feed(c, prompt, output, logits);
      if (p.mean < warm.mean) warm = p;
    }
    std::printf("%-12s %6zu %7.2fms | %7.3f (%5.1f%%) %7.3f max | %7.4f (%5.2f%%) %7.3f max   [%zu states]\n", w.name,
                output.size(), 1e3 * compile, 1e3 * cold.mean, 100 * cold.mean / step, 1e3 * cold.max,
                1e3 * warm.mean, 100 * warm.mean / step, 1e3 * warm.max, c->automaton_states());
  }
  std::printf("\n(%% = share of one decode step)\n");
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
