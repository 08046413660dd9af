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

// This process's scratch folder <base>/lmforge-fuzz-<pid>, removed at exit. The base is
// $LMFORGE_FUZZ_TMPDIR, else /dev/shm (memory), else $TMPDIR or /tmp: on a disk, truncating a file
// while the machine writes heavily (ext4 flushes a truncated file's data) stalled one open() past
// the 1-s timeout.
inline const std::filesystem::path& work_dir() {
  static const std::filesystem::path dir = [] {
    auto env = [](const char* name) -> const char* {
      const char* v = std::getenv(name);
      return v && *v ? v : nullptr;
    };
    std::error_code ec;
    std::filesystem::path base = "/tmp";
    if (const char* own = env("LMFORGE_FUZZ_TMPDIR")) base = own;
    else if (std::filesystem::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0) base = "/dev/shm";
    else if (const char* tmp = env("TMPDIR")) base = tmp;
    std::filesystem::path d = base / ("lmforge-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  // Registered after `dir` is built, so it runs before dir's destructor.
  static const int cleanup = std::atexit([] {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  });
  (void)cleanup;
  return dir;
}

// Writes `size` bytes of `data` to `file` (created or truncated).
inline void write_bytes(const std::filesystem::path& file, const void* data, size_t size) {
  std::FILE* f = std::fopen(file.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
}

// work_dir()/<name>, holding `size` bytes of `data`.
inline std::filesystem::path as_file(const uint8_t* data, size_t size, const std::string& name) {
  const std::filesystem::path file = work_dir() / name;
  write_bytes(file, data, size);
  return file;
}

// A folder of its own for the targets that read a folder: `files` (name, content) written into it,
// an empty content meaning "no such file" (so the fuzzer can drop a file).
inline std::filesystem::path as_folder(const std::vector<std::pair<std::string, std::string>>& files) {
  static const std::filesystem::path dir = [] {
    std::filesystem::path d = work_dir() / "folder";
    std::filesystem::create_directories(d);
    return d;
  }();
  for (const auto& [name, content] : files) {
    if (content.empty()) std::filesystem::remove(dir / name);
    else write_bytes(dir / name, content.data(), content.size());
  }
  return dir;
}

// Runs one reader: a result or an lmforge::Error are both fine; anything else escapes to libFuzzer.
template <typename F>
void refused_or_read(F&& read) {
  try {
    read();
  } catch (const lmforge::Error&) {
  }
}

}  // namespace lmforge::fuzz
