// generation_config.json of arbitrary bytes over HF's defaults (apply_generation_config_file), then
// the validation generate() runs: both may refuse with an lmforge::Error, nothing else.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_util.h"
#include "lmforge/error.h"
#include "lmforge/generate/generation_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    lmforge::GenerationConfig g = lmforge::generation_defaults(50256, 50256, std::nullopt, "");
    lmforge::apply_generation_config_file(lmforge::fuzz::as_file(data, size, "generation_config.json"), g);
    g.validate();
  } catch (const lmforge::Error&) {
  }
  return 0;
}
