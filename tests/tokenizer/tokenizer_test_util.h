#pragma once
// Helpers shared by the tokenizer tests: the HF fixture tokenizer and throw-away folders.
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "common/fixtures.h"
#include "lmforge/tokenizer/tokenizer.h"

namespace lmforge::test {

inline std::filesystem::path tokenizer_data() { return data_dir() / "tokenizer"; }

// GPT-2's real tokenizer from tests/data/tokenizer, loaded once: 50k merges take a moment.
inline const Tokenizer& gpt2_tokenizer() {
  static const Tokenizer tok = Tokenizer::from_dir(tokenizer_data());
  return tok;
}

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

inline void write_text(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
  ASSERT_TRUE(out.good()) << p;
}

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("lmforge_tok_" + std::to_string(rd()) + "_" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace lmforge::test
