// Checkpoint::release: a mapped tensor's pages leave the resident set but stay readable (the
// next read faults them back from the file); tensors in heap buffers are left alone.
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

TEST(CheckpointRelease, HeapBuffersAreUntouched) {
  // .bin storages live in heap buffers: DONTNEED there would zero them, so release must skip them.
  expect_release_keeps_values(Checkpoint::open_torch_bin(test::model_dir("gpt2-tiny") / "pytorch_model.bin"));
}

}  // namespace
}  // namespace lmforge
