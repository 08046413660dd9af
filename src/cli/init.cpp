// lmforge init: writes a randomly initialised model as an HF checkpoint folder (for benchmarks,
// tests and from-scratch training, since no pretrained weights can be downloaded here).
#include <iostream>

#include "cli/command.h"
#include "cli/common.h"
#include "cli/options.h"
#include "lmforge/error.h"
#include "lmforge/model/save.h"

namespace lmforge::cli {
namespace {

struct Args {
  std::string save_path, preset = "gpt2", tokenizer, arch = "gpt2";
  std::optional<int> n_layer, n_head, n_embd, n_positions, vocab_size, rotary_dim;
  uint64_t seed = 42;
} args;

void setup(CLI::App& app) {
  app.add_option("--save_path", args.save_path, "Output folder (HF format)")->required();
  app.add_option("--preset", args.preset, "Shape preset: gpt2 (124M) | gpt2-medium | gpt2-large | gpt2-xl | gpt-j-6b")
      ->check(CLI::IsMember({"gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "gpt-j-6b"}));
  add_optional(app, "--n_layer", args.n_layer, "Override the preset's n_layer");
  add_optional(app, "--n_head", args.n_head, "Override the preset's n_head");
  add_optional(app, "--n_embd", args.n_embd, "Override the preset's n_embd");
  add_optional(app, "--n_positions", args.n_positions, "Override the preset's n_positions");
  add_optional(app, "--vocab_size", args.vocab_size, "Override the preset's vocab_size");
  add_optional(app, "--rotary_dim", args.rotary_dim, "GPT-J rotary_dim");
  app.add_option("--tokenizer", args.tokenizer, "Folder with vocab.json + merges.txt to copy in");
  app.add_option("--seed", args.seed, "Initialisation seed");
}

ModelConfig preset(const std::string& name) {
  ModelConfig c;
  if (name == "gpt2-medium") c.n_layer = 24, c.n_head = 16, c.n_embd = 1024;
  if (name == "gpt2-large") c.n_layer = 36, c.n_head = 20, c.n_embd = 1280;
  if (name == "gpt2-xl") c.n_layer = 48, c.n_head = 25, c.n_embd = 1600;
  if (name == "gpt-j-6b") {
    c.arch = Arch::GPTJ, c.model_type = "gptj", c.n_layer = 28, c.n_head = 16, c.n_embd = 4096;
    c.n_positions = 2048, c.vocab_size = 50400, c.rotary_dim = 64, c.tie_word_embeddings = false;
  }
  c.bos_token_id = c.eos_token_id = 50256;
  return c;
}

int run() {
  ModelConfig c = preset(args.preset);
  if (args.n_layer) c.n_layer = *args.n_layer;
  if (args.n_head) c.n_head = *args.n_head;
  if (args.n_embd) c.n_embd = *args.n_embd;
  if (args.n_positions) c.n_positions = *args.n_positions;
  if (args.vocab_size) c.vocab_size = *args.vocab_size;
  if (args.rotary_dim) c.rotary_dim = *args.rotary_dim;
  if (c.vocab_size <= 50256) c.bos_token_id = c.eos_token_id = c.vocab_size - 1;
  // Round-trip through the parser so every shape check of config.json applies here too.
  c = parse_model_config(model_config_json(c), "--preset/--n_* options");
  // Check the tokenizer files before writing anything, so a bad flag leaves no half-made folder.
  std::vector<std::filesystem::path> tokenizer_files;
  if (!args.tokenizer.empty())
    for (const char* f : {"vocab.json", "merges.txt"}) {
      const auto src = std::filesystem::path(args.tokenizer) / f;
      if (!std::filesystem::exists(src)) throw Error("--tokenizer: '" + src.string() + "' does not exist");
      tokenizer_files.push_back(src);
    }
  ModelWeights w = allocate_weights(c);
  init_random_weights(c, w, args.seed);
  save_pretrained(args.save_path, c, w);
  for (const auto& src : tokenizer_files)
    std::filesystem::copy_file(src, std::filesystem::path(args.save_path) / src.filename(),
                               std::filesystem::copy_options::overwrite_existing);
  std::cerr << "lmforge: wrote " << args.save_path << " (" << w.num_parameters() << " parameters)\n";
  return 0;
}

Command command{"init", "Write a randomly initialised GPT-2/GPT-J of a given shape as an HF folder", setup, run};

}  // namespace
}  // namespace lmforge::cli
