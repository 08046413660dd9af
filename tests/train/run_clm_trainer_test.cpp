// finetune() with run_clm.py's switches on a tiny model: when it evaluates and saves
// (evaluation_strategy / save_strategy), eval_results.json, --do_eval alone, and run_clm data.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "io/io_test_util.h"
#include "lmforge/train/metrics.h"
#include "lmforge/train/trainer.h"
#include "train/news_csv.h"

namespace lmforge {
namespace {

namespace fs = std::filesystem;
using test::TempDir;
using test::ThrowsError;

// 40 rows -> 32 train / 8 validation; 8 per batch -> 4 optimizer steps per epoch; 2 epochs = 8 steps.
TrainConfig tiny(const TempDir& t, const std::string& out) {
  TrainConfig c;
  c.init = InitMode::Random;
  c.tokenizer = (test::data_dir() / "tokenizer").string();
  c.n_layer = 1, c.n_embd = 16, c.n_head = 2, c.n_positions = 32;
  c.data_path = test::write_news_csv(t.path(), 40).string();
  c.save_path = (t / out).string();
  c.max_rows = 40;
  c.per_device_train_batch_size = 8;
  c.num_epochs = 2;
  c.logging_steps = 1;
  c.save_steps = 0;
  c.lr = 1e-3;
  return c;
}

FinetuneHooks quiet() {
  FinetuneHooks h;
  h.print = [](const std::string&, bool) {};
  return h;
}

std::vector<int64_t> eval_steps_of(const fs::path& save) {
  std::vector<int64_t> steps;
  for (const auto& r : read_metrics(save / "metrics.jsonl"))
    if (r.at("type") == "eval") steps.push_back(r.at("step").get<int64_t>());
  return steps;
}

std::vector<std::string> checkpoints_in(const fs::path& save) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(save))
    if (e.path().filename().string().starts_with("checkpoint-")) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

nlohmann::json read_json(const fs::path& p) { return nlohmann::json::parse(test::read_file(p)); }

// tiny() with the two strategies and their step counts.
TrainConfig with_strategies(const TempDir& t, const std::string& out, IntervalStrategy eval, int64_t eval_steps,
                            IntervalStrategy save, int64_t save_steps) {
  TrainConfig c = tiny(t, out);
  c.evaluation_strategy = eval;
  c.eval_steps = eval_steps;
  c.save_strategy = save;
  c.save_steps = save_steps;
  return c;
}

TEST(RunClmTrainer, EvaluationStrategySteps) {
  TempDir t;
  TrainConfig c = with_strategies(t, "out", IntervalStrategy::Steps, 3, IntervalStrategy::Steps, 3);
  c.do_train = true;
  const FinetuneResult r = finetune(c, quiet());
  EXPECT_EQ(r.steps, 8);
  EXPECT_EQ(eval_steps_of(c.save_path), (std::vector<int64_t>{3, 6, 8}));  // every 3 steps, and at the end (do_eval)
  EXPECT_EQ(checkpoints_in(c.save_path), (std::vector<std::string>{"checkpoint-3", "checkpoint-6"}));
  const nlohmann::json e = read_json(fs::path(c.save_path) / "eval_results.json");
  EXPECT_DOUBLE_EQ(e.at("eval_loss").get<double>(), r.final_eval_loss);
  EXPECT_DOUBLE_EQ(e.at("perplexity").get<double>(), std::exp(r.final_eval_loss));
  EXPECT_EQ(e.at("eval_samples"), 8);  // ceil(0.2 * 40) rows
  EXPECT_DOUBLE_EQ(e.at("epoch").get<double>(), 2.0);
}

TEST(RunClmTrainer, EvaluationAndSaveStrategyEpoch) {
  TempDir t;
  // The step counts are not used by `epoch`.
  const TrainConfig c = with_strategies(t, "out", IntervalStrategy::Epoch, 3, IntervalStrategy::Epoch, 1);
  finetune(c, quiet());
  EXPECT_EQ(eval_steps_of(c.save_path), (std::vector<int64_t>{4, 8}));
  EXPECT_EQ(checkpoints_in(c.save_path), (std::vector<std::string>{"checkpoint-4"}));  // none at the last step
}

TEST(RunClmTrainer, StrategyNoWithoutDoEvalNeverEvaluates) {
  TempDir t;
  TrainConfig c = with_strategies(t, "out", IntervalStrategy::No, 2, IntervalStrategy::No, 2);
  c.do_train = true;
  const FinetuneResult r = finetune(c, quiet());
  EXPECT_TRUE(std::isnan(r.final_eval_loss));
  EXPECT_TRUE(eval_steps_of(c.save_path).empty());
  EXPECT_TRUE(checkpoints_in(c.save_path).empty());
  EXPECT_FALSE(fs::exists(fs::path(c.save_path) / "eval_results.json"));
  EXPECT_TRUE(fs::exists(fs::path(c.save_path) / "model.safetensors"));
  // With --do_eval: once, at the end.
  TrainConfig d = tiny(t, "out2");
  d.do_train = true;
  d.do_eval = true;
  d.evaluation_strategy = IntervalStrategy::No;
  finetune(d, quiet());
  EXPECT_EQ(eval_steps_of(d.save_path), (std::vector<int64_t>{8}));
  EXPECT_TRUE(fs::exists(fs::path(d.save_path) / "eval_results.json"));
}

TEST(RunClmTrainer, DoEvalAloneEvaluatesTheModel) {
  TempDir t;
  TrainConfig c = tiny(t, "trained");
  const FinetuneResult trained = finetune(c, quiet());
  // The trained folder, evaluated alone on the same validation split: the same loss as the
  // evaluation at the end of training, and nothing but eval_results.json written.
  TrainConfig e = tiny(t, "eval");
  e.init = InitMode::Pretrained;
  e.n_layer.reset(), e.n_embd.reset(), e.n_head.reset(), e.n_positions.reset();
  e.model = c.save_path;
  e.tokenizer.clear();
  e.do_eval = true;
  const FinetuneResult r = finetune(e, quiet());
  EXPECT_EQ(r.steps, 0);
  EXPECT_NEAR(r.final_eval_loss, trained.final_eval_loss, 1e-6);
  std::vector<std::string> files;
  for (const auto& f : fs::directory_iterator(e.save_path)) files.push_back(f.path().filename().string());
  EXPECT_EQ(files, std::vector<std::string>{"eval_results.json"});
  const nlohmann::json j = read_json(fs::path(e.save_path) / "eval_results.json");
  EXPECT_EQ(j.at("eval_samples"), 8);
  EXPECT_FALSE(j.contains("epoch"));
}

TEST(RunClmTrainer, TrainFileIsGroupedIntoBlocks) {
  TempDir t;
  TrainConfig c = tiny(t, "out");
  std::ofstream(t / "train.txt") << std::string(200, 'a') << "\n";  // enough tokens for a few blocks of 16
  std::ofstream(t / "val.jsonl") << "{\"text\": \"" << std::string(100, 'b') << "\"}\n";
  set_config_value(c, "train_file", (t / "train.txt").string(), "--train_file");
  c.validation_file = (t / "val.jsonl").string();
  c.block_size = 16;
  c.per_device_train_batch_size = 1;
  c.num_epochs = 1;
  std::vector<std::string> lines;
  FinetuneHooks h;
  h.print = [&](const std::string& line, bool transient) {
    if (!transient) lines.push_back(line);
  };
  const FinetuneResult r = finetune(c, h);
  EXPECT_GT(r.steps, 0);
  EXPECT_TRUE(std::isfinite(r.final_eval_loss));
  const nlohmann::json rec = read_json(fs::path(c.save_path) / "lmforge_output.json").at("training");
  EXPECT_EQ(rec.at("run_clm"), true);
  EXPECT_EQ(rec.at("prefix"), "");
  EXPECT_EQ(rec.at("suffix"), "");
  EXPECT_EQ(rec.at("block_size"), 16);
  EXPECT_FALSE(rec.contains("text_column"));  // nothing for quantize to rebuild a CSV split from
  bool described = false;
  for (const auto& l : lines) described |= l.find("train.txt (run_clm): 1 rows of column 'text'") != std::string::npos;
  EXPECT_TRUE(described);
}

TEST(RunClmTrainer, MissingValidationFileFailsBeforeAnything) {
  TempDir t;
  TrainConfig c = tiny(t, "out");
  c.validation_file = (t / "nope.csv").string();
  EXPECT_TRUE(ThrowsError([&] { finetune(c, quiet()); }, {"nope.csv: no such file (--validation_file)"}));
  EXPECT_FALSE(fs::exists(c.save_path));
}

}  // namespace
}  // namespace lmforge
