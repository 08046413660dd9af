// The restricted unpickler of pytorch_model.bin's data.pkl (src/io/pickle.cpp) on arbitrary bytes.
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz/fuzz_util.h"
#include "io/pickle.h"
#include "lmforge/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto tensors = lmforge::io::parse_torch_pickle(std::span(reinterpret_cast<const std::byte*>(data), size), "data.pkl");
    for (const auto& t : tensors)
      if (t.sizes.size() != t.strides.size()) __builtin_trap();  // a tensor the loader could not index
  } catch (const lmforge::Error&) {
  }
  return 0;
}
