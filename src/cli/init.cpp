// lmforge init: writes a randomly initialised model as an HF checkpoint folder (for benchmarks,
// tests and from-scratch training, since no pretrained weights can be downloaded here). The
// writer streams tensor by tensor (write_random_checkpoint, shared with
// bench/make_random_checkpoint), so even a GPT-J-6B folder is written without holding the model.
#include <iostream>

#include "cli/command.h"
#include "cli/common.h"
#include "cli/options.h"
#include "lmforge/error.h"
#include "lmforge/io/output_dir.h"
#include "lmforge/model/random_checkpoint.h"
#include "lmforge/tokenizer/tokenizer.h"

namespace lmforge::cli {
namespace {

struct Args {
  std::string save_path, preset = "gpt2", tokenizer, dtype = "float32", max_shard_size = "5GB";
  ShapeOverrides shape;
  uint64_t seed = 42;
  bool overwrite_output_dir = false;
} args;

void setup(CLI::App& app) {
  app.add_option("--save_path", args.save_path, "Output folder (HF format)")->required();
  app.add_flag("--overwrite_output_dir", args.overwrite_output_dir,
               "Write into --save_path even when it holds files that are not an earlier init output (HF's flag)");
  app.add_option("--preset", args.preset, "Shape preset: gpt2 (124M) | gpt2-medium | gpt2-large | gpt2-xl | gpt-j-6b")
      ->check(CLI::IsMember(random_checkpoint_presets()));
  add_optional(app, "--n_layer", args.shape.n_layer, "Override the preset's n_layer");
  add_optional(app, "--n_head", args.shape.n_head, "Override the preset's n_head");
  add_optional(app, "--n_embd", args.shape.n_embd, "Override the preset's n_embd");
  add_optional(app, "--n_inner", args.shape.n_inner, "Override the MLP width (default 4 * n_embd)");
  add_optional(app, "--n_positions", args.shape.n_positions, "Override the preset's n_positions");
  add_optional(app, "--vocab_size", args.shape.vocab_size, "Override the preset's vocab_size");
  add_optional(app, "--rotary_dim", args.shape.rotary_dim, "GPT-J rotary_dim (gpt-j-6b preset only)");
  app.add_option("--dtype", args.dtype, "Stored weight type: float32 (default) | bfloat16 | float16");
  app.add_option("--max_shard_size", args.max_shard_size,
                 "Split the weights into model-0000i-of-0000N.safetensors shards above this size (HF's default 5GB)");
  app.add_option("--tokenizer", args.tokenizer, "Folder with vocab.json + merges.txt (or tokenizer.json) to copy in");
  app.add_option("--seed", args.seed, "Initialisation seed");
}

int run() {
  // Every flag is checked before anything is written, so a bad one leaves no half-made folder.
  const ModelConfig c = random_checkpoint_config(args.preset, args.shape);
  RandomCheckpointOptions o;
  o.dtype = parse_stored_dtype(args.dtype, "--dtype");
  o.max_shard_bytes = parse_shard_size(args.max_shard_size, "--max_shard_size");
  o.seed = args.seed;
  o.tokenizer = args.tokenizer;
  check_output_dir(args.save_path, "init", args.overwrite_output_dir, "--save_path");
  // The record goes into the staging folder, so it appears only beside a complete checkpoint.
  o.before_publish = [](const std::filesystem::path& staging) { write_output_record(staging, "init"); };
  const RandomCheckpointSummary sum = write_random_checkpoint(args.save_path, c, o);
  std::cerr << "lmforge: wrote " << args.save_path << " (" << sum.parameters << " parameters, " << args.dtype << ", "
            << sum.weight_files.size() << " weight file" << (sum.weight_files.size() == 1 ? "" : "s") << ")\n";
  if (!args.tokenizer.empty()) {
    // GPT-J-6B itself pads GPT-2's 50257 tokens to 50400 rows; an untrained model then writes ids
    // with no token, which decode as nothing (as in HF). Said once here so it is not a surprise.
    const int32_t n_tok = Tokenizer::from_dir(args.save_path).vocab_size();
    if (n_tok < c.vocab_size)
      std::cerr << "lmforge: note: vocab_size " << c.vocab_size << " is larger than the tokenizer's " << n_tok
                << " tokens: ids " << n_tok << "-" << c.vocab_size - 1
                << " have no token and decode as nothing (--vocab_size " << n_tok << " to match it)\n";
  }
  return 0;
}

Command command{"init", "Write a randomly initialised GPT-2/GPT-J of a given shape as an HF folder", setup, run};

}  // namespace
}  // namespace lmforge::cli
