// A pytorch_model.bin of arbitrary bytes through Checkpoint::open_torch_bin: the ZIP reader, the
// unpickler, storages and strided views together, then every float tensor read as fp32.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_util.h"
#include "lmforge/error.h"
#include "lmforge/io/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto ckpt = lmforge::Checkpoint::open_torch_bin(lmforge::fuzz::as_file(data, size, "pytorch_model.bin"));
    for (const auto& [name, t] : ckpt.tensors()) {
      try {
        if (t.numel() <= (1 << 20)) lmforge::to_float32(t);
      } catch (const lmforge::Error&) {
      }
    }
  } catch (const lmforge::Error&) {
  }
  return 0;
}
