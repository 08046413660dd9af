// Writes a random-weight HF checkpoint folder of a real model shape (GPT-J-6B, GPT-2 .. GPT-2 XL),
// streaming tensor by tensor so the whole model is never in memory: what `save_pretrained` of a
// freshly initialised HF model would write, in the stored dtype chosen. The writer is
// write_random_checkpoint (include/lmforge/model/random_checkpoint.h), shared with `lmforge init`.
// For benchmarks of models too big to hold twice (GPT-J-6B is 12.1 GB in bf16), since no
// pretrained weights can be downloaded here. See docs/PERFORMANCE.md.
//
//   make_random_checkpoint --preset gpt-j-6b|gpt2|gpt2-medium|gpt2-large|gpt2-xl
//                          --dtype bfloat16|float16|float32 --out DIR
//                          [--max_shard_size 5GB] [--seed N] [--tokenizer DIR] [--threads N]
//                          [--n_layer N] [--n_embd N] [--n_head N] [--n_inner N] [--n_positions N]
//                          [--vocab_size N] [--rotary_dim N] [--keep_page_cache] [--verify]
//
// Folder: config.json (HF's values for the preset, torch_dtype = --dtype), generation_config.json,
// model.safetensors, or model-0000i-of-0000K.safetensors + model.safetensors.index.json when the
// tensors exceed --max_shard_size (HF's rule: shards filled in named_parameters() order, a new one
// when the next tensor would tip the current one over the limit, a bigger tensor alone), and the
// tokenizer files of --tokenizer (default data/gpt2-tokenizer when it exists).
// Values: see the header (N(0, 0.02) from a counter-based generator; the same bytes whatever the
// thread count or the sharding). The folder is staged next to --out and renamed into place;
// written pages are flushed and dropped from the page cache as it goes (--keep_page_cache keeps
// them), so a 12 GB write does not push the rest of a shared machine out of memory.
// --verify reopens the folder with lmforge's loader (Checkpoint::open), checks every tensor's
// dtype, shape and a sample of its values, and for models under 1.5 B parameters runs Model::load
// and one forward pass.
#include <cstdio>
#include <filesystem>
#include <string>

#include "lmforge/error.h"
#include "lmforge/kernels/kernels.h"
#include "lmforge/model/random_checkpoint.h"

using namespace lmforge;
namespace fs = std::filesystem;

namespace {

void usage() {
  std::fprintf(stderr,
               "usage: make_random_checkpoint --preset gpt-j-6b|gpt2|gpt2-medium|gpt2-large|gpt2-xl\n"
               "         --dtype bfloat16|float16|float32 --out DIR\n"
               "         [--max_shard_size 5GB] [--seed N] [--tokenizer DIR] [--threads N] [--n_layer N] [--n_embd N]\n"
               "         [--n_head N] [--n_inner N] [--n_positions N] [--vocab_size N] [--rotary_dim N]\n"
               "         [--keep_page_cache] [--verify]\n");
}

int positive_int(const std::string& flag, const std::string& v) {
  size_t used = 0;
  long long x = 0;
  try {
    x = std::stoll(v, &used);
  } catch (...) {
    used = 0;
  }
  if (used != v.size() || x <= 0 || x > (1ll << 30)) throw Error(flag + ": expected a positive integer, got '" + v + "'");
  return static_cast<int>(x);
}

uint64_t seed_value(const std::string& v) {
  size_t used = 0;
  unsigned long long x = 0;
  try {
    x = std::stoull(v, &used);
  } catch (...) {
    used = 0;
  }
  if (used != v.size() || v.empty() || v[0] == '-') throw Error("--seed: expected a non-negative integer, got '" + v + "'");
  return x;
}

}  // namespace

int main(int argc, char** argv) try {
  std::string preset, dtype_arg, out, max_shard = "5GB", tokenizer;
  bool tokenizer_given = false, do_verify = false;
  int threads = 0;
  ShapeOverrides ov;
  RandomCheckpointOptions o;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--help" || k == "-h") {
      usage();
      return 0;
    }
    if (k == "--keep_page_cache") { o.drop_page_cache = false; continue; }
    if (k == "--verify") { do_verify = true; continue; }
    if (i + 1 >= argc) { std::fprintf(stderr, "error: option %s needs a value\n", k.c_str()); return 2; }
    const std::string v = argv[++i];
    if (k == "--preset") preset = v;
    else if (k == "--dtype") dtype_arg = v;
    else if (k == "--out") out = v;
    else if (k == "--max_shard_size") max_shard = v;
    else if (k == "--tokenizer") tokenizer = v, tokenizer_given = true;
    else if (k == "--seed") o.seed = seed_value(v);
    else if (k == "--threads") threads = positive_int(k, v);
    else if (k == "--n_layer") ov.n_layer = positive_int(k, v);
    else if (k == "--n_embd") ov.n_embd = positive_int(k, v);
    else if (k == "--n_head") ov.n_head = positive_int(k, v);
    else if (k == "--n_inner") ov.n_inner = positive_int(k, v);
    else if (k == "--n_positions") ov.n_positions = positive_int(k, v);
    else if (k == "--vocab_size") ov.vocab_size = positive_int(k, v);
    else if (k == "--rotary_dim") ov.rotary_dim = positive_int(k, v);
    else { std::fprintf(stderr, "error: unknown option %s\n", k.c_str()); usage(); return 2; }
  }
  if (preset.empty() || dtype_arg.empty() || out.empty()) { usage(); return 2; }
  o.dtype = parse_stored_dtype(dtype_arg, "--dtype");
  o.max_shard_bytes = parse_shard_size(max_shard, "--max_shard_size");
  if (threads > 0) kernels::set_num_threads(threads);
  const ModelConfig c = random_checkpoint_config(preset, ov);
  if (!tokenizer_given && fs::is_directory("data/gpt2-tokenizer")) tokenizer = "data/gpt2-tokenizer";
  o.tokenizer = tokenizer;
  o.progress = [](const std::string& line) {
    std::printf("  %s\n", line.c_str());
    std::fflush(stdout);
  };

  std::printf("writing %s: %s shape, %s, seed %llu, %d threads\n", out.c_str(), preset.c_str(), dtype_arg.c_str(),
              static_cast<unsigned long long>(o.seed), kernels::num_threads());
  std::fflush(stdout);
  const RandomCheckpointSummary sum = write_random_checkpoint(out, c, o);
  std::printf("wrote %.3f B parameters, %.2f GB in %zu file%s in %.1f s (%.0f MB/s; generating the values took %.1f s of it)%s%s\n",
              sum.parameters / 1e9, sum.tensor_bytes / 1e9, sum.weight_files.size(), sum.weight_files.size() == 1 ? "" : "s",
              sum.seconds, sum.tensor_bytes / 1e6 / sum.seconds, sum.generate_seconds,
              tokenizer.empty() ? "" : "; tokenizer from ", tokenizer.c_str());
  std::fflush(stdout);
  if (do_verify) std::fputs(verify_random_checkpoint(out, c, o).c_str(), stdout);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
