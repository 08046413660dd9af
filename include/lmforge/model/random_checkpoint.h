#pragma once
// Random-weight HF checkpoint folders of real model shapes (GPT-2 124M .. XL, GPT-J-6B), for
// benchmarks, tests and from-scratch training, since no pretrained weights can be downloaded here.
// `lmforge init` and bench/make_random_checkpoint both write through this one implementation.
//
// The folder is what `save_pretrained` of a freshly initialised HF model writes, in the stored
// dtype chosen: config.json (HF's values for the shape, torch_dtype = the dtype),
// generation_config.json, model.safetensors, or model-0000i-of-0000K.safetensors +
// model.safetensors.index.json when the tensors exceed max_shard_bytes (huggingface_hub's rule:
// shards filled in named_parameters() order, a new one when the next tensor would tip the current
// one over the limit, a bigger tensor alone), and the tokenizer files of a tokenizer folder.
//
// Tensors are generated and written chunk by chunk (two 64 MiB buffers), so the whole model is
// never in memory: GPT-J-6B in fp32 (24 GB) is written with well under 1 GB resident.
// Values: matrices and embeddings N(0, 0.02) (GPT-2's residual projections c_proj scaled by
// 1/sqrt(2 n_layer), as HF initialises them), layer-norm gains 1, biases 0. The normal is
// approximate (sum of four 16-bit uniforms from a counter-based splitmix64, so |z| < 3.47) and
// every value depends only on (seed, tensor name, element index): the same bytes whatever the
// thread count or the sharding.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/io/tensor.h"
#include "lmforge/model/config.h"

namespace lmforge {

// Shape presets, HF's config.json values: "gpt2" (124M), "gpt2-medium", "gpt2-large", "gpt2-xl",
// "gpt-j-6b" (EleutherAI/gpt-j-6b).
const std::vector<std::string>& random_checkpoint_presets();

// Overrides of a preset's shape (the flags --n_layer, --n_head, ... of both tools).
struct ShapeOverrides {
  std::optional<int> n_layer, n_head, n_embd, n_inner, n_positions, vocab_size, rotary_dim;
};

// The preset's config with the overrides applied, checked as config.json would be (impossible
// shapes, --rotary_dim on a GPT-2 shape). bos/eos are 50256, or vocab_size - 1 for a smaller
// vocabulary. Throws lmforge::Error naming the flag (--preset, --n_head, ...).
ModelConfig random_checkpoint_config(const std::string& preset, const ShapeOverrides& overrides = {});

struct RandomCheckpointOptions {
  DType dtype = DType::F32;                  // stored type: F32, BF16 or F16
  uint64_t seed = 42;
  uint64_t max_shard_bytes = 5'000'000'000;  // HF save_pretrained's default "5GB"
  std::filesystem::path tokenizer;           // folder whose tokenizer files are copied in; empty: none
  // Flush written pages and drop them from the page cache as the shards are written, so a 12 GB
  // write does not push the rest of a shared machine out of memory.
  bool drop_page_cache = true;
  std::function<void(const std::string&)> progress;  // one line per weight file written, if set
  // Called with the staging folder once everything is in it, before it is published: extra files
  // written there (e.g. lmforge_output.json) appear in `dir` together with the checkpoint.
  std::function<void(const std::filesystem::path&)> before_publish;
};

struct RandomCheckpointSummary {
  int64_t parameters = 0;
  uint64_t tensor_bytes = 0;
  std::vector<std::string> weight_files;  // model.safetensors, or the shards
  double seconds = 0, generate_seconds = 0;
};

// Writes the folder. Everything is first written into a hidden staging folder (a sibling of a
// new `dir`, inside an existing one) and then published by rename, so a failure (bad tokenizer
// folder, full disk) leaves `dir` as it was. A new `dir` appears whole; into an existing folder
// the new files replace those of the same name, weight files of an earlier checkpoint that the new one does
// not have are removed (a stale model.safetensors would be loaded before a new index), and
// other files are kept. Refuses a folder without room for the tensors. Throws lmforge::Error
// naming the file or flag.
RandomCheckpointSummary write_random_checkpoint(const std::filesystem::path& dir, const ModelConfig& c,
                                                const RandomCheckpointOptions& o);

// "float32" | "bfloat16" | "float16" (or fp32, bf16, fp16) -> the stored type; throws naming flag.
DType parse_stored_dtype(const std::string& s, const std::string& flag);
// "5GB", "500MB", "10GiB", "100KB", "123" (bytes), as transformers' convert_file_size_to_int;
// throws naming flag.
uint64_t parse_shard_size(const std::string& s, const std::string& flag);

// Reopens a folder written with these options and checks config.json, every tensor's dtype and
// shape, and its first 4096 and last values bit for bit against the generator; for models under
// 1.5 B parameters also Model::load and one forward pass. Returns the report lines; throws
// lmforge::Error on the first mismatch.
std::string verify_random_checkpoint(const std::filesystem::path& dir, const ModelConfig& c,
                                     const RandomCheckpointOptions& o);

}  // namespace lmforge
