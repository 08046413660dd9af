// `lmforge generate --benchmark_mode`, through the real binary.
// Nothing here depends on timings: only on token counts, fields and exit codes.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "common/run.h"

namespace lmforge {
namespace {

namespace fs = std::filesystem;
using test::model_cases;
using test::model_dir;
using test::count_lines;
using test::ids_arg;
using test::run_cli;

fs::path temp_file(const std::string& name) { return fs::temp_directory_path() / ("lmforge-bench-" + name); }

nlohmann::json read_json(const fs::path& file) {
  std::ifstream in(file);
  return nlohmann::json::parse(in);
}

// gptj-tiny/generate/25: greedy from this prompt emits token 429 as its third new token, so with
// --eos_token_id 429 a normal run stops after 3 tokens.
const std::vector<int> kEosPrompt{967, 506, 430, 291, 539, 408};
constexpr int kEarlyEos = 429;

TEST(CliBenchmark, PrintsTheTableAndWritesJson) {
  const auto json = temp_file("table.json");
  fs::remove(json);
  auto r = run_cli("generate --model " + model_dir("gpt2-tiny").string() +
                   " -p 'Hello world' --benchmark_mode --benchmark_seq_length 12 --benchmark_warmup 1"
                   " --benchmark_iters 2 --benchmark_json " + json.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* field : {"prompt tokens", "new tokens per row", "batch rows", "generated tokens per run",
                            "median latency (s)", "first-token latency (s)", "tokens/s", "peak memory (MB)",
                            "1 warm-up + 2 timed", "greedy"})
    EXPECT_NE(r.out.find(field), std::string::npos) << field << " missing in\n" << r.out;
  EXPECT_EQ(r.out.find("Hello world"), std::string::npos) << "benchmark mode prints no generated text";
  EXPECT_EQ(r.err, "");
  const auto j = read_json(json);
  EXPECT_EQ(j.at("prompt_tokens"), 2);
  EXPECT_EQ(j.at("new_tokens"), 12);
  EXPECT_EQ(j.at("generated_tokens"), 12);
  EXPECT_EQ(j.at("batch_rows"), 1);
  EXPECT_EQ(j.at("warmup"), 1);
  EXPECT_EQ(j.at("iters"), 2);
  EXPECT_EQ(j.at("latencies_s").size(), 2u);
  EXPECT_GT(j.at("median_latency_s").get<double>(), 0.0);
  EXPECT_GE(j.at("median_latency_s").get<double>(), j.at("first_token_latency_s").get<double>());
  EXPECT_GT(j.at("tokens_per_s").get<double>(), 0.0);
  EXPECT_GT(j.at("peak_memory_mb").get<double>(), 1.0);
  EXPECT_EQ(j.at("strategy"), "greedy");
  fs::remove(json);
}

// The same prompt that stops after 3 tokens in a normal run (EOS) gives exactly N in benchmark mode,
// for every row of a batch.
TEST(CliBenchmark, GeneratesExactlyNTokensThroughEos) {
  const std::string m = model_dir("gptj-tiny").string();
  auto normal = run_cli("generate --json --model " + m + " --prompt_ids " + ids_arg(kEosPrompt) +
                        " --do_sample false --max_new_tokens 20 --eos_token_id " + std::to_string(kEarlyEos));
  ASSERT_EQ(normal.exit_code, 0) << normal.err;
  const auto seq = nlohmann::json::parse(normal.out)[0].at("ids")[0].get<std::vector<int>>();
  ASSERT_EQ(seq.size(), kEosPrompt.size() + 3) << "fixture: greedy should stop at EOS " << kEarlyEos;
  ASSERT_EQ(seq.back(), kEarlyEos);

  const auto json = temp_file("eos.json");
  for (int batch : {1, 3}) {
    fs::remove(json);
    auto r = run_cli("generate --model " + m + " --prompt_ids " + ids_arg(kEosPrompt) + " --eos_token_id " +
                     std::to_string(kEarlyEos) + " --benchmark_mode --benchmark_seq_length 20 --benchmark_warmup 0" +
                     " --benchmark_iters 1 --batch_size " + std::to_string(batch) + " --benchmark_json " + json.string());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = read_json(json);
    EXPECT_EQ(j.at("prompt_tokens"), 6);
    EXPECT_EQ(j.at("new_tokens"), 20);
    EXPECT_EQ(j.at("batch_rows"), batch);
    EXPECT_EQ(j.at("generated_tokens"), 20 * batch);
    EXPECT_EQ(j.at("strategy"), "greedy") << "benchmark mode does not take the GPT-J sampling default";
    EXPECT_NE(r.out.find("generated tokens per run  " + std::to_string(20 * batch)), std::string::npos) << r.out;
  }
  fs::remove(json);
}

// The prompt and N may fill the context exactly; without a prompt the tokenizer's model gets the
// documented default prompt, a model without a tokenizer starts from bos_token_id.
TEST(CliBenchmark, DefaultPromptAndFullContext) {
  const auto json = temp_file("default.json");
  fs::remove(json);
  auto r = run_cli("generate --model " + model_dir("gpt2-tiny").string() +
                   " --benchmark_mode --benchmark_seq_length 125 --benchmark_warmup 0 --benchmark_iters 1"
                   " --benchmark_json " + json.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = read_json(json);
  EXPECT_EQ(j.at("prompt_tokens"), 3) << "\"hello i am\" is 3 GPT-2 tokens; 3 + 125 = n_positions 128";
  EXPECT_EQ(j.at("generated_tokens"), 125);

  fs::remove(json);
  r = run_cli("generate --model " + model_dir("gptj-tiny").string() +
              " --benchmark_mode --benchmark_seq_length 4 --benchmark_iters 1 --benchmark_json " + json.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = read_json(json);
  EXPECT_EQ(j.at("prompt_tokens"), 1);
  EXPECT_EQ(j.at("generated_tokens"), 4);
  fs::remove(json);
}

TEST(CliBenchmark, SamplingWhenAsked) {
  const auto json = temp_file("sample.json");
  fs::remove(json);
  auto r = run_cli("generate --model " + model_dir("gpt2-tiny").string() +
                   " -p hello --do_sample --seed 3 --benchmark_mode --benchmark_seq_length 5 --benchmark_iters 1"
                   " --benchmark_json " + json.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = read_json(json);
  EXPECT_EQ(j.at("strategy"), "sampling");
  EXPECT_EQ(j.at("generated_tokens"), 5);
  fs::remove(json);
}

struct BadBenchmark {
  std::string args;
  std::string must_mention;
};

class CliBenchmarkBadInput : public ::testing::TestWithParam<BadBenchmark> {};

TEST_P(CliBenchmarkBadInput, OneClearErrorLine) {
  std::string args = GetParam().args;
  for (size_t pos; (pos = args.find("$M")) != std::string::npos;) args.replace(pos, 2, model_dir("gpt2-tiny").string());
  auto r = run_cli(args);
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_LT(r.exit_code, 128) << "crashed: " << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(GetParam().must_mention), std::string::npos) << r.err;
}

INSTANTIATE_TEST_SUITE_P(
    Benchmark, CliBenchmarkBadInput,
    ::testing::Values(
        BadBenchmark{"generate --model $M -p hi --benchmark_mode", "--benchmark_seq_length"},
        BadBenchmark{"generate --model $M -p hi --benchmark_mode --benchmark_seq_length 0", "--benchmark_seq_length"},
        BadBenchmark{"generate --model $M -p hi --benchmark_mode --benchmark_seq_length -4", "--benchmark_seq_length"},
        BadBenchmark{"generate --model $M -p hi --benchmark_mode --benchmark_seq_length ten", "--benchmark_seq_length"},
        // "hello i am" is 3 tokens: 3 + 126 > n_positions 128
        BadBenchmark{"generate --model $M --benchmark_mode --benchmark_seq_length 126", "--benchmark_seq_length 126"},
        BadBenchmark{"generate --model $M --prompt_ids \"$(seq -s ' ' 1 100)\" --benchmark_mode --benchmark_seq_length 29",
                     "context is 128 positions"},
        BadBenchmark{"generate --model $M -p hi --benchmark_mode --benchmark_seq_length 4 --benchmark_warmup -1",
                     "--benchmark_warmup"},
        BadBenchmark{"generate --model $M -p hi --benchmark_mode --benchmark_seq_length 4 --benchmark_iters 0",
                     "--benchmark_iters"},
        BadBenchmark{"generate --model $M -p hi --benchmark_mode --benchmark_seq_length 4 --batch_size 0", "--batch_size"},
        BadBenchmark{"generate --model $M -p hi --benchmark_mode --benchmark_seq_length 4 --max_new_tokens 9",
                     "--max_new_tokens"},
        BadBenchmark{"generate --model $M -p hi --benchmark_mode --benchmark_seq_length 4 --json", "--json"},
        BadBenchmark{"generate --model $M -p hi --benchmark_mode --benchmark_seq_length 4 --benchmark_iters 1"
                     " --benchmark_json /nonexistent-dir/b.json",
                     "/nonexistent-dir/b.json"},
        BadBenchmark{"generate --model $M -p hi --benchmark_seq_length 4", "--benchmark_seq_length"},
        BadBenchmark{"generate --model /nonexistent/dir --benchmark_mode --benchmark_seq_length 4", "/nonexistent/dir"}));

}  // namespace
}  // namespace lmforge
