// --model NAME in the local Hugging Face cache: a cache laid out by the test itself, found through
// the same environment variables as transformers 4.43.4 / huggingface_hub.
#include "lmforge/io/hub_cache.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <optional>

#include "io/io_test_util.h"

namespace lmforge {
namespace {

namespace fs = std::filesystem;
using test::TempDir;
using test::write_file;

const char* const kCacheVars[] = {"TRANSFORMERS_CACHE", "PYTORCH_TRANSFORMERS_CACHE", "PYTORCH_PRETRAINED_BERT_CACHE",
                                  "HF_HUB_CACHE",       "HUGGINGFACE_HUB_CACHE",      "HF_HOME",
                                  "XDG_CACHE_HOME",     "HOME"};
constexpr const char* kHash = "0123456789abcdef0123456789abcdef01234567";

// Saves the cache variables, unsets them for the test and restores them afterwards.
class HubCache : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : kCacheVars) {
      if (const char* old = std::getenv(v)) saved_[v] = old;
      unsetenv(v);
    }
    setenv("HOME", (dir_ / "home").c_str(), 1);
  }
  void TearDown() override {
    for (const char* v : kCacheVars) {
      unsetenv(v);
      if (auto it = saved_.find(v); it != saved_.end()) setenv(v, it->second.c_str(), 1);
    }
  }

  // <cache>/models--<folder>/refs/<ref> -> snapshots/<hash>/config.json, as huggingface_hub writes it.
  fs::path add_model(const fs::path& cache, const std::string& folder, const std::string& ref = "main",
                     const std::string& hash = kHash) {
    const fs::path repo = cache / ("models--" + folder);
    const fs::path snapshot = repo / "snapshots" / hash;
    fs::create_directories(snapshot);
    fs::create_directories(repo / "refs");
    write_file(repo / "refs" / ref, hash);  // no newline, as HF writes it
    write_file(snapshot / "config.json", "{}");
    return snapshot;
  }

  std::string error_of(const std::string& name) {
    try {
      resolve_model_path(name);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  TempDir dir_;
  std::map<std::string, std::string> saved_;
};

TEST_F(HubCache, AFolderIsReturnedAsIs) {
  fs::create_directories(dir_ / "gpt2");
  EXPECT_EQ(resolve_model_path((dir_ / "gpt2").string()), dir_ / "gpt2");
}

TEST_F(HubCache, DefaultCacheIsUnderHome) {
  const fs::path cache = dir_ / "home" / ".cache" / "huggingface" / "hub";
  EXPECT_EQ(hub_cache_dir(), cache);
  const fs::path snap = add_model(cache, "gpt2");
  EXPECT_EQ(resolve_model_path("gpt2"), snap);
}

TEST_F(HubCache, OrganisationNamesUseDoubleDashes) {
  const fs::path cache = dir_ / "home" / ".cache" / "huggingface" / "hub";
  const fs::path snap = add_model(cache, "EleutherAI--gpt-j-6b");
  EXPECT_EQ(resolve_model_path("EleutherAI/gpt-j-6b"), snap);
}

TEST_F(HubCache, EnvironmentPrecedence) {
  // Lowest first; each variable set below wins over the ones before it.
  setenv("XDG_CACHE_HOME", (dir_ / "xdg").c_str(), 1);
  EXPECT_EQ(hub_cache_dir(), dir_ / "xdg" / "huggingface" / "hub");
  setenv("HF_HOME", (dir_ / "hf_home").c_str(), 1);
  EXPECT_EQ(hub_cache_dir(), dir_ / "hf_home" / "hub");
  setenv("HUGGINGFACE_HUB_CACHE", (dir_ / "legacy").c_str(), 1);
  EXPECT_EQ(hub_cache_dir(), dir_ / "legacy");
  setenv("HF_HUB_CACHE", (dir_ / "hub_cache").c_str(), 1);
  EXPECT_EQ(hub_cache_dir(), dir_ / "hub_cache");
  setenv("PYTORCH_PRETRAINED_BERT_CACHE", (dir_ / "bert").c_str(), 1);
  EXPECT_EQ(hub_cache_dir(), dir_ / "bert");
  setenv("PYTORCH_TRANSFORMERS_CACHE", (dir_ / "pt").c_str(), 1);
  EXPECT_EQ(hub_cache_dir(), dir_ / "pt");
  setenv("TRANSFORMERS_CACHE", (dir_ / "tc").c_str(), 1);
  EXPECT_EQ(hub_cache_dir(), dir_ / "tc");
}

TEST_F(HubCache, HomeAndVariablesAreExpandedAsHuggingfaceHubDoes) {
  setenv("HF_HOME", "~/hf", 1);
  EXPECT_EQ(hub_cache_dir(), dir_ / "home" / "hf" / "hub");
  setenv("LMFORGE_TEST_ROOT", dir_.path().c_str(), 1);
  setenv("HF_HUB_CACHE", "${LMFORGE_TEST_ROOT}/c/$LMFORGE_TEST_ROOT_UNSET", 1);
  EXPECT_EQ(hub_cache_dir(), dir_.path().string() + "/c/$LMFORGE_TEST_ROOT_UNSET");
  unsetenv("LMFORGE_TEST_ROOT");
}

TEST_F(HubCache, HfHubCacheFindsTheModel) {
  setenv("HF_HUB_CACHE", (dir_ / "hub").c_str(), 1);
  const fs::path snap = add_model(dir_ / "hub", "gpt2");
  EXPECT_EQ(resolve_model_path("gpt2"), snap);
}

TEST_F(HubCache, RevisionsBranchOrCommit) {
  setenv("HF_HUB_CACHE", (dir_ / "hub").c_str(), 1);
  add_model(dir_ / "hub", "gpt2");
  const std::string other = "fedcba9876543210fedcba9876543210fedcba98";
  const fs::path v2 = add_model(dir_ / "hub", "gpt2", "v2", other);
  EXPECT_EQ(resolve_model_path("gpt2@v2"), v2);
  EXPECT_EQ(resolve_model_path("gpt2@" + other), v2) << "a commit hash with no ref file is the snapshot";
  EXPECT_EQ(resolve_model_path("gpt2@main"), dir_ / "hub" / "models--gpt2" / "snapshots" / kHash);
}

TEST_F(HubCache, NotCachedSaysWhereItLookedAndThatNothingIsDownloaded) {
  setenv("HF_HUB_CACHE", (dir_ / "hub").c_str(), 1);
  std::string e = error_of("gpt2");
  EXPECT_NE(e.find("'gpt2' is not a folder, and not in the Hugging Face cache " + (dir_ / "hub").string()),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("nothing is downloaded"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;

  // A repo folder whose ref points at a snapshot that is not there (an interrupted download).
  add_model(dir_ / "hub", "gpt2");
  fs::remove_all(dir_ / "hub" / "models--gpt2" / "snapshots");
  e = error_of("gpt2");
  EXPECT_NE(e.find("refs/main names " + std::string(kHash)), std::string::npos) << e;
  e = error_of("gpt2@v9");
  EXPECT_NE(e.find("no refs/v9"), std::string::npos) << e;
}

TEST_F(HubCache, PathsThatAreNotRepoNamesSayNoSuchFolder) {
  for (const std::string name : {"/no/such/dir", "./nope", "a/b/c", "bad--name", "x@"}) {
    const std::string e = error_of(name);
    EXPECT_NE(e.find("model '" + name + "': no such folder"), std::string::npos) << e;
  }
}

}  // namespace
}  // namespace lmforge
