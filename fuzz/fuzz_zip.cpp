// The ZIP central-directory / ZIP64 reader (src/io/zip_index.cpp) on arbitrary bytes, and the local
// header of every entry it returns.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_util.h"
#include "io/zip_index.h"
#include "lmforge/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto* bytes = reinterpret_cast<const std::byte*>(data);
  try {
    for (const auto& e : lmforge::io::read_zip_central_directory(bytes, size, "archive.zip")) {
      try {
        const uint64_t at = lmforge::io::zip_entry_data_offset(bytes, size, e, "archive.zip");
        if (at > size || e.comp_size > size - at) __builtin_trap();  // the promise: data inside the file
      } catch (const lmforge::Error&) {
      }
    }
  } catch (const lmforge::Error&) {
  }
  return 0;
}
