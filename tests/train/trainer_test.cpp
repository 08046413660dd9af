// The whole fine-tuning job on a tiny model: it learns, writes an HF folder that loads, resumes
// exactly, and answers every bad input with one clear error.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/fixtures.h"
#include "lmforge/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/model/model.h"
#include "lmforge/train/trainer.h"

namespace lmforge {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) : path(fs::temp_directory_path() / ("lmforge-trainer-" + name)) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

// A small headline-like CSV with a repetitive structure a tiny model can learn quickly.
fs::path write_csv(const fs::path& dir, int rows, const std::string& column = "headline_text") {
  const char* subjects[] = {"farmers", "council", "police", "school", "minister", "court"};
  const char* verbs[] = {"plan", "warn", "seek", "back", "reject", "win"};
  const char* objects[] = {"water rules", "new road", "rain relief", "budget cuts", "fire review", "market deal"};
  std::ofstream out(dir / "news.csv");
  out << "publish_date," << column << "\n";
  for (int i = 0; i < rows; ++i)
    out << 20200101 + i << "," << subjects[i % 6] << " " << verbs[(i / 6) % 6] << " " << objects[(i / 36) % 6] << "\n";
  return dir / "news.csv";
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
  small.max_steps = 2;
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

}  // namespace
}  // namespace lmforge
