// Training checkpoints: round trip, HF-loadable model, atomicity under simulated kills, rotation,
// and clear errors for a checkpoint that does not fit the model.
#include <gtest/gtest.h>

#include <cstring>

#include "common/fixtures.h"
#include "io/io_test_util.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/model/save.h"
#include "lmforge/tokenizer/tokenizer.h"
#include "lmforge/train/train_state.h"

namespace lmforge {
namespace {

namespace fs = std::filesystem;
using test::TempDir;
using test::ThrowsError;

ModelConfig tiny(int n_embd = 8, int vocab = 32) {
  ModelConfig c;
  c.n_layer = 1;
  c.n_head = 2;
  c.n_embd = n_embd;
  c.n_positions = 16;
  c.vocab_size = vocab;
  c.bos_token_id = c.eos_token_id = vocab - 1;
  return c;
}

struct Model {
  ModelConfig cfg;
  ModelWeights w;
  std::vector<float> m, v;
  explicit Model(const ModelConfig& c, uint64_t seed = 1) : cfg(c), w(allocate_weights(c)) {
    init_random_weights(cfg, w, seed);
    const size_t n = w.num_parameters();
    m.resize(n);
    v.resize(n);
    for (size_t i = 0; i < n; ++i) {
      m[i] = static_cast<float>(i) * 0.5f - 3.0f + static_cast<float>(seed);
      v[i] = static_cast<float>(i) * 0.25f + 1e-6f;
    }
  }
};

TrainerState sample_state(int64_t step) {
  TrainerState s;
  s.global_step = step;
  s.epoch = 1.375;
  s.max_steps = 1500;
  s.num_train_epochs = 3;
  s.tokens_seen = 123456789;
  s.data = {42, 1, 187, 4000, 8};
  s.rng_states["data"] = Rng(42, 5).state();
  s.rng_states["init"] = "anything";
  s.scheduler = {"linear", 10, 1500, 5e-5, 3.3333333333333335e-05};
  s.optimizer = {"adamw", step, 0.9, 0.999, 1e-8, 0.01};
  s.best_metric = 2.5;
  s.best_model_checkpoint = "";
  s.log_history = {{{"type", "train"}, {"step", 10}, {"loss", 3.25}}, {{"type", "eval"}, {"step", 20}, {"eval_loss", 2.5}}};
  return s;
}

void expect_same_state(const TrainerState& a, const TrainerState& b) {
  EXPECT_EQ(a.global_step, b.global_step);
  EXPECT_EQ(a.epoch, b.epoch);
  EXPECT_EQ(a.max_steps, b.max_steps);
  EXPECT_EQ(a.num_train_epochs, b.num_train_epochs);
  EXPECT_EQ(a.tokens_seen, b.tokens_seen);
  EXPECT_EQ(a.data, b.data);
  EXPECT_EQ(a.rng_states, b.rng_states);
  EXPECT_EQ(a.scheduler.name, b.scheduler.name);
  EXPECT_EQ(a.scheduler.warmup_steps, b.scheduler.warmup_steps);
  EXPECT_EQ(a.scheduler.total_steps, b.scheduler.total_steps);
  EXPECT_EQ(a.scheduler.base_lr, b.scheduler.base_lr);
  EXPECT_EQ(a.scheduler.last_lr, b.scheduler.last_lr);
  EXPECT_EQ(a.optimizer.step, b.optimizer.step);
  EXPECT_EQ(a.optimizer.beta1, b.optimizer.beta1);
  EXPECT_EQ(a.optimizer.beta2, b.optimizer.beta2);
  EXPECT_EQ(a.optimizer.eps, b.optimizer.eps);
  EXPECT_EQ(a.optimizer.weight_decay, b.optimizer.weight_decay);
  EXPECT_EQ(a.best_metric, b.best_metric);
  EXPECT_EQ(a.best_model_checkpoint, b.best_model_checkpoint);
  EXPECT_EQ(a.log_history, b.log_history);
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

CheckpointSaveOptions with_limit(int n) {
  CheckpointSaveOptions o;
  o.save_total_limit = n;
  return o;
}

CheckpointSaveOptions with_tokenizer() {
  CheckpointSaveOptions o;
  o.tokenizer_dir = test::data_dir() / "tokenizer";
  return o;
}

fs::path save(const fs::path& out, const Model& m, const TrainerState& s, const CheckpointSaveOptions& o = {}) {
  return save_checkpoint(out, m.cfg, m.w, m.m, m.v, s, o);
}

TEST(TrainState, RoundTrip) {
  TempDir dir;
  const Model a(tiny());
  const TrainerState st = sample_state(120);
  CheckpointSaveOptions o;
  o.tokenizer_dir = test::data_dir() / "tokenizer";
  o.train_config_yaml = "lr: 5e-05\n";
  const fs::path ck = save(dir.path(), a, st, o);
  EXPECT_EQ(ck, dir / "checkpoint-120");
  for (const char* f : {"config.json", "generation_config.json", "model.safetensors", "optimizer.safetensors",
                        "trainer_state.json", "train_config.yml", "vocab.json", "merges.txt"})
    EXPECT_TRUE(fs::is_regular_file(ck / f)) << f;
  EXPECT_FALSE(fs::exists(dir / "checkpoint-120.tmp"));
  for (const auto& e : fs::directory_iterator(ck)) EXPECT_NE(e.path().extension(), ".tmp") << e.path();

  Model b(tiny(), /*seed=*/99);  // different weights and moments, overwritten by the load
  const LoadedCheckpoint l = load_checkpoint(ck, b.cfg, b.w);
  EXPECT_TRUE(same_bits(b.w.params, a.w.params));
  EXPECT_TRUE(same_bits(l.adam_m, a.m));
  EXPECT_TRUE(same_bits(l.adam_v, a.v));
  expect_same_state(l.state, st);
  EXPECT_EQ(l.state.num_parameters, static_cast<int64_t>(a.w.num_parameters()));
  EXPECT_EQ(Rng::from_state(l.state.rng_states.at("data")).next(), Rng(42, 5).next());
}

TEST(TrainState, ModelFolderIsHfLoadable) {
  TempDir dir;
  const Model a(tiny());
  const fs::path ck = save(dir.path(), a, sample_state(5), with_tokenizer());
  // What HF from_pretrained reads: config.json + model.safetensors with HF names and shapes.
  const ModelConfig cfg = load_model_config(ck);
  EXPECT_EQ(cfg.n_embd, 8);
  EXPECT_EQ(cfg.vocab_size, 32);
  const Checkpoint c = Checkpoint::open(ck);
  EXPECT_EQ(c.get("transformer.wte.weight").shape, (std::vector<int64_t>{32, 8}));
  EXPECT_EQ(c.get("transformer.h.0.attn.c_attn.weight").shape, (std::vector<int64_t>{8, 24}));  // Conv1D [in, out]
  EXPECT_FALSE(c.has("lm_head.weight"));                                                       // tied
  ModelWeights w = allocate_weights(cfg);
  load_weights(c, cfg, w);
  EXPECT_TRUE(same_bits(w.params, a.w.params));
  // The tokenizer travels with it.
  EXPECT_EQ(Tokenizer::from_dir(ck).encode("hello"), Tokenizer::from_dir(test::data_dir() / "tokenizer").encode("hello"));

  const Checkpoint opt = Checkpoint::open_safetensors(ck / "optimizer.safetensors");
  const int64_t n = static_cast<int64_t>(a.w.num_parameters());
  EXPECT_EQ(opt.get("exp_avg").dtype, DType::F32);
  EXPECT_EQ(opt.get("exp_avg").shape, (std::vector<int64_t>{n}));
  EXPECT_EQ(opt.get("exp_avg_sq").shape, (std::vector<int64_t>{n}));
  EXPECT_EQ(to_float32(opt.get("exp_avg"))[3], a.m[3]);
}

TEST(TrainState, KillAtAnyStageLeavesTheLastGoodCheckpoint) {
  for (const std::string stage : {"model", "optimizer", "trainer_state", "extras", "fsync"}) {
    SCOPED_TRACE(stage);
    TempDir dir;
    const Model good(tiny(), 1), newer(tiny(), 2);
    save(dir.path(), good, sample_state(10));
    CheckpointSaveOptions o;
    o.on_stage = [&](const std::string& s) {
      if (s == stage) throw std::runtime_error("killed");
    };
    EXPECT_THROW(save(dir.path(), newer, sample_state(20), o), std::runtime_error);

    EXPECT_TRUE(fs::exists(dir / "checkpoint-20.tmp"));  // what a kill leaves
    EXPECT_FALSE(fs::exists(dir / "checkpoint-20"));
    ASSERT_EQ(latest_checkpoint(dir.path()), dir / "checkpoint-10");
    EXPECT_EQ(list_checkpoints(dir.path()).size(), 1u);
    Model back(tiny(), 3);
    load_checkpoint(dir / "checkpoint-10", back.cfg, back.w);
    EXPECT_TRUE(same_bits(back.w.params, good.w.params));

    EXPECT_EQ(recover_checkpoints(dir.path()), 1);
    EXPECT_FALSE(fs::exists(dir / "checkpoint-20.tmp"));
    // The next save goes through.
    save(dir.path(), newer, sample_state(20));
    EXPECT_EQ(latest_checkpoint(dir.path()), dir / "checkpoint-20");
  }
}

TEST(TrainState, LeftoverTmpIsIgnoredAndCleanedBySave) {
  TempDir dir;
  const Model a(tiny());
  save(dir.path(), a, sample_state(3));
  fs::create_directory(dir / "checkpoint-7.tmp");
  test::write_file(dir / "checkpoint-7.tmp" / "trainer_state.json", "{\"half\":");
  fs::create_directory(dir / "checkpoint-8.trash");
  fs::create_directory(dir / "checkpoint-x");
  fs::create_directory(dir / "checkpoint-9");  // no trainer_state.json: not a checkpoint
  EXPECT_EQ(latest_checkpoint(dir.path()), dir / "checkpoint-3");
  save(dir.path(), a, sample_state(4));
  EXPECT_FALSE(fs::exists(dir / "checkpoint-7.tmp"));
  EXPECT_FALSE(fs::exists(dir / "checkpoint-8.trash"));
  EXPECT_TRUE(fs::exists(dir / "checkpoint-x"));  // not ours: untouched
  EXPECT_EQ(latest_checkpoint(dir.path()), dir / "checkpoint-4");
  EXPECT_FALSE(latest_checkpoint(dir / "missing").has_value());
}

TEST(TrainState, ResaveSameStepAndInterruptedSwap) {
  TempDir dir;
  const Model a(tiny(), 1), b(tiny(), 2);
  save(dir.path(), a, sample_state(10));
  save(dir.path(), b, sample_state(10));  // replaces it
  Model r(tiny(), 3);
  load_checkpoint(dir / "checkpoint-10", r.cfg, r.w);
  EXPECT_TRUE(same_bits(r.w.params, b.w.params));
  EXPECT_FALSE(fs::exists(dir / "checkpoint-10.old"));

  // A kill between "move the old copy aside" and "move the new one in": .old + .tmp remain.
  fs::rename(dir / "checkpoint-10", dir / "checkpoint-10.old");
  fs::create_directory(dir / "checkpoint-10.tmp");
  EXPECT_FALSE(latest_checkpoint(dir.path()).has_value());
  EXPECT_EQ(recover_checkpoints(dir.path()), 2);
  ASSERT_EQ(latest_checkpoint(dir.path()), dir / "checkpoint-10");
  load_checkpoint(dir / "checkpoint-10", r.cfg, r.w);
  EXPECT_TRUE(same_bits(r.w.params, b.w.params));
}

TEST(TrainState, SaveTotalLimitDeletesTheOldest) {
  TempDir dir;
  const Model a(tiny());
  for (int64_t step : {100, 200, 300, 400, 500}) save(dir.path(), a, sample_state(step), with_limit(2));
  auto all = list_checkpoints(dir.path());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].first, 400);
  EXPECT_EQ(all[1].first, 500);
  // Numeric order, not text order (checkpoint-1000 is newer than checkpoint-500).
  save(dir.path(), a, sample_state(1000), with_limit(2));
  all = list_checkpoints(dir.path());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].first, 500);
  EXPECT_EQ(all[1].first, 1000);
}

TEST(TrainState, RotationKeepsTheBestCheckpoint) {
  TempDir dir;
  const Model a(tiny());
  for (int64_t step : {1, 2, 3, 4, 5}) {
    TrainerState s = sample_state(step);
    s.best_model_checkpoint = (dir / "checkpoint-1").string();
    save(dir.path(), a, s, with_limit(2));
  }
  const auto all = list_checkpoints(dir.path());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].first, 1);
  EXPECT_EQ(all[1].first, 5);
  // Direct call; limit 0 deletes nothing.
  EXPECT_TRUE(rotate_checkpoints(dir.path(), 0).empty());
  const auto del = rotate_checkpoints(dir.path(), 1);
  ASSERT_EQ(del.size(), 1u);
  EXPECT_EQ(del[0], dir / "checkpoint-1");
  EXPECT_EQ(latest_checkpoint(dir.path()), dir / "checkpoint-5");
}

TEST(TrainState, MismatchedModelIsAClearError) {
  TempDir dir;
  const Model a(tiny(8));
  const fs::path ck = save(dir.path(), a, sample_state(7));
  Model wider(tiny(16));
  EXPECT_TRUE(ThrowsError([&] { load_checkpoint(ck, wider.cfg, wider.w); },
                          {"checkpoint-7", "n_embd", "8 in the checkpoint", "16 in the model"}));
  Model vocab(tiny(8, 40));
  EXPECT_TRUE(ThrowsError([&] { load_checkpoint(ck, vocab.cfg, vocab.w); }, {"checkpoint-7", "vocab_size", "32", "40"}));

  // Optimizer state of the wrong length.
  const size_t n = a.w.num_parameters();
  std::vector<float> shorter(n - 1, 0.0f);
  write_safetensors(ck / "optimizer.safetensors", {{"exp_avg", DType::F32, {static_cast<int64_t>(n - 1)}, shorter.data()},
                                                   {"exp_avg_sq", DType::F32, {static_cast<int64_t>(n - 1)}, shorter.data()}});
  Model same(tiny(8));
  EXPECT_TRUE(ThrowsError([&] { load_checkpoint(ck, same.cfg, same.w); },
                          {"optimizer.safetensors", "exp_avg", std::to_string(n - 1), std::to_string(n) + " parameters"}));

  // Saving moments that do not match the model.
  std::vector<float> few(3);
  EXPECT_TRUE(ThrowsError([&] { save_checkpoint(dir.path(), a.cfg, a.w, few, few, sample_state(8)); }, {"AdamW state"}));

  // Missing pieces.
  fs::remove(ck / "trainer_state.json");
  EXPECT_TRUE(ThrowsError([&] { load_checkpoint(ck, same.cfg, same.w); }, {"checkpoint-7", "no trainer_state.json"}));
  EXPECT_TRUE(ThrowsError([&] { load_checkpoint(dir / "checkpoint-99", same.cfg, same.w); }, {"checkpoint-99"}));
}

TEST(TrainState, TrainerStateJsonIsStrict) {
  const std::string good = trainer_state_json(sample_state(3));
  expect_same_state(parse_trainer_state(good, "t.json"), sample_state(3));
  auto j = nlohmann::json::parse(good);
  j.erase("global_step");
  EXPECT_TRUE(ThrowsError([&] { parse_trainer_state(j.dump(), "t.json"); }, {"t.json", "global_step"}));
  j = nlohmann::json::parse(good);
  j["data"]["epoch"] = "one";
  EXPECT_TRUE(ThrowsError([&] { parse_trainer_state(j.dump(), "t.json"); }, {"t.json", "epoch", "integer"}));
  j = nlohmann::json::parse(good);
  j["best_metric"] = nullptr;
  EXPECT_FALSE(parse_trainer_state(j.dump(), "t.json").best_metric.has_value());
  EXPECT_TRUE(ThrowsError([&] { parse_trainer_state("{", "t.json"); }, {"t.json", "invalid JSON"}));
  EXPECT_TRUE(ThrowsError([&] { parse_trainer_state("{\"format\":\"other\"}", "t.json"); }, {"t.json", "format"}));
}

TEST(TrainState, WriteFileAtomic) {
  TempDir dir;
  write_file_atomic(dir / "a.txt", "one");
  write_file_atomic(dir / "a.txt", "two");
  EXPECT_EQ(test::read_file(dir / "a.txt"), "two");
  EXPECT_FALSE(fs::exists(dir / "a.txt.tmp"));
}

}  // namespace
}  // namespace lmforge
