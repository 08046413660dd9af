// GPT-2's byte-level BPE (tests/data/tokenizer) on arbitrary bytes: encode either refuses invalid
// UTF-8 with an lmforge::Error or gives ids that decode back to exactly the input (the round trip
// holds for byte-level BPE); decode of arbitrary ids never fails.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "lmforge/error.h"
#include "lmforge/tokenizer/tokenizer.h"

namespace {
const lmforge::Tokenizer& tokenizer() {
  static const lmforge::Tokenizer t = lmforge::Tokenizer::from_dir(LMFORGE_SOURCE_DIR "/tests/data/tokenizer");
  return t;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const lmforge::Tokenizer& tok = tokenizer();
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const std::vector<int32_t> ids = tok.encode(text);
    if (tok.decode(ids, false, false) != text) __builtin_trap();  // (no clean-up of spaces: exact bytes)
  } catch (const lmforge::Error&) {
  }
  // The same bytes as token ids (any int32, out of range included).
  std::vector<int32_t> ids(size / 4);
  if (!ids.empty()) std::memcpy(ids.data(), data, ids.size() * 4);
  try {
    (void)tok.decode(ids);
    (void)tok.decode(ids, true);
  } catch (const lmforge::Error&) {
  }
  return 0;
}
