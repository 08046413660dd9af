#pragma once
// Helpers shared by the subcommands: option parsing conventions and file output.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "lmforge/kernels/kernels.h"
#include "lmforge/model/model.h"
#include "lmforge/tokenizer/tokenizer.h"

namespace lmforge::cli {

// "15496 995" or "15496,995" -> ids. Throws lmforge::Error naming `flag` on anything else.
std::vector<int32_t> parse_ids(const std::string& text, const std::string& flag);

// The folder's tokenizer when it has one (vocab.json + merges.txt or tokenizer.json), else nullopt.
std::optional<Tokenizer> load_tokenizer_if_present(const std::filesystem::path& dir);

// The folder's tokenizer, checked against the model: a tokenizer with more tokens than the model's
// vocab_size would produce ids the embedding does not have (a smaller one is fine: GPT-J pads its vocab).
std::optional<Tokenizer> load_tokenizer_for_model(const std::filesystem::path& dir, int model_vocab_size);

// Writes `bytes` to `path` through a temp file and rename, so a reader never sees half a file.
void write_file_atomic(const std::filesystem::path& path, const std::string& bytes);

// A float32 .npy file (numpy.save layout) of the given shape, written atomically.
void write_npy(const std::filesystem::path& path, const std::vector<int64_t>& shape, const float* data);

// A boolean option in HF style: `--name` alone means true, `--name true|false` sets it.
CLI::Option* add_bool_option(CLI::App& app, const std::string& name, std::optional<bool>& target,
                             const std::string& help);

// One flag per configuration key (`--key VALUE`; keys for which is_bool() holds may be given
// bare, meaning true), appended to `overrides` in command-line order so they can be applied over
// a YAML file afterwards. The YAML-only blocks `generation` and `version` get no flag.
void add_key_flags(CLI::App& app, const std::vector<std::string>& keys,
                   const std::function<bool(const std::string&)>& is_bool,
                   const std::function<std::string(const std::string&)>& help,
                   std::vector<std::pair<std::string, std::string>>& overrides);

// Applies OMP/OpenBLAS thread count (0 = all cores).
void apply_threads(int threads);

// --dtype: how the weight matrices are held for inference. `text` is auto (default: nullopt, the
// folder's own types), float32, bfloat16, float16, int8 or int8_dynamic (also fp32, bf16, fp16,
// half). Throws lmforge::Error naming `flag` otherwise.
std::optional<kernels::WeightType> parse_dtype(const std::string& text, const std::string& flag = "--dtype");
CLI::Option* add_dtype_option(CLI::App& app, std::string& target);
// --adapter DIR: a PEFT LoRA adapter folder applied unmerged on top of --model.
CLI::Option* add_adapter_option(CLI::App& app, std::string& target);
// The model of --model (Model::load with --dtype) and, when `adapter` is not empty, that LoRA
// adapter applied unmerged. A --model folder that is itself an adapter (adapter_config.json, no
// config.json; what `lmforge finetune --lora` writes) loads its base from the adapter's
// base_model_name_or_path, as peft's AutoPeftModelForCausalLM does.
std::unique_ptr<Model> load_model(const std::string& model, const std::string& dtype, const std::string& adapter = "");
// The types a loaded model's matrices are held in, e.g. "int8_dynamic, 3 in float32".
std::string describe_weights(const Model& model);

}  // namespace lmforge::cli
