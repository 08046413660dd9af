// LoRA through the binary: --adapter on the inference commands and `lmforge merge`, against the
// PEFT fixtures (tests/data/lora/), and their bad inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/fixtures.h"
#include "common/lora_fixture.h"
#include "common/run.h"

namespace lmforge {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::data_dir;
using test::run_cli;

using test::lora_dir;

json gptj_case() { return test::lora_case("gptj"); }

std::string ids_of(const json& c) { return test::ids_arg(c["prompt_ids"].get<std::vector<int>>()); }

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("lmforge_cli_lora_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

// max |ours - fixture| over all rows of two [T, V] arrays.
float max_diff(const test::NpyArray& a, const test::NpyArray& b) {
  EXPECT_EQ(a.shape, b.shape);
  float m = 0;
  for (size_t i = 0; i < std::min(a.data.size(), b.data.size()); ++i) m = std::max(m, std::abs(a.data[i] - b.data[i]));
  return m;
}

TEST(CliLora, LogitsWithAdapterAndMergedFolderGivePeftsLogits) {
  const json c = gptj_case();
  ASSERT_FALSE(c.is_null());
  TempDir tmp;
  const std::string base = (data_dir() / c["model"].get<std::string>()).string();
  const std::string adapter = (lora_dir() / c["adapter_dir"].get<std::string>()).string();
  const float tol = 1e-4f * c["output"]["max_abs_logit"].get<float>();
  const auto want = test::read_npy(lora_dir() / c["output"]["arrays"]["logits_lora"].get<std::string>());

  auto r = run_cli("logits --model " + base + " --adapter " + adapter + " --prompt_ids " + ids_of(c) + " --npy " +
                   (tmp.path / "unmerged.npy").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LE(max_diff(test::read_npy(tmp.path / "unmerged.npy"), want), tol);

  r = run_cli("merge --model " + base + " --adapter " + adapter + " --save_path " + (tmp.path / "merged").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("merged 4 LoRA modules"), std::string::npos) << r.err;
  r = run_cli("logits --model " + (tmp.path / "merged").string() + " --prompt_ids " + ids_of(c) + " --npy " +
              (tmp.path / "merged.npy").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LE(max_diff(test::read_npy(tmp.path / "merged.npy"), want), tol);
  const auto peft_merged = test::read_npy(lora_dir() / c["output"]["arrays"]["logits_merged"].get<std::string>());
  EXPECT_LE(max_diff(test::read_npy(tmp.path / "merged.npy"), peft_merged), tol);

  // Without the adapter: the base's logits, far from the adapter's.
  r = run_cli("logits --model " + base + " --prompt_ids " + ids_of(c) + " --npy " + (tmp.path / "base.npy").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto base_want = test::read_npy(lora_dir() / c["output"]["arrays"]["logits_base"].get<std::string>());
  EXPECT_LE(max_diff(test::read_npy(tmp.path / "base.npy"), base_want), tol);
  EXPECT_GT(max_diff(test::read_npy(tmp.path / "base.npy"), want), 1.0f);
}

TEST(CliLora, GenerateWithAdapterTakesPeftsGreedyToken) {
  // Greedy decoding's first new token is the argmax of the adapter's last-position logits.
  for (const auto& c : test::read_jsonl(lora_dir() / "cases.jsonl")) {
    const auto logits = test::read_npy(lora_dir() / c["output"]["arrays"]["logits_lora"].get<std::string>());
    const size_t V = static_cast<size_t>(logits.shape[1]), last = static_cast<size_t>(logits.shape[0]) - 1;
    const auto row = logits.data.begin() + static_cast<std::ptrdiff_t>(last * V);
    const int want = static_cast<int>(std::max_element(row, row + static_cast<std::ptrdiff_t>(V)) - row);
    ASSERT_EQ(c["logit_positions"].back().get<int>(), 9);
    const auto r = run_cli("generate --model " + (data_dir() / c["model"].get<std::string>()).string() + " --adapter " +
                           (lora_dir() / c["adapter_dir"].get<std::string>()).string() + " --prompt_ids " + ids_of(c) +
                           " --max_new_tokens 1 --json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json out = json::parse(r.out);
    EXPECT_EQ(out[0]["ids"][0].back().get<int>(), want) << c["id"];
  }
}

TEST(CliLora, AnAdapterFolderAsModelLoadsItsBase) {
  // peft's AutoPeftModelForCausalLM: --model names the adapter, whose config names the base.
  const json c = gptj_case();
  TempDir tmp;
  const fs::path adapter = tmp.path / "adapter";
  fs::copy(lora_dir() / c["adapter_dir"].get<std::string>(), adapter);
  json cfg = json::parse(std::ifstream(adapter / "adapter_config.json"));
  cfg["base_model_name_or_path"] = fs::absolute(data_dir() / c["model"].get<std::string>()).string();
  std::ofstream(adapter / "adapter_config.json") << cfg.dump(2);
  auto r = run_cli("logits --model " + adapter.string() + " --prompt_ids " + ids_of(c) + " --npy " +
                   (tmp.path / "a.npy").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto want = test::read_npy(lora_dir() / c["output"]["arrays"]["logits_lora"].get<std::string>());
  EXPECT_LE(max_diff(test::read_npy(tmp.path / "a.npy"), want), 1e-4f * c["output"]["max_abs_logit"].get<float>());

  cfg["base_model_name_or_path"] = (tmp.path / "no-such-base").string();
  std::ofstream(adapter / "adapter_config.json") << cfg.dump(2);
  r = run_cli("logits --model " + adapter.string() + " --prompt_ids '1 2' --npy " + (tmp.path / "b.npy").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("the base model '" + (tmp.path / "no-such-base").string() + "' of adapter folder"),
            std::string::npos)
      << r.err;
}

TEST(CliLora, FinetuneWithLoraThenUseTheAdapterFolder) {
  TempDir tmp;
  {
    std::ofstream csv(tmp.path / "news.csv");
    csv << "headline_text\n";
    const char* subjects[] = {"farmers", "council", "police", "school"};
    const char* verbs[] = {"plan", "warn", "seek", "back"};
    for (int i = 0; i < 64; ++i) csv << subjects[i % 4] << " " << verbs[(i / 4) % 4] << " water rules\n";
  }
  const std::string base = test::model_dir("gpt2-tiny").string(), out = (tmp.path / "out").string();
  auto r = run_cli("finetune --model " + base + " --data_path " + (tmp.path / "news.csv").string() + " --save_path " +
                   out + " --lora_r 8 --lora_alpha 16 --lora_target c_attn --lr 0.03 --max_steps 6 "
                   "--per_device_train_batch_size 8 --gradient_checkpointing true --base_dtype bfloat16");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("LoRA r 8 (lora_alpha 16) on c_attn"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("base in bfloat16"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(tmp.path / "out" / "adapter_model.safetensors"));
  const json cfg = json::parse(std::ifstream(tmp.path / "out" / "adapter_config.json"));
  EXPECT_EQ(cfg["r"], 8);
  EXPECT_EQ(cfg["lora_alpha"], 16);
  EXPECT_EQ(cfg["target_modules"], json::array({"c_attn"}));
  EXPECT_EQ(cfg["fan_in_fan_out"], true);
  EXPECT_EQ(cfg["base_model_name_or_path"], fs::absolute(base).lexically_normal().string());
  // The folder works as --model (its base found through the config) and as --adapter.
  r = run_cli("generate --model " + out + " --prompt farmers --max_new_tokens 3");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const std::string as_model = r.out;
  r = run_cli("generate --model " + base + " --adapter " + out + " --prompt farmers --max_new_tokens 3");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, as_model);
  // Perplexity of the rows in the training format: with the adapter it beats the base's.
  auto ppl = [&](const std::string& args) {
    const auto p = run_cli("eval perplexity " + args + " --data_path " + (tmp.path / "news.csv").string() +
                           " --prefix '|HEADLINE| ' --suffix . --append_eos true --json");
    EXPECT_EQ(p.exit_code, 0) << p.err;
    return json::parse(p.out.empty() ? "{}" : p.out).value("perplexity", 0.0);
  };
  const double tuned = ppl("--model " + base + " --adapter " + out), plain = ppl("--model " + base);
  EXPECT_GT(tuned, 1.0);
  EXPECT_LT(tuned, plain);
}

TEST(CliLora, BadInputsGetOneLineErrors) {
  TempDir tmp;
  const std::string gptj = test::model_dir("gptj-tiny").string(), gpt2 = test::model_dir("gpt2-tiny").string();
  const std::string j_adapter = (lora_dir() / "gptj-tiny/adapter").string();
  struct Case {
    std::string args, expect;
  };
  // A quantized base for merge.
  {
    std::ofstream csv(tmp.path / "news.csv");
    csv << "headline_text\n";
    for (const char* row : {"the jury said friday", "an investigation of atlanta", "produced no evidence",
                            "took place in the city"})
      csv << row << "\n";
  }
  auto r = run_cli("quantize --model " + gpt2 + " --data_path " + (tmp.path / "news.csv").string() + " --save_path " +
                   (tmp.path / "q").string() + " --validation_fraction 0.5");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Case cases[] = {
      {"logits --model " + gpt2 + " --adapter " + j_adapter + " --prompt_ids '1' --npy /tmp/x.npy",
       "match no linear layer of this GPT-2 model"},
      {"logits --model " + gptj + " --adapter " + (tmp.path / "none").string() + " --prompt_ids '1' --npy /tmp/x.npy",
       "is not a folder"},
      {"merge --model " + gptj + " --adapter " + gptj + " --save_path " + (tmp.path / "m").string(),
       "adapter_config.json: no such file"},
      {"merge --model " + gptj + " --save_path " + (tmp.path / "m").string(), "--adapter is required"},
      {"merge --model " + gptj + " --adapter " + j_adapter + " --save_path " + gptj, "exists and is not empty"},
      {"finetune --model " + gpt2 + " --data_path /dev/null --save_path " + (tmp.path / "m").string() + " --lora_r 0",
       "--lora_r must be a positive integer, got 0"},
      {"finetune --model " + gpt2 + " --data_path /dev/null --save_path " + (tmp.path / "m").string() +
           " --lora_dropout 1",
       "--lora_dropout must be in [0, 1), got 1"},
      {"finetune --model " + gpt2 + " --data_path /dev/null --save_path " + (tmp.path / "m").string() +
           " --lora_alpha -2",
       "--lora_alpha"},
      {"finetune --model " + gpt2 + " --data_path " + (tmp.path / "news.csv").string() + " --save_path " +
           (tmp.path / "m").string() + " --lora_target q_proj",
       "valid: c_attn, c_proj, c_fc, c_proj"},
  };
  for (const auto& c : cases) {
    r = run_cli(c.args);
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.args << "\n" << r.err;
    EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
  }
  EXPECT_FALSE(fs::exists(tmp.path / "m"));
  r = run_cli("merge --model " + (tmp.path / "q").string() + " --adapter " + (lora_dir() / "gpt2-tiny/adapter").string() +
              " --save_path " + (tmp.path / "m").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("is quantized (int8); merge the adapter into the float model"), std::string::npos) << r.err;
  // ... but it takes the adapter unmerged, as every --dtype does.
  r = run_cli("logits --model " + (tmp.path / "q").string() + " --adapter " + (lora_dir() / "gpt2-tiny/adapter").string() +
              " --prompt_ids '1 2 3' --npy " + (tmp.path / "q.npy").string());
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

}  // namespace
}  // namespace lmforge
