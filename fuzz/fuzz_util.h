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
#include <string_view>
#include <vector>

#include "lmforge/error.h"

namespace lmforge::fuzz {

// Targets that read several files (a tokenizer folder, a PEFT adapter) take them from one input,
// cut at this line; fuzz/run.sh joins the seed files with it and the dictionaries hold it.
inline constexpr std::string_view kFileSeparator = "\n#lmforge-fuzz-next-file#\n";

// The input cut into `count` parts at the separator; missing parts are empty, and the last part
// keeps any further separators.
inline std::vector<std::string> split_files(const uint8_t* data, size_t size, size_t count) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts;
  while (parts.size() + 1 < count) {
    const size_t at = rest.find(kFileSeparator);
    if (at == std::string_view::npos) break;
    parts.emplace_back(rest.substr(0, at));
    rest.remove_prefix(at + kFileSeparator.size());
  }
  parts.emplace_back(rest);
  parts.resize(count);
  return parts;
}

// A folder of its own for the targets that read a folder: `files` (name, content) written into it,
// an empty content meaning "no such file" (so the fuzzer can drop a file).
inline std::filesystem::path as_folder(const std::vector<std::pair<std::string, std::string>>& files);

// <base>/lmforge-fuzz-<pid>/<name>, holding `size` bytes of `data`. The base is $LMFORGE_FUZZ_TMPDIR, else
// /dev/shm (memory), else $TMPDIR or /tmp: on a disk, truncating the file while the machine writes
// heavily (ext4 flushes a truncated file's data) stalled one open() past the 1-s timeout.
inline std::filesystem::path as_file(const uint8_t* data, size_t size, const std::string& name) {
  static const std::filesystem::path dir = [] {
    const char* own = std::getenv("LMFORGE_FUZZ_TMPDIR");
    const char* tmp = std::getenv("TMPDIR");
    std::error_code ec;
    const std::filesystem::path base = own && *own                                    ? own
                                       : std::filesystem::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0 ? "/dev/shm"
                                       : tmp && *tmp                                  ? tmp
                                                                                      : "/tmp";
    static std::filesystem::path d = base / ("lmforge-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(d, ignored);
    });
    return d;
  }();
  const std::filesystem::path file = dir / name;
  std::FILE* f = std::fopen(file.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return file;
}

// Runs one reader: a result or an lmforge::Error are both fine; anything else escapes to libFuzzer.
template <typename F>
void refused_or_read(F&& read) {
  try {
    read();
  } catch (const lmforge::Error&) {
  }
}

inline std::filesystem::path as_folder(const std::vector<std::pair<std::string, std::string>>& files) {
  const std::filesystem::path dir = as_file(nullptr, 0, "folder.marker").parent_path() / "folder";
  std::filesystem::create_directories(dir);
  for (const auto& [name, content] : files) {
    const std::filesystem::path file = dir / name;
    if (content.empty()) {
      std::filesystem::remove(file);
      continue;
    }
    std::FILE* f = std::fopen(file.c_str(), "wb");
    if (!f) std::abort();
    if (std::fwrite(content.data(), 1, content.size(), f) != content.size()) std::abort();
    std::fclose(f);
  }
  return dir;
}

}  // namespace lmforge::fuzz
