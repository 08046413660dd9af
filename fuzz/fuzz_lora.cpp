// A PEFT LoRA adapter folder from arbitrary bytes: adapter_config.json and the adapter tensors
// (adapter_model.safetensors, or adapter_model.bin when the third part is given), cut at
// fuzz_util.h's separator, loaded for the tiny GPT-2 base (load_lora_adapter: config keys, PEFT
// tensor names, shapes against the base). Refusals must be lmforge::Errors.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "lmforge/error.h"
#include "lmforge/model/config.h"
#include "lmforge/model/lora.h"

namespace {
const lmforge::ModelConfig& base() {
  static const lmforge::ModelConfig c = lmforge::load_model_config(LMFORGE_SOURCE_DIR "/tests/data/models/gpt2-tiny/config.json");
  return c;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<std::string> parts = lmforge::fuzz::split_files(data, size, 3);
  const auto dir = lmforge::fuzz::as_folder({{"adapter_config.json", parts[0]},
                                             {"adapter_model.safetensors", parts[1]},
                                             {"adapter_model.bin", parts[2]}});
  try {
    (void)lmforge::load_lora_adapter(dir, base());
  } catch (const lmforge::Error&) {
  }
  return 0;
}
