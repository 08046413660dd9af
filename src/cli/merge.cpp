// lmforge merge: a LoRA adapter folded into its base (peft's merge_and_unload + save_pretrained):
// a plain HF folder whose logits equal the unmerged model's, loadable without any LoRA code.
#include <iostream>

#include "cli/command.h"
#include "cli/common.h"
#include "lmforge/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/io/output_dir.h"
#include "lmforge/model/lora.h"
#include "lmforge/model/save.h"
#include "lmforge/model/weights.h"

namespace lmforge::cli {
namespace {

namespace fs = std::filesystem;

struct Args {
  std::string model, adapter, save_path;
  bool overwrite_output_dir = false;
} args;

void setup(CLI::App& app) {
  app.add_option("--model,-m", args.model, "Base HF checkpoint folder (float32, bfloat16 or float16 weights)")
      ->required();
  app.add_option("--adapter", args.adapter, "PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors)")
      ->required();
  app.add_option("--save_path,--output_dir", args.save_path, "Output folder: the merged HF checkpoint")->required();
  app.add_flag("--overwrite_output_dir", args.overwrite_output_dir,
               "Write into a --save_path that is not empty and not an earlier merge output");
}

// The record the adapter folder carries (finetune's training block), else the base's.
nlohmann::json training_block() {
  for (const std::string& dir : {args.adapter, args.model})
    if (auto rec = read_training_record(dir)) return {{"training", *rec}};
  return nullptr;
}

int run() {
  const fs::path save = args.save_path;
  check_output_dir(save, "merge", args.overwrite_output_dir, "--save_path");
  const ModelConfig cfg = load_model_config(fs::path(args.model) / "config.json");
  if (cfg.quantization)
    throw Error("--model: '" + args.model + "' is quantized (int8); merge the adapter into the float model, then "
                "quantize the merged folder");
  const LoraAdapter adapter = load_lora_adapter(args.adapter, cfg);
  ModelWeights w = allocate_weights(cfg);
  load_weights(Checkpoint::open(args.model), cfg, w);
  merge_lora(adapter, w);

  // Everything into a temporary folder beside the target, then each file renamed into place.
  const fs::path tmp = save.string() + ".lmforge-tmp";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp);
  save_pretrained(tmp, cfg, w);
  copy_tokenizer_files(fs::exists(fs::path(args.adapter) / "vocab.json") ? args.adapter : args.model, tmp);
  write_output_record(tmp, "merge", training_block());
  fs::create_directories(save);
  for (const auto& e : fs::directory_iterator(tmp)) fs::rename(e.path(), save / e.path().filename());
  fs::remove_all(tmp, ec);
  std::cerr << "lmforge: merged " << adapter.modules.size() << " LoRA modules (r " << adapter.config.r
            << ", scaling " << adapter.config.scaling() << ") of " << args.adapter << " into " << args.model
            << "; wrote " << save.string() << "\n";
  return 0;
}

Command command{"merge", "Fold a LoRA adapter into its base model and save a plain HF folder", setup, run};

}  // namespace
}  // namespace lmforge::cli
