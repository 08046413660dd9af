// A tokenizer folder from arbitrary bytes, through the loader users hit (Tokenizer::from_dir): the
// input is cut into vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json and
// tokenizer.json (fuzz_util.h's separator; an empty part is a missing file, so both the
// vocab.json + merges.txt and the tokenizer.json routes are reached). A tokenizer that loads must
// then encode and decode a fixed text without anything but an lmforge::Error.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "lmforge/error.h"
#include "lmforge/tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<std::string> parts = lmforge::fuzz::split_files(data, size, 5);
  const auto dir = lmforge::fuzz::as_folder({{"vocab.json", parts[0]},
                                             {"merges.txt", parts[1]},
                                             {"tokenizer_config.json", parts[2]},
                                             {"special_tokens_map.json", parts[3]},
                                             {"tokenizer.json", parts[4]}});
  try {
    const lmforge::Tokenizer tok = lmforge::Tokenizer::from_dir(dir);
    const std::vector<int32_t> ids = tok.encode("Hello world, héllo 123 <|endoftext|>\n  tabs\t!");
    (void)tok.decode(ids);
    (void)tok.decode(ids, true, true);
    (void)tok.decode({0, 1, 2, 255, 256, 1000, 50256, -1, 1 << 30});
  } catch (const lmforge::Error&) {
  }
  return 0;
}
