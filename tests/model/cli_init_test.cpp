// `lmforge init` as a user runs it: the folder it writes loads in `generate`, HF's
// --overwrite_output_dir rule for --save_path, and bad flags leave nothing behind.
// (Runs the lmforge binary: build the lmforge_cli target before test_model.)
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "common/run.h"
#include "io/io_test_util.h"

namespace lmforge {
namespace {

namespace fs = std::filesystem;
using test::count_lines;
using test::read_file;
using test::run_cli;
using test::TempDir;
using test::write_file;

const std::string kShape = " --n_layer 2 --n_head 2 --n_embd 32 --n_positions 64 --vocab_size 300";

TEST(CliInit, WritesAFolderGenerateLoadsWithItsRecord) {
  TempDir tmp;
  const fs::path out = tmp / "sub" / "model";
  // The real GPT-2 vocabulary, so the copied tokenizer fits the model.
  auto r = run_cli("init --save_path " + out.string() + " --n_layer 2 --n_head 2 --n_embd 32 --n_positions 64" +
                   " --tokenizer " + test::model_dir("gpt2-tiny").string() + " --max_shard_size 200KB --dtype bfloat16");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(out / "model.safetensors.index.json"));  // sharded, as HF would at 200KB
  EXPECT_TRUE(fs::exists(out / "vocab.json"));
  EXPECT_EQ(nlohmann::json::parse(read_file(out / "lmforge_output.json"))["command"], "init");
  EXPECT_EQ(nlohmann::json::parse(read_file(out / "config.json"))["torch_dtype"], "bfloat16");
  auto g = run_cli("generate --json --model " + out.string() + " --prompt hello --max_new_tokens 4");
  ASSERT_EQ(g.exit_code, 0) << g.err;
  EXPECT_EQ(nlohmann::json::parse(g.out)[0].at("ids")[0].size(), 5u);  // "hello" is one GPT-2 token
}

// GPT-J's preset has 50400 rows, GPT-2's tokenizer 50257 tokens: said once, and the folder still
// generates (ids past the tokenizer decode as nothing).
TEST(CliInit, NotesAVocabularyLargerThanTheTokenizer) {
  TempDir tmp;
  const std::string shape = " --preset gpt-j-6b --n_layer 1 --n_head 2 --n_embd 32 --rotary_dim 8 --n_positions 64";
  const std::string tok = " --tokenizer " + test::model_dir("gpt2-tiny").string();
  auto r = run_cli("init --save_path " + (tmp / "j").string() + shape + tok);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("note: vocab_size 50400 is larger than the tokenizer's 50257 tokens: ids 50257-50399 have no "
                       "token and decode as nothing (--vocab_size 50257 to match it)"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(run_cli("generate --model " + (tmp / "j").string() + " --prompt hello --max_new_tokens 8").exit_code, 0);
  r = run_cli("init --save_path " + (tmp / "k").string() + shape + tok + " --vocab_size 50257");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("note:"), std::string::npos) << r.err;
}

TEST(CliInit, OutputFolderRule) {
  TempDir tmp;
  const fs::path out = tmp / "out";
  fs::create_directories(out);
  write_file(out / "thesis.tex", "not a model");
  // Someone else's non-empty folder: refused, one line naming the flag and the way out, untouched.
  auto r = run_cli("init --save_path " + out.string() + kShape);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("error: --save_path"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--overwrite_output_dir"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out / "config.json"));
  // With the flag: written into it, the other file kept (as HF writes into output_dir).
  r = run_cli("init --overwrite_output_dir --save_path " + out.string() + kShape);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(out / "model.safetensors"));
  EXPECT_EQ(read_file(out / "thesis.tex"), "not a model");
  // Its own earlier output: allowed without the flag (a rerun with another seed replaces it).
  const std::string before = read_file(out / "model.safetensors");
  r = run_cli("init --save_path " + out.string() + kShape + " --seed 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(read_file(out / "model.safetensors"), before);
  // finetune's rule is its own: an init folder is not a finetune output.
  EXPECT_EQ(nlohmann::json::parse(read_file(out / "lmforge_output.json"))["command"], "init");
}

TEST(CliInit, BadFlagsOneLineAndNoFolder) {
  TempDir tmp;
  const fs::path out = tmp / "m";
  for (const auto& [args, needle] : std::vector<std::pair<std::string, std::string>>{
           {kShape + " --tokenizer " + tmp.path().string(), "--tokenizer"},
           {kShape + " --dtype int4", "--dtype"},
           {kShape + " --max_shard_size lots", "--max_shard_size"},
           {" --n_head 5", "n_head"},
           {" --rotary_dim 8", "--rotary_dim"}}) {
    auto r = run_cli("init --save_path " + out.string() + args);
    EXPECT_EQ(r.exit_code, 1) << args << ": " << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(out)) << args;
  }
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp.path()), fs::directory_iterator()), 0);  // no staging folder
}

}  // namespace
}  // namespace lmforge
