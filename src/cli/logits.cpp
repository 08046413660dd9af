// lmforge logits: the [T, vocab] float32 logits of one forward pass, as a .npy file.
#include <iostream>

#include "cli/command.h"
#include "cli/common.h"
#include "lmforge/error.h"
#include "lmforge/model/model.h"

namespace lmforge::cli {
namespace {

struct Args {
  std::string model, prompt, prompt_ids, npy, dtype = "auto";
  std::string adapter;  // --adapter: PEFT LoRA folder applied unmerged
  int threads = 0;
} args;

void setup(CLI::App& app) {
  app.add_option("--model,-m", args.model, "HF checkpoint folder")->required();
  app.add_option("--prompt_ids", args.prompt_ids, "Input token ids, e.g. \"464 3290\"");
  app.add_option("--prompt,-p", args.prompt, "Input text (needs the folder's tokenizer)");
  app.add_option("--npy", args.npy, "Output .npy file: float32 [T, vocab]")->required();
  app.add_option("--threads", args.threads, "Threads (default: all cores)");
  add_dtype_option(app, args.dtype);
  add_adapter_option(app, args.adapter);
}

int run() {
  apply_threads(args.threads);
  if (args.prompt_ids.empty() == args.prompt.empty()) throw Error("give exactly one of --prompt_ids or --prompt");
  auto model = load_model(args.model, args.dtype, args.adapter);
  std::vector<int32_t> ids;
  if (!args.prompt_ids.empty()) {
    ids = parse_ids(args.prompt_ids, "--prompt_ids");
  } else {
    auto tok = load_tokenizer_for_model(args.model, model->vocab_size());
    if (!tok) throw Error("--prompt: the model folder '" + args.model + "' has no tokenizer; use --prompt_ids");
    ids = tok->encode(args.prompt);
    if (ids.empty()) throw Error("--prompt: the prompt is empty");
  }
  if (static_cast<int>(ids.size()) > model->max_positions())
    throw Error("--prompt_ids: " + std::to_string(ids.size()) + " tokens exceed the model's context (n_positions " +
                std::to_string(model->max_positions()) + ")");
  const auto logits = model->logits(ids);
  write_npy(args.npy, {static_cast<int64_t>(ids.size()), model->vocab_size()}, logits.data());
  std::cerr << "lmforge: wrote " << args.npy << " [" << ids.size() << ", " << model->vocab_size() << "]\n";
  return 0;
}

Command command{"logits", "Write the logits of one forward pass as a float32 .npy [T, vocab]", setup, run};

}  // namespace
}  // namespace lmforge::cli
