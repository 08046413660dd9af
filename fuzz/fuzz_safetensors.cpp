// A .safetensors file of arbitrary bytes through the loader users hit (Checkpoint::open_safetensors:
// header, tensor table, offsets), then every float tensor read as fp32.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "lmforge/error.h"
#include "lmforge/io/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto ckpt = lmforge::Checkpoint::open_safetensors(lmforge::fuzz::as_file(data, size, "model.safetensors"));
    for (const auto& [name, t] : ckpt.tensors()) {
      try {
        if (t.numel() <= (1 << 20)) lmforge::to_float32(t);
      } catch (const lmforge::Error&) {  // e.g. an integer dtype
      }
    }
  } catch (const lmforge::Error&) {
  }
  return 0;
}
