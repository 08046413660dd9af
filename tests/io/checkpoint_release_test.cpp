// Checkpoint::release: a mapped tensor's pages leave the resident set but stay readable (the
// next read faults them back from the file), for safetensors and for the stored entries of .bin
// archives alike.
#include <gtest/gtest.h>

#include <vector>

#include "common/fixtures.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/io/tensor.h"

namespace lmforge {
namespace {

void expect_release_keeps_values(const Checkpoint& ckpt) {
  for (const auto& [name, t] : ckpt.tensors()) {
    if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16) continue;
    const std::vector<float> before = to_float32(t);
    ckpt.release(t);
    EXPECT_EQ(to_float32(t), before) << name;
  }
}

TEST(CheckpointRelease, MappedSafetensorsStayReadable) {
  expect_release_keeps_values(Checkpoint::open_safetensors(test::model_dir("gpt2-tiny") / "model.safetensors"));
  expect_release_keeps_values(Checkpoint::open(test::model_dir("gpt2-sharded")));
}

TEST(CheckpointRelease, MappedTorchBinStaysReadable) {
  // .bin storages are mapped from the zip (heap copies only for compressed entries, which
  // torch_bin_mmap_test covers); either way release must keep the values.
  expect_release_keeps_values(Checkpoint::open_torch_bin(test::model_dir("gpt2-tiny") / "pytorch_model.bin"));
}

}  // namespace
}  // namespace lmforge
