// `lmforge finetune` flags through the real binary: the LoRA keys (an explicit --lora wins over the
// flags that imply it, in either order) and their one-line errors; HF run_clm.py's command line.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "common/run.h"

namespace lmforge {
namespace {

using test::run_cli;

// Exactly `line` on stderr and exit code 1 (a bad value, not a usage error).
void expect_failure(const std::string& args, const std::string& line) {
  const auto r = run_cli(args);
  EXPECT_EQ(r.exit_code, 1) << args << "\n" << r.err;
  EXPECT_EQ(r.err, "error: " + line + "\n") << args;
}

// validate() runs before the data file is looked at: a config that passes it stops at the missing CSV.
const std::string kNoData = "finetune --model " + test::model_dir("gpt2-tiny").string() +
                            " --data_path /nonexistent/x.csv --save_path /nonexistent/out ";

TEST(CliFinetuneFlags, LoraFlagsImplyLoraUnlessLoraIsGiven) {
  expect_failure(kNoData + "--lora_r 4 --base_dtype int8", "/nonexistent/x.csv: no such file");
  expect_failure(kNoData + "--lora_target q_proj,v_proj --base_dtype=bfloat16", "/nonexistent/x.csv: no such file");
  expect_failure(kNoData + "--lora --base_dtype int8", "/nonexistent/x.csv: no such file");
  const std::string needs = "--base_dtype int8 needs --lora (only a frozen LoRA base can be held in it): a full "
                            "fine-tune trains fp32 weights";
  expect_failure(kNoData + "--base_dtype int8", needs);
  expect_failure(kNoData + "--lora_r 4 --lora False --base_dtype int8", needs);
  expect_failure(kNoData + "--lora false --lora_alpha 16 --base_dtype int8", needs);
}

TEST(CliFinetuneFlags, LoraValuesAreChecked) {
  expect_failure(kNoData + "--lora_r 0", "--lora_r must be a positive integer, got 0");
  expect_failure(kNoData + "--lora_alpha 0", "--lora_alpha must be > 0, got 0");
  expect_failure(kNoData + "--lora_dropout 1", "--lora_dropout must be in [0, 1), got 1");
  expect_failure(kNoData + "--lora --base_dtype fp16", "--base_dtype must be float32, bfloat16 or int8, got 'fp16'");
}

namespace fs = std::filesystem;

// A folder of its own (the pid keeps concurrent runs of this suite apart), with a small CSV pair in
// run_clm.py's format: column `text` (and an id column before it).
class RunClmCommandLine : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lmforge-runclm-cli-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "data");
    const char* words[] = {"the", "council", "approved", "a", "new", "budget", "for", "schools", "and", "roads"};
    for (const auto& [name, rows] : {std::pair{"train.csv", 60}, std::pair{"val.csv", 16}}) {
      std::ofstream out(dir_ / "data" / name);
      out << "id,text\n";
      for (int i = 0; i < rows; ++i) {
        out << i << ",";
        for (int w = 0; w < 10; ++w) out << (w ? " " : "") << words[(i * 7 + w * 3) % 10];
        out << "\n";
      }
    }
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

// The seed command (deepspeed --num_gpus=1 run_clm.py ...) with lmforge finetune in front, a tiny
// local model for EleutherAI/gpt-j-6B and --max_steps 2 added so that it ends in seconds.
TEST_F(RunClmCommandLine, TheSeedCommandRuns) {
  const std::string m = test::model_dir("gpt2-tiny").string();
  const auto r = run_cli(
      "finetune --deepspeed ds_config_gptj.json --model_name_or_path " + m + " --train_file " + path("data/train.csv") +
      " --validation_file " + path("data/val.csv") +
      " --do_train --do_eval --fp16 --overwrite_cache --evaluation_strategy=steps --output_dir " + path("finetune_gptj6b") +
      " --num_train_epochs 40 --eval_steps 10 --gradient_accumulation_steps 32 --per_device_train_batch_size 2"
      " --use_fast_tokenizer False --learning_rate 5e-06 --warmup_steps 10 --save_total_limit 20 --save_steps 500"
      " --save_strategy steps --tokenizer_name " + m + " --max_steps 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("lmforge: --fp16: training runs on the CPU, which has no fp16 autocast; using bf16 autocast "
                       "(--bfloat16) instead\n"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("lmforge: --deepspeed ds_config_gptj.json: ignored"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("(run_clm): 60 rows of column 'text'"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("final train loss "), std::string::npos) << r.out;
  const fs::path out = dir_ / "finetune_gptj6b";
  for (const char* f : {"config.json", "model.safetensors", "vocab.json", "eval_results.json", "train_config.yml"})
    EXPECT_TRUE(fs::exists(out / f)) << f;
  std::ifstream in(out / "eval_results.json");
  const nlohmann::json e = nlohmann::json::parse(in);
  EXPECT_NEAR(e.at("perplexity").get<double>(), std::exp(e.at("eval_loss").get<double>()), 1e-6 * e.at("perplexity").get<double>());
  std::ifstream yml(out / "train_config.yml");
  const std::string config((std::istreambuf_iterator<char>(yml)), std::istreambuf_iterator<char>());
  for (const char* line : {"run_clm: true", "fp16: true", "evaluation_strategy: \"steps\"", "eval_steps: 10",
                           "gradient_accumulation_steps: 32", "lr: 5e-06", "use_fast_tokenizer: false"})
    EXPECT_NE(config.find(line), std::string::npos) << line << " not in\n" << config;
}

TEST_F(RunClmCommandLine, DoEvalAloneEvaluatesTheModel) {
  const std::string m = test::model_dir("gpt2-tiny").string();
  const auto r = run_cli("finetune --model_name_or_path " + m + " --validation_file " + path("data/val.csv") +
                         " --do_eval --output_dir " + path("eval"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("eval_loss ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find(", perplexity "), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(dir_ / "eval" / "eval_results.json"));
  EXPECT_FALSE(fs::exists(dir_ / "eval" / "model.safetensors"));
}

TEST_F(RunClmCommandLine, Errors) {
  const std::string base = "finetune --model_name_or_path " + test::model_dir("gpt2-tiny").string() + " --output_dir " +
                           path("out") + " --do_train --train_file " + path("data/train.csv");
  expect_failure(base + " --evaluation_strategy=stepz",
                 "--evaluation_strategy: key 'evaluation_strategy' must be 'steps', 'epoch' or 'no', got 'stepz'");
  expect_failure(base + " --save_strategy sometimes",
                 "--save_strategy: key 'save_strategy' must be 'steps', 'epoch' or 'no', got 'sometimes'");
  {
    std::ofstream(dir_ / "data" / "body.csv") << "id,body\n1,the council\n";
  }
  const auto r = run_cli(base + " --validation_file " + path("data/body.csv"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("error: " + path("data/body.csv") +
                       ": no column 'text' (columns: 'id', 'body'); --validation_file needs the text column of the "
                       "training file\n"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out"));  // a failed run leaves no folder behind
  expect_failure("finetune --model_name_or_path " + test::model_dir("gpt2-tiny").string() + " --output_dir " +
                     path("out") + " --do_train --train_file " + path("data/missing.csv"),
                 path("data/missing.csv") + ": no such file");
  expect_failure(base + " --validation_file " + path("data/missing.jsonl"),
                 path("data/missing.jsonl") + ": no such file (--validation_file)");
  expect_failure("finetune --model_name_or_path " + test::model_dir("gpt2-tiny").string() + " --output_dir " +
                     path("out") + " --train_file " + path("data/train.csv") + " --do_train false",
                 "nothing to do: --do_train and --do_eval are both false (as in run_clm.py, without --do_train nothing "
                 "is trained; --do_eval alone evaluates --model on the validation set)");
}

}  // namespace
}  // namespace lmforge
