#include "cli/common.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "lmforge/error.h"
#include "lmforge/kernels/kernels.h"
#include "lmforge/model/lora.h"
#include "lmforge/model/weights.h"

namespace lmforge::cli {

std::vector<int32_t> parse_ids(const std::string& text, const std::string& flag) {
  std::vector<int32_t> ids;
  std::string cleaned = text;
  for (char& ch : cleaned)
    if (ch == ',' || ch == '[' || ch == ']') ch = ' ';
  std::istringstream in(cleaned);
  std::string tok;
  while (in >> tok) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(tok, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != tok.size() || v < 0 || v > INT32_MAX)
      throw Error(flag + ": '" + tok + "' is not a token id (expected non-negative integers)");
    ids.push_back(static_cast<int32_t>(v));
  }
  if (ids.empty()) throw Error(flag + ": no token ids given");
  return ids;
}

std::optional<Tokenizer> load_tokenizer_if_present(const std::filesystem::path& dir) {
  const bool has = std::filesystem::exists(dir / "tokenizer.json") ||
                   (std::filesystem::exists(dir / "vocab.json") && std::filesystem::exists(dir / "merges.txt"));
  if (!has) return std::nullopt;
  return Tokenizer::from_dir(dir);
}

std::optional<Tokenizer> load_tokenizer_for_model(const std::filesystem::path& dir, int model_vocab_size) {
  auto tok = load_tokenizer_if_present(dir);
  if (tok && tok->vocab_size() > model_vocab_size) {
    const char* file = std::filesystem::exists(dir / "tokenizer.json") ? "tokenizer.json" : "vocab.json";
    throw Error((dir / file).string() + ": the tokenizer has " + std::to_string(tok->vocab_size()) +
                " tokens but config.json says vocab_size " + std::to_string(model_vocab_size));
  }
  return tok;
}

void write_file_atomic(const std::filesystem::path& path, const std::string& bytes) {
  const std::filesystem::path tmp = path.string() + ".tmp." + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error("cannot write '" + path.string() + "'");
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      std::filesystem::remove(tmp);
      throw Error("cannot write '" + path.string() + "' (disk full?)");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp);
    throw Error("cannot write '" + path.string() + "': " + ec.message());
  }
}

void write_npy(const std::filesystem::path& path, const std::vector<int64_t>& shape, const float* data) {
  std::string dims;
  int64_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    dims += (i ? ", " : "") + std::to_string(shape[i]);
    n *= shape[i];
  }
  if (shape.size() == 1) dims += ",";  // numpy writes (3,) for one dimension
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  // Total header (magic 6 + version 2 + length 2 + text + '\n') padded to a multiple of 64.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string bytes = std::string("\x93NUMPY\x01\x00", 8);
  bytes.push_back(static_cast<char>(header.size() & 0xff));
  bytes.push_back(static_cast<char>(header.size() >> 8));
  bytes += header;
  bytes.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n) * sizeof(float));
  write_file_atomic(path, bytes);
}

CLI::Option* add_bool_option(CLI::App& app, const std::string& name, std::optional<bool>& target,
                             const std::string& help) {
  return app
      .add_option_function<std::string>(
          name,
          [&target, name](const std::string& v) {
            if (v.empty() || v == "true" || v == "True" || v == "1") target = true;
            else if (v == "false" || v == "False" || v == "0") target = false;
            else throw CLI::ValidationError(name, "expected true or false, got '" + v + "'");
          },
          help)
      ->expected(0, 1);
}

void apply_threads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  kernels::set_num_threads(threads);
}

void add_key_flags(CLI::App& app, const std::vector<std::string>& keys,
                   const std::function<bool(const std::string&)>& is_bool,
                   const std::function<std::string(const std::string&)>& help,
                   std::vector<std::pair<std::string, std::string>>& overrides) {
  for (const std::string& key : keys) {
    if (key == "generation" || key == "version") continue;
    const bool boolean = is_bool(key);
    // A bare boolean flag means true; any other key keeps an empty value as given (--prefix '').
    auto* opt = app.add_option_function<std::string>(
        "--" + key,
        [key, boolean, &overrides](const std::string& v) { overrides.emplace_back(key, v.empty() && boolean ? "true" : v); },
        help(key));
    if (boolean) opt->expected(0, 1);
  }
}

std::optional<kernels::WeightType> parse_dtype(const std::string& text, const std::string& flag) {
  if (text == "auto") return std::nullopt;
  if (const auto type = kernels::weight_type_from_string(text)) return *type;
  throw Error(flag + ": unknown dtype '" + text +
              "' (auto, float32, bfloat16, float16, int8, int8_dynamic or bfloat16_compute)");
}

CLI::Option* add_dtype_option(CLI::App& app, std::string& target) {
  return app.add_option("--dtype", target,
                        "Weight matrices for inference: auto (default: as the folder stores them, i.e. a "
                        "`lmforge quantize` folder's int8 plan, else float32 as HF), float32, bfloat16, float16, "
                        "int8 (per-row symmetric, weight-only), int8_dynamic (int8 weights and per-token int8 "
                        "activations) or bfloat16_compute (bfloat16 weights and activations rounded to bfloat16 "
                        "in every matrix product, fp32 sums: AVX-512 BF16 for prompts and batches where the CPU "
                        "has it; logits move by ~1 % against bfloat16); converted while loading, whatever the "
                        "checkpoint stores");
}

CLI::Option* add_adapter_option(CLI::App& app, std::string& target) {
  return app.add_option("--adapter", target,
                        "PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors, from peft or "
                        "`lmforge finetune --lora`) applied unmerged on top of --model");
}

std::unique_ptr<Model> load_model(const std::string& model, const std::string& dtype, const std::string& adapter) {
  namespace fs = std::filesystem;
  std::string base = model, adapter_dir = adapter;
  if (!fs::exists(fs::path(model) / "config.json") && fs::exists(fs::path(model) / "adapter_config.json")) {
    if (!adapter.empty())
      throw Error("--adapter: --model '" + model + "' is itself an adapter folder; give its base as --model");
    base = read_lora_config(model).base_model_name_or_path;
    if (base.empty())
      throw Error("--model: '" + model + "' is an adapter folder whose adapter_config.json names no "
                  "base_model_name_or_path; give the base as --model and the adapter as --adapter");
    adapter_dir = model;
    if (!fs::is_directory(base))
      throw Error("--model: the base model '" + base + "' of adapter folder '" + model +
                  "' (its base_model_name_or_path) is not a folder here; give it as --model and the adapter as "
                  "--adapter");
  }
  auto m = Model::load(base, parse_dtype(dtype));
  if (adapter_dir.empty()) return m;
  auto a = std::make_shared<LoraAdapter>(load_lora_adapter(adapter_dir, m->config()));
  return m->with_adapter(std::move(a));
}

std::string describe_weights(const Model& model) {
  const ModelWeights& w = model.weights();
  std::map<std::string, int> others;
  for (const auto& s : w.slices)
    if (s.hf_name.ends_with(".weight") && s.type != w.matrix_type && s.hf_shape.size() == 2 &&
        s.hf_name.find("wpe") == std::string::npos)
      ++others[kernels::to_string(s.type)];
  std::string out = kernels::to_string(w.matrix_type);
  for (const auto& [type, n] : others) out += ", " + std::to_string(n) + " in " + type;
  return out;
}

}  // namespace lmforge::cli
