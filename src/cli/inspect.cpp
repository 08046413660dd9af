// lmforge inspect DIR: what a checkpoint folder holds (seed 001's inspection cells as a command).
#include <iostream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/common.h"
#include "lmforge/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/model/config.h"
#include "lmforge/model/weights.h"

namespace lmforge::cli {
namespace {

struct Args {
  std::string dir;
  bool json = false;
} args;

void setup(CLI::App& app) {
  app.add_option("dir", args.dir, "HF checkpoint folder")->required();
  app.add_flag("--json", args.json, "Print as JSON");
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

nlohmann::json special(const std::optional<Tokenizer>& tok, std::optional<int32_t> id) {
  if (!id) return nullptr;
  return {{"id", *id}, {"token", tok ? nlohmann::json(tok->id_to_token(*id)) : nlohmann::json(nullptr)}};
}

int run() {
  const std::filesystem::path dir = args.dir;
  if (!std::filesystem::is_directory(dir)) throw Error("model folder '" + args.dir + "' does not exist");
  const ModelConfig c = load_model_config(dir / "config.json");
  const Checkpoint ckpt = Checkpoint::open(dir);
  const auto tok = load_tokenizer_if_present(dir);

  // Parameters as HF counts them (a tied head counted once): the slices of our layout.
  int64_t n_params = 0;
  for (const auto& s : allocate_weights(c).slices) {
    int64_t n = 1;
    for (auto d : s.hf_shape) n *= d;
    n_params += n;
  }
  std::set<std::string> dtypes;
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& [name, t] : ckpt.tensors()) {
    dtypes.insert(dtype_name(t.dtype));
    tensors.push_back({{"name", name}, {"shape", t.shape}, {"dtype", dtype_name(t.dtype)}});
  }
  std::string dtype;
  for (const auto& d : dtypes) dtype += (dtype.empty() ? "" : "+") + d;

  nlohmann::json j{
      {"model_type", c.model_type},
      {"weights", ckpt.description()},
      {"n_layer", c.n_layer}, {"n_head", c.n_head}, {"n_embd", c.n_embd}, {"n_inner", c.inner_dim()},
      {"n_positions", c.n_positions}, {"vocab_size", c.vocab_size}, {"activation_function", c.activation_name},
      {"tie_word_embeddings", c.tie_word_embeddings}, {"parameters", n_params}, {"dtype", dtype},
      {"tensors", tensors}};
  if (c.arch == Arch::GPTJ) j["rotary_dim"] = c.rotary_dim;
  if (c.quantization)
    j["quantization"] = {{"scheme", c.quantization->scheme},
                         {"modules_in_higher_precision", c.quantization->modules_in_higher_precision}};
  if (tok) {
    j["tokenizer"] = {{"vocab_size", tok->vocab_size()}, {"bos", special(tok, tok->bos_id())},
                      {"eos", special(tok, tok->eos_id())}, {"unk", special(tok, tok->unk_id())},
                      {"pad", special(tok, tok->pad_id())}, {"model_max_length", tok->model_max_length()}};
  } else {
    j["tokenizer"] = nullptr;
  }
  j["config_special_ids"] = {{"bos_token_id", c.bos_token_id ? nlohmann::json(*c.bos_token_id) : nlohmann::json(nullptr)},
                             {"eos_token_id", c.eos_token_id ? nlohmann::json(*c.eos_token_id) : nlohmann::json(nullptr)},
                             {"pad_token_id", c.pad_token_id ? nlohmann::json(*c.pad_token_id) : nlohmann::json(nullptr)}};
  if (args.json) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << "model_type:        " << c.model_type << "\n"
            << "weights:           " << ckpt.description() << " (" << dtype << ")\n"
            << "parameters:        " << n_params << "\n"
            << "layers/heads/embd: " << c.n_layer << " / " << c.n_head << " / " << c.n_embd << " (inner " << c.inner_dim()
            << ", head_dim " << c.head_dim() << ")\n"
            << "max positions:     " << c.n_positions << "\n"
            << "vocab_size:        " << c.vocab_size << "\n"
            << "activation:        " << c.activation_name << "\n"
            << "tied lm_head:      " << (c.tie_word_embeddings ? "yes" : "no") << "\n";
  if (c.arch == Arch::GPTJ) std::cout << "rotary_dim:        " << c.rotary_dim << "\n";
  if (c.quantization)
    std::cout << "quantization:      int8 " << c.quantization->scheme << ", per-output-row scales; "
              << c.quantization->modules_in_higher_precision.size() << " matrices in higher precision\n";
  if (tok) {
    auto show = [&](const char* label, std::optional<int32_t> id) {
      std::cout << label << (id ? tok->id_to_token(*id) + " (" + std::to_string(*id) + ")" : std::string("(none)")) << "\n";
    };
    std::cout << "tokenizer vocab:   " << tok->vocab_size() << "\n";
    show("bos token:         ", tok->bos_id());
    show("eos token:         ", tok->eos_id());
    show("unk token:         ", tok->unk_id());
    show("pad token:         ", tok->pad_id());
    std::cout << "model_max_length:  " << tok->model_max_length() << "\n";
  } else {
    std::cout << "tokenizer:         (none in folder)\n";
  }
  std::cout << "tensors:\n";
  for (const auto& [name, t] : ckpt.tensors())
    std::cout << "  " << name << "  " << shape_str(t.shape) << "  " << dtype_name(t.dtype) << "\n";
  return 0;
}

Command command{"inspect", "Show a checkpoint folder: config, tokenizer, special tokens, parameter count, tensors", setup, run};

}  // namespace
}  // namespace lmforge::cli
