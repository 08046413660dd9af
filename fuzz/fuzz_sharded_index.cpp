// model.safetensors.index.json of arbitrary bytes beside the real shards of tests/data/models/
// gpt2-sharded, through Checkpoint::open_sharded_index (weight_map, shard names, tensors listed
// against the shards' own tables).
#include <cstddef>
#include <cstdint>
#include <filesystem>

#include "fuzz/fuzz_util.h"
#include "lmforge/error.h"
#include "lmforge/io/checkpoint.h"

namespace {
// The fixture's shards, copied once into the folder the target writes its index file to.
void copy_shards() {
  static const bool done = [] {
    const std::filesystem::path fixture = LMFORGE_SOURCE_DIR "/tests/data/models/gpt2-sharded";
    for (const auto& entry : std::filesystem::directory_iterator(fixture)) {
      const auto name = entry.path().filename().string();
      if (name.find("-of-") != std::string::npos)
        std::filesystem::copy_file(entry.path(), lmforge::fuzz::work_dir() / name,
                                   std::filesystem::copy_options::overwrite_existing);
    }
    return true;
  }();
  (void)done;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  copy_shards();
  const auto index = lmforge::fuzz::as_file(data, size, "model.safetensors.index.json");
  try {
    const auto ckpt = lmforge::Checkpoint::open_sharded_index(index);
    for (const auto& [name, t] : ckpt.tensors())
      if (t.nbytes == 0 && t.numel() != 0) __builtin_trap();
  } catch (const lmforge::Error&) {
  }
  return 0;
}
