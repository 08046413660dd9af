#pragma once
// The tensors of an HF checkpoint folder, whatever their on-disk form:
//   model.safetensors | model-0000i-of-0000n.safetensors + model.safetensors.index.json
//   pytorch_model.bin | pytorch_model-0000i-of-0000n.bin + pytorch_model.bin.index.json
// Safetensors files and the stored (uncompressed) entries of .bin zips are mmap'd (zero copy, so a
// 24 GB fp32 pytorch_model.bin loads on a 24 GB machine); .bin pickles are parsed with a restricted pickle reader
// that never executes anything. Names are kept exactly as stored (e.g. "transformer.h.0.attn.c_attn.weight").
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lmforge/error.h"
#include "lmforge/io/tensor.h"

namespace lmforge {

class Checkpoint {
 public:
  // Opens the weights in `dir`. Prefers safetensors (single, then sharded), then .bin (single,
  // then sharded). Throws lmforge::Error naming the folder/file on anything missing or corrupt.
  static Checkpoint open(const std::filesystem::path& dir);

  // Individual formats, also used by tests.
  static Checkpoint open_safetensors(const std::filesystem::path& file);
  static Checkpoint open_torch_bin(const std::filesystem::path& file);
  static Checkpoint open_sharded_index(const std::filesystem::path& index_json);

  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // Throws lmforge::Error naming the tensor and the checkpoint when absent.
  const TensorView& get(const std::string& name) const;
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  // Human description, e.g. "gpt2/model.safetensors" or "3 shards of gpt2/pytorch_model.bin.index.json".
  const std::string& description() const { return description_; }

  // Tells the OS that `t`'s bytes will not be read again soon: where they lie in an mmap'd file,
  // the whole pages inside them leave this process's resident set (madvise DONTNEED; a later read
  // faults them back in from the file). Loaders call it after converting each tensor, so loading
  // a model never keeps the checkpoint resident beside the converted weights. No-op for tensors
  // in heap buffers (compressed .bin entries, gathered strided views).
  void release(const TensorView& t) const;

 private:
  std::map<std::string, TensorView> tensors_;
  std::vector<std::shared_ptr<const void>> owners_;  // mmaps / buffers the views point into
  struct Range {
    const std::byte* begin;
    size_t size;
  };
  std::vector<Range> mapped_;  // the read-only file mappings among owners_
  std::string description_;
  friend struct CheckpointBuilder;
};

// Writes tensors as one safetensors file (header padded to 8 bytes, tensors in name order),
// atomically: to "<file>.tmp" then rename. `metadata` goes into "__metadata__".
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;  // numel * dtype_size bytes
};
void write_safetensors(const std::filesystem::path& file, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace lmforge
