// `--model NAME` on every subcommand resolves NAME in the local Hugging Face cache, laid out here by
// the test as huggingface_hub lays it out (refs/main -> snapshots/<hash>/ of symlinks into blobs/).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/fixtures.h"
#include "common/run.h"

namespace lmforge {
namespace {

namespace fs = std::filesystem;
using test::model_dir;
using test::run_cli;

class CliHubCache : public ::testing::Test {
 protected:
  void SetUp() override {
    cache_ = fs::temp_directory_path() / ("lmforge-hub-" + std::to_string(getpid()));
    fs::remove_all(cache_);
    const fs::path repo = cache_ / "models--tiny-org--gpt2-tiny";
    const std::string hash = "0123456789abcdef0123456789abcdef01234567";
    fs::create_directories(repo / "refs");
    fs::create_directories(repo / "blobs");
    fs::create_directories(repo / "snapshots" / hash);
    std::ofstream(repo / "refs" / "main") << hash;  // huggingface_hub writes no newline
    int n = 0;
    for (const char* f : {"config.json", "model.safetensors", "vocab.json", "merges.txt", "generation_config.json"}) {
      const fs::path blob = repo / "blobs" / ("blob" + std::to_string(n++));
      fs::copy_file(model_dir("gpt2-tiny") / f, blob);
      fs::create_symlink(fs::path("../../blobs") / blob.filename(), repo / "snapshots" / hash / f);
    }
    setenv("HF_HUB_CACHE", cache_.c_str(), 1);
  }
  void TearDown() override {
    unsetenv("HF_HUB_CACHE");
    fs::remove_all(cache_);
  }
  fs::path cache_;
};

TEST_F(CliHubCache, ModelNameLoadsTheCachedSnapshot) {
  const std::string gen = " --prompt_ids '464 3290' --max_new_tokens 5 --json";
  const auto by_name = run_cli("generate --model tiny-org/gpt2-tiny" + gen);
  ASSERT_EQ(by_name.exit_code, 0) << by_name.err;
  const auto by_path = run_cli("generate --model " + model_dir("gpt2-tiny").string() + gen);
  ASSERT_EQ(by_path.exit_code, 0) << by_path.err;
  EXPECT_EQ(by_name.out, by_path.out);

  const auto info = run_cli("inspect tiny-org/gpt2-tiny --json");
  EXPECT_EQ(info.exit_code, 0) << info.err;
  const auto tok = run_cli("tokenize --model tiny-org/gpt2-tiny --text 'hello world'");
  EXPECT_EQ(tok.exit_code, 0) << tok.err;
}

TEST_F(CliHubCache, UncachedNameIsOneClearLineAndExitOne) {
  const auto r = run_cli("generate --model tiny-org/not-there --prompt_ids 1");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("not in the Hugging Face cache"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(cache_.string()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nothing is downloaded"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace lmforge
