#pragma once
// Shared by the libFuzzer targets (fuzz/README.md): the input as a file for the loaders that take
// a path (one file per process, rewritten for every input), and the rule for exceptions.
//
// The promise under test: any bytes give either a result or an lmforge::Error (the one clear line
// the CLI prints); never a crash, a sanitizer report, a hang, or another exception type (which
// the CLI would report as "internal:"). So the targets catch lmforge::Error only.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

namespace lmforge::fuzz {

// <TMPDIR or /tmp>/lmforge-fuzz-<pid>/<name>, holding `size` bytes of `data`.
inline std::filesystem::path as_file(const uint8_t* data, size_t size, const std::string& name) {
  static const std::filesystem::path dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::filesystem::path d = std::filesystem::path(tmp && *tmp ? tmp : "/tmp") / ("lmforge-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  const std::filesystem::path file = dir / name;
  std::FILE* f = std::fopen(file.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return file;
}

}  // namespace lmforge::fuzz
