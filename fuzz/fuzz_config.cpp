// config.json of arbitrary bytes through load_model_config (GPT-2 / GPT-J keys, validation).
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_util.h"
#include "lmforge/error.h"
#include "lmforge/model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto c = lmforge::load_model_config(lmforge::fuzz::as_file(data, size, "config.json"));
    if (c.n_embd <= 0 || c.n_layer <= 0 || c.vocab_size <= 0) __builtin_trap();  // accepted only when usable
  } catch (const lmforge::Error&) {
  }
  return 0;
}
