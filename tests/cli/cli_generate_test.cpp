// The generate / logits / inspect / init subcommands end to end, through the real binary.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "common/run.h"

namespace lmforge {
namespace {

using test::model_cases;
using test::model_dir;
using test::count_lines;
using test::ids_arg;
using test::run_cli;

// Seed 001's beam search through the CLI: --json ids and scores equal HF's.
TEST(CliGenerate, BeamSearchJsonMatchesHF) {
  for (const auto& c : model_cases("gpt2-tiny", "generate")) {
    const auto& a = c.at("args");
    if (a.value("num_beams", 1) != 5 || a.value("num_return_sequences", 1) != 5) continue;
    std::string cmd = "generate --json --model " + model_dir("gpt2-tiny").string() + " --prompt_ids " +
                      ids_arg(c.at("input_ids").get<std::vector<int>>()) + " --num_beams 5 --num_return_sequences 5" +
                      " --no_repeat_ngram_size 2 --early_stopping --max_length " + std::to_string(a.at("max_length").get<int>());
    auto r = run_cli(cmd);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    ASSERT_EQ(j.size(), 1u);
    EXPECT_EQ(j[0].at("ids"), c.at("output").at("sequences")) << c.at("id");
    const auto scores = j[0].at("sequences_scores").get<std::vector<double>>();
    const auto expected = c.at("output").at("sequences_scores").get<std::vector<double>>();
    ASSERT_EQ(scores.size(), expected.size());
    for (size_t i = 0; i < scores.size(); ++i) EXPECT_NEAR(scores[i], expected[i], 1e-4);
    EXPECT_EQ(j[0].at("sentences").size(), 5u);
    EXPECT_NE(r.err.find("tokens/s"), std::string::npos) << "closing line on stderr";
    return;
  }
  FAIL() << "no seed-001 beam case in the fixtures";
}

// Several --prompt_ids form a left-padded batch, as HF's batch cases.
TEST(CliGenerate, PromptIdsBatchMatchesHF) {
  for (const auto& c : model_cases("gpt2-switches", "batch")) {
    const auto& a = c.at("args");
    if (a.value("num_beams", 1) != 1 || a.contains("repetition_penalty")) continue;
    std::string cmd = "generate --json --model " + model_dir("gpt2-switches").string() + " --max_new_tokens " +
                      std::to_string(a.at("max_new_tokens").get<int>());
    for (const auto& p : c.at("input_ids")) cmd += " --prompt_ids " + ids_arg(p.get<std::vector<int>>());
    auto r = run_cli(cmd);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    const auto& expected = c.at("output").at("sequences");
    ASSERT_EQ(j.size(), expected.size());
    for (size_t i = 0; i < j.size(); ++i) EXPECT_EQ(j[i].at("ids")[0], expected[i]) << c.at("id") << " row " << i;
    return;
  }
  FAIL() << "no greedy batch case";
}

// --batch_size B: the prompts run B at a time, each batch padded on its own. B = all of them is
// HF's batch case; B = 2 of 3 prompts gives the first two as their own batch and the third alone.
TEST(CliGenerate, BatchSizeRunsThePromptsInBatchesOfTheirOwn) {
  for (const auto& c : model_cases("gpt2-switches", "batch")) {
    const auto& a = c.at("args");
    if (a.value("num_beams", 1) != 1 || a.contains("repetition_penalty") || c.at("input_ids").size() != 3) continue;
    const std::string base = "generate --json --model " + model_dir("gpt2-switches").string() + " --max_new_tokens " +
                             std::to_string(a.at("max_new_tokens").get<int>());
    std::vector<std::string> prompt_args;
    for (const auto& p : c.at("input_ids")) prompt_args.push_back(" --prompt_ids " + ids_arg(p.get<std::vector<int>>()));
    auto ids_of = [&](const std::string& args) {
      const auto r = run_cli(base + args);
      EXPECT_EQ(r.exit_code, 0) << r.err;
      std::vector<nlohmann::json> ids;
      for (const auto& e : nlohmann::json::parse(r.exit_code == 0 ? r.out : "[]")) ids.push_back(e.at("ids")[0]);
      return ids;
    };
    const auto all = ids_of(prompt_args[0] + prompt_args[1] + prompt_args[2] + " --batch_size 3");
    const auto& expected = c.at("output").at("sequences");
    ASSERT_EQ(all.size(), 3u);
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(all[i], expected[i]) << c.at("id") << " row " << i;

    const auto two = ids_of(prompt_args[0] + prompt_args[1] + prompt_args[2] + " --batch_size 2");
    const auto first_two = ids_of(prompt_args[0] + prompt_args[1]);
    const auto third = ids_of(prompt_args[2]);
    ASSERT_EQ(two.size(), 3u);
    ASSERT_EQ(first_two.size(), 2u);
    ASSERT_EQ(third.size(), 1u);
    EXPECT_EQ(two[0], first_two[0]);
    EXPECT_EQ(two[1], first_two[1]);
    EXPECT_EQ(two[2], third[0]);
    // Text output numbers the prompts over the whole run.
    const auto text = run_cli("generate --model " + model_dir("gpt2-switches").string() + " --max_new_tokens 2" +
                              prompt_args[0] + prompt_args[1] + prompt_args[2] + " --batch_size 2");
    ASSERT_EQ(text.exit_code, 0) << text.err;
    EXPECT_NE(text.out.find("=== prompt 2, sequence 0 ==="), std::string::npos) << text.out;
    const auto bad = run_cli(base + prompt_args[0] + " --batch_size 0");
    EXPECT_EQ(bad.exit_code, 1);
    EXPECT_NE(bad.err.find("error: --batch_size must be >= 1 (got 0)"), std::string::npos) << bad.err;
    return;
  }
  FAIL() << "no greedy batch case of 3 prompts";
}

TEST(CliGenerate, ShowChoicesPrintsTopNPerStep) {
  const auto c = model_cases("gpt2-tiny", "topn").front();
  auto r = run_cli("generate --json --show_choices 5 --model " + model_dir("gpt2-tiny").string() + " --prompt_ids " +
                   ids_arg(c.at("input_ids").get<std::vector<int>>()) + " --max_new_tokens " +
                   std::to_string(c.at("args").at("max_new_tokens").get<int>()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  const auto& steps = j[0].at("choices")[0];
  const auto& expected = c.at("output").at("steps");
  ASSERT_EQ(steps.size(), expected.size());
  for (size_t s = 0; s < steps.size(); ++s) {
    EXPECT_EQ(steps[s].at("ids"), expected[s].at("ids"));
    for (size_t k = 0; k < 5; ++k)
      EXPECT_NEAR(steps[s].at("probs")[k].get<double>(), expected[s].at("probs")[k].get<double>(), 1e-5);
  }
  EXPECT_EQ(j[0].at("ids")[0], c.at("output").at("sequences")[0]);
}

TEST(CliGenerate, TextPromptStreamsDecodedText) {
  auto r = run_cli("generate --model " + model_dir("gpt2-tiny").string() + " --prompt 'Hello world' --max_new_tokens 5");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Hello world", 0), 0u) << r.out;
  EXPECT_NE(r.err.find("5 generated tokens"), std::string::npos) << r.err;
}

TEST(CliLogits, WritesNpyEqualToHF) {
  const auto c = model_cases("gpt2-switches", "logits").front();
  const auto out = std::filesystem::temp_directory_path() / "lmforge-cli-logits.npy";
  auto r = run_cli("logits --model " + model_dir("gpt2-switches").string() + " --prompt_ids " +
                   ids_arg(c.at("input_ids").get<std::vector<int>>()) + " --npy " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto ours = test::read_npy(out);
  const auto expected = test::read_npy(c.at("output").at("npy").get<std::string>());
  const auto positions = c.at("args").at("positions").get<std::vector<int>>();
  const int64_t V = ours.shape[1];
  ASSERT_EQ(ours.shape[0], static_cast<int64_t>(c.at("input_ids").size()));
  const float tol = 1e-4f * c.at("output").at("max_abs_logit").get<float>();
  for (size_t p = 0; p < positions.size(); ++p)
    for (int64_t v = 0; v < V; ++v) ASSERT_NEAR(ours.data[positions[p] * V + v], expected.data[p * V + v], tol);
  std::filesystem::remove(out);
}

TEST(CliLogits, Bf16ComputeStaysNearHFAndAnUnknownDtypeIsOneError) {
  // --dtype bfloat16_compute (bf16 weights and activations): the logits of the 64-token case
  // (vdpbf16ps where the CPU has it) within 3 % of HF's range, and not bfloat16's own.
  const auto c = model_cases("gpt2-bf16", "logits").back();
  const auto ids = c.at("input_ids").get<std::vector<int>>();
  ASSERT_GT(ids.size(), 16u);
  const auto dir = std::filesystem::temp_directory_path();
  std::vector<test::NpyArray> got;
  for (const std::string dtype : {"bfloat16_compute", "bfloat16"}) {
    const auto out = dir / ("lmforge-cli-logits-" + dtype + ".npy");
    auto r = run_cli("logits --dtype " + dtype + " --model " + model_dir("gpt2-bf16").string() +
                     " --prompt_ids " + ids_arg(ids) + " --npy " + out.string());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    got.push_back(test::read_npy(out));
    std::filesystem::remove(out);
  }
  const auto expected = test::read_npy(c.at("output").at("npy").get<std::string>());
  const auto positions = c.at("args").at("positions").get<std::vector<int>>();
  const int64_t V = got[0].shape[1];
  const float scale = c.at("output").at("max_abs_logit").get<float>();
  float worst = 0.0f;
  for (size_t p = 0; p < positions.size(); ++p)
    for (int64_t v = 0; v < V; ++v)
      worst = std::max(worst, std::fabs(got[0].data[positions[p] * V + v] - expected.data[p * V + v]));
  EXPECT_LE(worst, 0.03f * scale);
  EXPECT_NE(got[0].data, got[1].data);

  auto bad = run_cli("logits --dtype bf16c --model " + model_dir("gpt2-bf16").string() + " --prompt_ids 1,2 --npy " +
                     (dir / "lmforge-cli-logits-never.npy").string());
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_EQ(count_lines(bad.err), 1) << bad.err;
  EXPECT_NE(bad.err.find("--dtype"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("bfloat16_compute"), std::string::npos) << bad.err;
}

TEST(CliInspect, ShowsShapesAndSpecialTokens) {
  auto r = run_cli("inspect --json " + model_dir("gpt2-tiny").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("vocab_size"), 50257);
  EXPECT_EQ(j.at("n_layer"), 2);
  EXPECT_EQ(j.at("tokenizer").at("eos").at("id"), 50256);
  EXPECT_EQ(j.at("tokenizer").at("eos").at("token"), "<|endoftext|>");
  // wte 50257*16 + wpe 128*16 + 2 blocks of (ln 2*16*2 + attn 16*48+48 + 16*16+16 + mlp 16*64+64 + 64*16+16) + ln_f 32
  const int64_t block = 4 * 16 + (16 * 48 + 48) + (16 * 16 + 16) + (16 * 64 + 64) + (64 * 16 + 16);
  EXPECT_EQ(j.at("parameters"), 50257 * 16 + 128 * 16 + 2 * block + 32);
  auto t = run_cli("inspect " + model_dir("gptj-tiny").string());
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.out.find("rotary_dim"), std::string::npos);
}

TEST(CliInit, WritesALoadableFolder) {
  const auto dir = std::filesystem::temp_directory_path() / "lmforge-cli-init";
  std::filesystem::remove_all(dir);
  auto r = run_cli("init --save_path " + dir.string() + " --n_layer 2 --n_head 2 --n_embd 32 --n_positions 64 --vocab_size 300");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto g = run_cli("generate --json --model " + dir.string() + " --prompt_ids '1 2 3' --max_new_tokens 4");
  ASSERT_EQ(g.exit_code, 0) << g.err;
  EXPECT_EQ(nlohmann::json::parse(g.out)[0].at("ids")[0].size(), 7u);
  std::filesystem::remove_all(dir);
}

TEST(CliGenerate, TokenizerLargerThanModelVocabIsAnError) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "lmforge-vocab-mismatch";
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors"}) fs::copy_file(model_dir("gpt2-switches") / f, dir / f);
  for (const char* f : {"vocab.json", "merges.txt"}) fs::copy_file(model_dir("gpt2-tiny") / f, dir / f);
  auto r = run_cli("generate --model " + dir.string() + " --prompt hello --max_new_tokens 2");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("vocab.json"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("vocab_size 1000"), std::string::npos) << r.err;
  fs::remove_all(dir);
}

// Every bad input: one line on stderr naming the flag or file, non-zero exit, no crash.
struct BadInput {
  std::string args;
  std::string must_mention;
};

class CliBadInput : public ::testing::TestWithParam<BadInput> {};

TEST_P(CliBadInput, OneClearErrorLine) {
  const std::string m = model_dir("gpt2-tiny").string();
  std::string args = GetParam().args;
  for (size_t pos; (pos = args.find("$M")) != std::string::npos;) args.replace(pos, 2, m);
  auto r = run_cli(args);
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_LT(r.exit_code, 128) << "crashed: " << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find(GetParam().must_mention), std::string::npos) << r.err;
}

INSTANTIATE_TEST_SUITE_P(
    Generate, CliBadInput,
    ::testing::Values(
        BadInput{"generate --model /nonexistent/dir --prompt_ids '1 2'", "/nonexistent/dir"},
        BadInput{"generate --model $M --prompt_ids '1 2' --do_sample --temperature 0", "--temperature"},
        BadInput{"generate --model $M --prompt_ids '1 2' --do_sample --temperature -1", "--temperature"},
        BadInput{"generate --model $M --prompt_ids '1 2' --do_sample --top_p 1.5", "--top_p"},
        BadInput{"generate --model $M --prompt_ids '1 2' --do_sample --top_p 0", "--top_p"},
        BadInput{"generate --model $M --prompt_ids '1 2' --do_sample --top_k -3", "--top_k"},
        BadInput{"generate --model $M --prompt_ids '1 2' --num_beams 2 --num_return_sequences 3", "--num_return_sequences"},
        BadInput{"generate --model $M --prompt_ids '1 2 3 4 5' --max_length 3", "--max_length"},
        BadInput{"generate --model $M --prompt_ids '1 2' --max_new_tokens 500", "--max_new_tokens"},
        BadInput{"generate --model $M --prompt_ids 'x y'", "--prompt_ids"},
        BadInput{"generate --model $M --prompt_ids '1 99999999'", "vocabulary"},
        BadInput{"generate --model $M --prompt_ids '1' --early_stopping sometimes", "--early_stopping"},
        BadInput{"logits --model $M --prompt_ids \"$(seq -s ' ' 1 200)\" --npy /tmp/x.npy", "n_positions"},
        BadInput{"logits --model $M --prompt_ids '1 2' --npy /nonexistent-dir/x.npy", "/nonexistent-dir/x.npy"},
        BadInput{"inspect /nonexistent/dir", "/nonexistent/dir"}));

}  // namespace
}  // namespace lmforge
