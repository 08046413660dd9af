// The whole fine-tuning job on a tiny model: it learns, writes an HF folder that loads, resumes
// exactly, and answers every bad input with one clear error.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "common/fixtures.h"
#include "lmforge/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/io/output_dir.h"
#include "lmforge/model/model.h"
#include "lmforge/train/train_state.h"
#include "lmforge/train/trainer.h"
#include "train/news_csv.h"

namespace lmforge {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  // The pid keeps concurrent runs of this suite (several build folders) apart.
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("lmforge-trainer-" + name + "-" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

fs::path write_csv(const fs::path& dir, int rows, const std::string& column = "headline_text") {
  return test::write_news_csv(dir, rows, column);
}

TrainConfig tiny_config(const fs::path& csv, const fs::path& save) {
  TrainConfig c;
  c.init = InitMode::Random;
  c.tokenizer = (test::data_dir() / "tokenizer").string();
  c.n_layer = 1, c.n_embd = 16, c.n_head = 2, c.n_positions = 32;
  c.data_path = csv.string();
  c.save_path = save.string();
  c.max_rows = 200;
  c.per_device_train_batch_size = 8;
  c.lr = 2e-2;
  c.num_epochs = 3;
  c.logging_steps = 5;
  c.save_steps = 0;
  return c;
}

FinetuneHooks quiet() {
  FinetuneHooks h;
  h.print = [](const std::string&, bool) {};
  return h;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Finetune, LearnsAndWritesAnHFFolder) {
  TempDir t("learn");
  auto cfg = tiny_config(write_csv(t.path, 200), t.path / "out");
  const FinetuneResult r = finetune(cfg, quiet());
  EXPECT_EQ(r.steps, 3 * 20);  // 160 train rows / 8 per batch, 3 epochs
  // An untrained model is near ln(50257) = 10.8; the data has ~20 distinct tokens in fixed slots.
  EXPECT_LT(r.final_eval_loss, 4.0);
  EXPECT_TRUE(std::isfinite(r.final_train_loss));
  for (const char* f : {"config.json", "model.safetensors", "generation_config.json", "vocab.json", "merges.txt",
                        "metrics.jsonl", "loss_curve.png", "loss_curve.svg", "train_config.yml"})
    EXPECT_TRUE(fs::exists(t.path / "out" / f)) << f;
  auto model = Model::load(t.path / "out");
  EXPECT_EQ(model->config().n_layer, 1);
  const Checkpoint ck = Checkpoint::open(t.path / "out");
  EXPECT_TRUE(ck.has("transformer.h.0.attn.c_attn.weight"));
  EXPECT_EQ(ck.get("transformer.h.0.attn.c_attn.weight").shape, (std::vector<int64_t>{16, 48}));  // Conv1D [in, out]
}

// 2N steps in one go == N steps, a stop, a resume and N more: identical weights.
TEST(Finetune, ResumeGivesIdenticalWeights) {
  TempDir t("resume");
  const fs::path csv = write_csv(t.path, 200);
  auto full = tiny_config(csv, t.path / "full");
  full.max_steps = 12;
  full.save_steps = 6;
  finetune(full, quiet());

  auto split = tiny_config(csv, t.path / "split");
  split.max_steps = 12;
  split.save_steps = 6;
  FinetuneHooks stop_at_6 = quiet();
  stop_at_6.after_step = [](int64_t step) { return step < 6; };
  finetune(split, stop_at_6);
  EXPECT_FALSE(fs::exists(t.path / "split" / "model.safetensors"));  // stopped before the end
  ASSERT_TRUE(fs::exists(t.path / "split" / "checkpoint-6"));
  split.resume_from_checkpoint = "latest";
  const FinetuneResult r = finetune(split, quiet());
  EXPECT_EQ(r.steps, 12);
  EXPECT_EQ(read_bytes(t.path / "full" / "model.safetensors"), read_bytes(t.path / "split" / "model.safetensors"));
}

void expect_error(const TrainConfig& cfg, const std::string& mention) {
  try {
    finetune(cfg, quiet());
    FAIL() << "expected an error mentioning " << mention;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(mention), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
  }
}

TEST(FinetuneErrors, MissingColumn) {
  TempDir t("column");
  auto cfg = tiny_config(write_csv(t.path, 20, "title"), t.path / "out");
  expect_error(cfg, "headline_text");
}

TEST(FinetuneErrors, EmptyDatasetAfterFiltering) {
  TempDir t("empty");
  std::ofstream(t.path / "empty.csv") << "publish_date,headline_text\n1,\n2,   \n";
  auto cfg = tiny_config(t.path / "empty.csv", t.path / "out");
  expect_error(cfg, "empty.csv");
}

TEST(FinetuneErrors, UnwritableSavePath) {
  TempDir t("unwritable");
  std::ofstream(t.path / "a-file") << "x";
  auto cfg = tiny_config(write_csv(t.path, 20), t.path / "a-file" / "out");
  expect_error(cfg, "--save_path");
}

TEST(FinetuneErrors, ResumeFromCheckpointOfAnotherShape) {
  TempDir t("shape");
  const fs::path csv = write_csv(t.path, 40);
  auto small = tiny_config(csv, t.path / "out");
  small.max_steps = 3;
  small.save_steps = 2;
  finetune(small, quiet());
  auto wider = tiny_config(csv, t.path / "out");
  wider.n_embd = 32;
  wider.max_steps = 4;
  wider.resume_from_checkpoint = (t.path / "out" / "checkpoint-2").string();
  expect_error(wider, "n_embd");
}

TEST(FinetuneErrors, NonFiniteLossStopsAndKeepsTheLastCheckpoint) {
  TempDir t("nan");
  auto cfg = tiny_config(write_csv(t.path, 80), t.path / "out");
  cfg.lr = 1e30;  // the first update throws the weights to ~1e30: the next loss overflows
  cfg.max_grad_norm = 0;
  cfg.save_steps = 1;
  cfg.max_steps = 10;
  expect_error(cfg, "checkpoint-");
  EXPECT_TRUE(fs::exists(t.path / "out" / "checkpoint-1" / "model.safetensors"));
  EXPECT_FALSE(fs::exists(t.path / "out" / "model.safetensors"));
}

// ---- checkpoints: what is written when --------------------------------------------------------

std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

uintmax_t folder_bytes(const fs::path& dir) {
  uintmax_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) n += e.file_size();
  return n;
}

// The train losses metrics.jsonl logged, by step.
std::map<int64_t, double> train_losses(const fs::path& metrics) {
  std::map<int64_t, double> out;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j["type"] == "train") out[j["step"].get<int64_t>()] = j["loss"].get<double>();
  }
  return out;
}

// The root folder is the model; checkpoints come at save_steps only (none at the end) and keep
// the optimizer state.
TEST(FinetuneCheckpoints, FinalFolderIsTheModelAndNoCheckpointAtTheEnd) {
  TempDir t("final");
  auto cfg = tiny_config(write_csv(t.path, 200), t.path / "out");
  cfg.max_steps = 10;
  cfg.save_steps = 5;  // step 10 is a multiple, but the last step: the root folder is the model
  finetune(cfg, quiet());
  EXPECT_EQ(listing(t.path / "out"),
            (std::vector<std::string>{"checkpoint-5", "config.json", "generation_config.json",
                                      "lmforge_output.json", "loss_curve.png", "loss_curve.svg", "merges.txt",
                                      "metrics.jsonl", "model.safetensors", "train_config.yml", "vocab.json"}));
  for (const char* f : {"optimizer.safetensors", "trainer_state.json", "model.safetensors"})
    EXPECT_TRUE(fs::exists(t.path / "out" / "checkpoint-5" / f)) << f;
}

TEST(FinetuneCheckpoints, SaveOnlyModelWritesNoOptimizerStateAndRefusesToResume) {
  TempDir t("model-only");
  const fs::path csv = write_csv(t.path, 200);
  auto full = tiny_config(csv, t.path / "full");
  full.max_steps = 6;
  full.save_steps = 3;
  finetune(full, quiet());
  auto slim = tiny_config(csv, t.path / "slim");
  slim.max_steps = 6;
  slim.save_steps = 3;
  slim.save_only_model = true;
  finetune(slim, quiet());

  const fs::path ck = t.path / "slim" / "checkpoint-3";
  EXPECT_FALSE(fs::exists(ck / "optimizer.safetensors"));
  for (const char* f : {"config.json", "model.safetensors", "generation_config.json", "trainer_state.json", "vocab.json"})
    EXPECT_TRUE(fs::exists(ck / f)) << f;
  // AdamW keeps two moments per parameter: the full checkpoint is about three models' worth.
  const uintmax_t model = fs::file_size(ck / "model.safetensors");
  EXPECT_LT(folder_bytes(ck), folder_bytes(t.path / "full" / "checkpoint-3") - model);
  EXPECT_EQ(read_bytes(ck / "model.safetensors"), read_bytes(t.path / "full" / "checkpoint-3" / "model.safetensors"));

  slim.max_steps = 9;
  slim.resume_from_checkpoint = "latest";
  expect_error(slim, "--save_only_model");
  slim.resume_from_checkpoint = ck.string();
  expect_error(slim, "no optimizer state");
}

// ---- Ctrl-C (a stop request between steps) -----------------------------------------------------

// Stopped at a step that is neither a save nor a logging step, then resumed: the same weights and
// the same logged losses as one uninterrupted run.
TEST(FinetuneStop, StopRequestSavesAResumableCheckpointAndResumesExactly) {
  TempDir t("stop");
  const fs::path csv = write_csv(t.path, 200);
  auto full = tiny_config(csv, t.path / "full");
  full.max_steps = 14;
  full.save_steps = 10;
  const FinetuneResult want = finetune(full, quiet());

  auto split = tiny_config(csv, t.path / "split");
  split.max_steps = 14;
  split.save_steps = 10;
  int64_t steps_done = 0;
  FinetuneHooks stop_at_7 = quiet();
  stop_at_7.after_step = [&](int64_t step) {
    steps_done = step;
    return true;
  };
  stop_at_7.stop_requested = [&] { return steps_done >= 7; };
  const FinetuneResult cut = finetune(split, stop_at_7);
  EXPECT_TRUE(cut.interrupted);
  EXPECT_EQ(cut.steps, 7);
  EXPECT_EQ(cut.total_steps, 14);
  EXPECT_EQ(cut.checkpoint, t.path / "split" / "checkpoint-7");
  EXPECT_TRUE(fs::exists(t.path / "split" / "checkpoint-7" / "optimizer.safetensors"));
  EXPECT_FALSE(fs::exists(t.path / "split" / "model.safetensors"));  // not the final model

  split.resume_from_checkpoint = "latest";
  const FinetuneResult r = finetune(split, quiet());
  EXPECT_FALSE(r.interrupted);
  EXPECT_EQ(r.steps, 14);
  EXPECT_EQ(r.final_train_loss, want.final_train_loss);
  EXPECT_EQ(r.final_eval_loss, want.final_eval_loss);
  // Step 10's record averages steps 6-10, a window the stop cut in two.
  EXPECT_EQ(train_losses(t.path / "split" / "metrics.jsonl"), train_losses(t.path / "full" / "metrics.jsonl"));
  EXPECT_EQ(read_bytes(t.path / "full" / "model.safetensors"), read_bytes(t.path / "split" / "model.safetensors"));
}

// With --save_only_model the stop still writes a checkpoint that can be resumed.
TEST(FinetuneStop, StopWithSaveOnlyModelStillSavesOptimizerState) {
  TempDir t("stop-slim");
  auto cfg = tiny_config(write_csv(t.path, 200), t.path / "out");
  cfg.max_steps = 8;
  cfg.save_steps = 2;
  cfg.save_only_model = true;
  FinetuneHooks h = quiet();
  int64_t done = 0;
  h.after_step = [&](int64_t step) {
    done = step;
    return true;
  };
  h.stop_requested = [&] { return done >= 4; };  // step 4 is also a (model-only) save step
  const FinetuneResult r = finetune(cfg, h);
  ASSERT_TRUE(r.interrupted);
  EXPECT_FALSE(fs::exists(t.path / "out" / "checkpoint-2" / "optimizer.safetensors"));
  EXPECT_TRUE(fs::exists(t.path / "out" / "checkpoint-4" / "optimizer.safetensors"));
  cfg.resume_from_checkpoint = "latest";
  EXPECT_EQ(finetune(cfg, quiet()).steps, 8);
}

TEST(FinetuneStop, StopBeforeTheFirstStepSavesNothingAndLeavesNoFolder) {
  TempDir t("stop-early");
  auto cfg = tiny_config(write_csv(t.path, 40), t.path / "out");
  FinetuneHooks h = quiet();
  h.stop_requested = [] { return true; };
  try {
    finetune(cfg, h);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("before the first training step"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(t.path / "out"));
}

// ---- the output folder: HF's --overwrite_output_dir rule and the training record -----------------

TEST(FinetuneOutputDir, RecordIsWrittenBeforeTheFirstStepWithTheTrainingSettings) {
  TempDir t("record");
  auto cfg = tiny_config(write_csv(t.path, 200), t.path / "out");
  cfg.max_steps = 2;
  cfg.prefix = "<p> ";
  cfg.suffix = " </p>";
  cfg.sample = SampleMode::Random;
  cfg.validation_fraction = 0.25;
  cfg.seed = 7;
  cfg.max_rows = 150;
  bool seen_during_training = false;
  FinetuneHooks h = quiet();
  h.after_step = [&](int64_t step) {
    if (step == 1) seen_during_training = read_training_record(t.path / "out").has_value();
    return true;
  };
  finetune(cfg, h);
  EXPECT_TRUE(seen_during_training);
  const auto rec = read_output_record(t.path / "out");
  ASSERT_TRUE(rec);
  EXPECT_EQ((*rec)["command"], "finetune");
  const nlohmann::json want = {{"prefix", "<p> "},
                               {"suffix", " </p>"},
                               {"text_column", "headline_text"},
                               {"data_path", fs::absolute(t.path / "news.csv").lexically_normal().string()},
                               {"max_rows", 150},
                               {"sample", "random"},
                               {"validation_fraction", 0.25},
                               {"seed", 7},
                               {"packing", false},
                               {"block_size", 32}};  // min(n_positions, 1024): the length actually used
  EXPECT_EQ((*rec)["training"], want) << rec->dump();
}

// Rows "<random words> ### ok": the prompt is unpredictable, the answer never varies. Trained on the
// answer only (--response_template), the validation loss (answer tokens only) ends near 0; the same
// run trained and scored on every token stays high. Every third row has no "###" and, with one row
// per micro-batch, makes micro-batches with nothing to train (skipped, not a NaN stop).
TEST(Finetune, ResponseTemplateTrainsAndScoresTheAnswerOnly) {
  TempDir t("completion");
  std::ofstream csv(t.path / "qa.csv");
  csv << "text\n";
  const char* words[] = {"red", "blue", "cat", "dog", "sun", "moon", "tree", "rock", "fish", "bird", "king", "ship"};
  uint32_t x = 1;
  for (int i = 0; i < 120; ++i) {
    std::string row;
    for (int k = 0; k < 4; ++k) {
      x = x * 1664525u + 1013904223u;
      row += std::string(k ? " " : "") + words[(x >> 16) % 12];
    }
    csv << row << (i % 3 == 2 ? "\n" : " ### ok\n");
  }
  csv.close();
  auto cfg = tiny_config(t.path / "qa.csv", t.path / "out");
  cfg.text_column = "text";
  cfg.prefix = "";
  cfg.suffix = "";
  cfg.max_rows = 0;
  cfg.validation_fraction = 0.2;
  cfg.per_device_train_batch_size = 1;
  cfg.num_epochs = 1;
  cfg.lr = 1e-2;
  cfg.response_template = " ###";
  const FinetuneResult masked = finetune(cfg, quiet());
  EXPECT_LT(masked.final_eval_loss, 0.3) << masked.final_eval_loss;
  const auto rec = read_output_record(t.path / "out");
  ASSERT_TRUE(rec);
  EXPECT_EQ((*rec)["training"]["response_template"], " ###");

  cfg.response_template = "";
  cfg.save_path = (t.path / "all").string();
  const FinetuneResult all = finetune(cfg, quiet());
  EXPECT_GT(all.final_eval_loss, 1.0) << all.final_eval_loss;  // the random words are in the loss now
  EXPECT_FALSE((*read_output_record(t.path / "all"))["training"].contains("response_template"));
}

TEST(FinetuneOutputDir, RefusesAForeignFolderUnlessOverwriteOutputDir) {
  TempDir t("foreign");
  auto cfg = tiny_config(write_csv(t.path, 40), t.path / "mine");
  cfg.max_steps = 1;
  fs::create_directories(t.path / "mine");
  std::ofstream(t.path / "mine" / "notes.txt") << "keep me";
  expect_error(cfg, "--overwrite_output_dir");
  EXPECT_EQ(listing(t.path / "mine"), std::vector<std::string>{"notes.txt"});  // untouched
  cfg.overwrite_output_dir = true;
  finetune(cfg, quiet());
  EXPECT_TRUE(fs::exists(t.path / "mine" / "notes.txt"));
  EXPECT_TRUE(fs::exists(t.path / "mine" / "model.safetensors"));
}

// A fresh run into its own earlier output: refused while that run's checkpoints could still be
// resumed; with --overwrite_output_dir the old checkpoints and metrics go.
TEST(FinetuneOutputDir, FreshRunOverOwnOutputNeverMixesRuns) {
  TempDir t("rerun");
  auto cfg = tiny_config(write_csv(t.path, 200), t.path / "out");
  cfg.max_steps = 12;
  cfg.save_steps = 5;
  finetune(cfg, quiet());
  ASSERT_TRUE(fs::exists(t.path / "out" / "checkpoint-10"));

  cfg.max_steps = 5;
  cfg.save_steps = 2;
  expect_error(cfg, "--resume_from_checkpoint latest");
  EXPECT_TRUE(fs::exists(t.path / "out" / "checkpoint-10"));
  cfg.overwrite_output_dir = true;
  finetune(cfg, quiet());
  EXPECT_EQ(list_checkpoints(t.path / "out").size(), 2u);  // checkpoint-2 and -4 only
  EXPECT_FALSE(fs::exists(t.path / "out" / "checkpoint-10"));
  const auto losses = train_losses(t.path / "out" / "metrics.jsonl");
  ASSERT_FALSE(losses.empty());
  EXPECT_EQ(losses.rbegin()->first, 5);

  // Without checkpoints (save_steps 0) the same command simply runs again.
  cfg.overwrite_output_dir = false;
  cfg.save_steps = 0;
  fs::remove_all(t.path / "out" / "checkpoint-2");
  fs::remove_all(t.path / "out" / "checkpoint-4");
  cfg.max_steps = 3;
  EXPECT_EQ(finetune(cfg, quiet()).steps, 3);
  EXPECT_EQ(train_losses(t.path / "out" / "metrics.jsonl").rbegin()->first, 3);
}

// ---- a failed run leaves nothing behind that it created ----------------------------------------

TEST(FinetuneCleanup, FailedRunRemovesTheFoldersItCreated) {
  TempDir t("cleanup");
  fs::create_directories(t.path / "bad");
  const fs::path bad_csv = write_csv(t.path / "bad", 20, "title");
  auto cfg = tiny_config(bad_csv, t.path / "a" / "b" / "out");
  expect_error(cfg, "headline_text");
  EXPECT_FALSE(fs::exists(t.path / "a"));  // every folder this run created

  cfg = tiny_config(write_csv(t.path, 40), t.path / "out");
  cfg.packing = true;
  cfg.block_size = 64;  // more than n_positions 32: found after the folder exists
  expect_error(cfg, "block_size");
  EXPECT_FALSE(fs::exists(t.path / "out"));

  cfg = tiny_config(write_csv(t.path, 80), t.path / "out");
  cfg.lr = 1e30;  // non-finite loss before any checkpoint
  cfg.max_grad_norm = 0;
  cfg.max_steps = 10;
  expect_error(cfg, "Last good checkpoint: none");
  EXPECT_FALSE(fs::exists(t.path / "out"));
}

TEST(FinetuneCleanup, FailedRunNeverDeletesAFolderThatExisted) {
  TempDir t("cleanup-existing");
  fs::create_directories(t.path / "bad");
  const fs::path bad_csv = write_csv(t.path / "bad", 20, "title");
  fs::create_directories(t.path / "empty");
  expect_error(tiny_config(bad_csv, t.path / "empty"), "headline_text");
  ASSERT_TRUE(fs::is_directory(t.path / "empty"));
  EXPECT_TRUE(fs::is_empty(t.path / "empty"));  // as it was: no record left behind

  auto good = tiny_config(write_csv(t.path, 40), t.path / "done");
  good.max_steps = 1;
  finetune(good, quiet());
  const auto before = listing(t.path / "done");
  expect_error(tiny_config(bad_csv, t.path / "done"), "headline_text");
  EXPECT_EQ(listing(t.path / "done"), before);
}

}  // namespace
}  // namespace lmforge
