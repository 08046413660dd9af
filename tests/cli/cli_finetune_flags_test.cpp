// `lmforge finetune` flags through the real binary: the LoRA keys (an explicit --lora wins over the
// flags that imply it, in either order) and their one-line errors.
#include <gtest/gtest.h>

#include <string>

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

}  // namespace
}  // namespace lmforge
