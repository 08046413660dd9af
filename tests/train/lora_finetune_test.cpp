// `finetune` with LoRA on tiny models: the adapter learns while the base stays as it was, the output
// folder is a PEFT adapter that loads over the base, resuming is exact, every base type and
// gradient checkpointing train, and a checkpoint of another LoRA shape is refused.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error_of.h"
#include "common/fixtures.h"
#include "lmforge/error.h"
#include "lmforge/model/lora.h"
#include "lmforge/model/model.h"
#include "lmforge/model/random_checkpoint.h"
#include "lmforge/train/trainer.h"
#include "train/news_csv.h"

namespace lmforge {
namespace {

namespace fs = std::filesystem;
using test::error_of;

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("lmforge-lora-ft-" + name + "-" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

FinetuneHooks quiet() {
  FinetuneHooks h;
  h.print = [](const std::string&, bool) {};
  return h;
}

// LoRA r 8 on gpt2-tiny's c_attn (the fixture model, 2 layers of 16), a headline CSV.
TrainConfig lora_config(const TempDir& t, const std::string& out) {
  TrainConfig c;
  c.model = test::model_dir("gpt2-tiny").string();
  c.tokenizer = (test::data_dir() / "tokenizer").string();
  c.data_path = test::write_news_csv(t.path, 120).string();
  c.save_path = (t.path / out).string();
  c.max_rows = 120;
  c.per_device_train_batch_size = 8;
  c.lr = 3e-2;
  c.max_steps = 12;
  c.logging_steps = 4;
  c.save_steps = 0;
  c.lora = true;
  c.lora_r = 8;
  c.lora_alpha = 16;
  return c;
}

double base_loss_on(const TrainConfig& like, const TempDir& t) {
  // The untouched base's validation loss on the same split: a LoRA run whose one step moves B by 1e-20.
  TrainConfig c = like;
  c.save_path = (t.path / "lr0").string();
  c.lr = 1e-20;
  c.max_steps = 1;
  return finetune(c, quiet()).final_eval_loss;
}

TEST(LoraFinetune, AdapterLearnsBaseStaysAndFolderIsAPeftAdapter) {
  TempDir t("learn");
  const TrainConfig cfg = lora_config(t, "out");
  const double before = base_loss_on(cfg, t);
  const FinetuneResult r = finetune(cfg, quiet());
  EXPECT_EQ(r.steps, 12);
  EXPECT_LT(r.final_eval_loss, before - 0.5) << "the adapter should learn the headline pattern";
  const fs::path out = cfg.save_path;
  for (const char* f : {"adapter_config.json", "adapter_model.safetensors", "vocab.json", "merges.txt", "metrics.jsonl",
                        "train_config.yml", "lmforge_output.json"})
    EXPECT_TRUE(fs::exists(out / f)) << f;
  EXPECT_FALSE(fs::exists(out / "model.safetensors"));  // the base is not copied
  // The adapter applied over the base reproduces the run's validation loss ordering: it changes logits.
  const auto base = Model::load(cfg.model);
  const auto adapter = std::make_shared<LoraAdapter>(load_lora_adapter(out, base->config()));
  EXPECT_EQ(adapter->config.r, 8);
  EXPECT_TRUE(adapter->config.fan_in_fan_out);
  EXPECT_EQ(adapter->modules.size(), 2u);  // c_attn of both layers
  const auto tuned = base->with_adapter(adapter);
  const std::vector<int32_t> ids = {7217, 4465, 1410};
  const auto a = base->logits(ids), b = tuned->logits(ids);
  double diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff = std::max(diff, static_cast<double>(std::abs(a[i] - b[i])));
  EXPECT_GT(diff, 0.1);
  // The base folder is untouched (it was only read).
  EXPECT_EQ(Model::load(cfg.model)->logits(ids), a);
}

TEST(LoraFinetune, ResumeGivesTheIdenticalAdapter) {
  TempDir t("resume");
  TrainConfig full = lora_config(t, "full");
  full.save_steps = 6;
  full.lora_dropout = 0.1;  // dropout masks must follow the step, not the process
  finetune(full, quiet());

  TrainConfig split = lora_config(t, "split");
  split.save_steps = 6;
  split.lora_dropout = 0.1;
  FinetuneHooks stop_at_6 = quiet();
  stop_at_6.after_step = [](int64_t step) { return step < 6; };
  finetune(split, stop_at_6);
  ASSERT_TRUE(fs::exists(t.path / "split" / "checkpoint-6" / "adapter_model.safetensors"));
  EXPECT_FALSE(fs::exists(t.path / "split" / "checkpoint-6" / "model.safetensors"));
  split.resume_from_checkpoint = "latest";
  EXPECT_EQ(finetune(split, quiet()).steps, 12);
  EXPECT_EQ(read_bytes(t.path / "full" / "adapter_model.safetensors"),
            read_bytes(t.path / "split" / "adapter_model.safetensors"));

  // Another LoRA shape (or none) cannot continue it.
  TrainConfig other = split;
  other.save_path = split.save_path;
  other.resume_from_checkpoint = (t.path / "split" / "checkpoint-6").string();
  other.lora_r = 4;
  std::string e = error_of([&] { finetune(other, quiet()); });
  EXPECT_NE(e.find("the checkpoint's LoRA configuration (r 8, lora_alpha 16, 2 modules) differs from this run's (r 4"),
            std::string::npos)
      << e;
  other.lora_r = 8;
  other.lora = false;
  e = error_of([&] { finetune(other, quiet()); });
  EXPECT_NE(e.find("this is a LoRA checkpoint"), std::string::npos) << e;
}

TEST(LoraFinetune, LowPrecisionBasesAndCheckpointingTrain) {
  TempDir t("types");
  TrainConfig plain = lora_config(t, "plain");
  const FinetuneResult r0 = finetune(plain, quiet());
  // Gradient checkpointing recomputes the same numbers: the same adapter, bit for bit.
  TrainConfig ckpt = lora_config(t, "ckpt");
  ckpt.gradient_checkpointing = true;
  finetune(ckpt, quiet());
  EXPECT_EQ(read_bytes(t.path / "plain" / "adapter_model.safetensors"),
            read_bytes(t.path / "ckpt" / "adapter_model.safetensors"));
  for (const char* type : {"bfloat16", "int8"}) {
    TrainConfig c = lora_config(t, type);
    c.base_dtype = type;
    const FinetuneResult r = finetune(c, quiet());
    EXPECT_NEAR(r.final_eval_loss, r0.final_eval_loss, 0.15 * r0.final_eval_loss) << type;
    EXPECT_TRUE(fs::exists(t.path / type / "adapter_model.safetensors")) << type;
  }
}

TEST(LoraFinetune, GptjTargetsInsideTheFusedQkvAndTheMlp) {
  // A random GPT-J of the tokenizer's vocabulary, written through the same writer the benchmarks use.
  TempDir t("gptj");
  ShapeOverrides shape;
  shape.n_layer = 2, shape.n_embd = 32, shape.n_head = 4, shape.n_positions = 64, shape.rotary_dim = 4;
  const ModelConfig mc = random_checkpoint_config("gpt-j-6b", shape);
  RandomCheckpointOptions o;
  o.drop_page_cache = false;
  write_random_checkpoint(t.path / "base", mc, o);
  TrainConfig c = lora_config(t, "out");
  c.model = (t.path / "base").string();
  c.max_steps = 4;
  c.lora_target = {"q_proj", "v_proj", "fc_out"};
  const FinetuneResult r = finetune(c, quiet());
  EXPECT_TRUE(std::isfinite(r.final_eval_loss));
  const auto a = load_lora_adapter(t.path / "out", mc);
  ASSERT_EQ(a.modules.size(), 6u);
  EXPECT_EQ(a.modules[1].name, "transformer.h.0.attn.v_proj");
  EXPECT_EQ(a.modules[1].row0, 64);
  EXPECT_EQ(a.modules[2].name, "transformer.h.0.mlp.fc_out");
  EXPECT_FALSE(a.config.fan_in_fan_out);
  // Trained: B moved away from its zero start in every module.
  for (const auto& m : a.modules) {
    float norm = 0;
    for (size_t i = 0; i < static_cast<size_t>(m.rows) * a.config.r; ++i) norm += std::abs(a.B(m)[i]);
    EXPECT_GT(norm, 0.0f) << m.name;
  }
}

TEST(LoraFinetune, BadTargetsListTheValidOnes) {
  TempDir t("bad");
  TrainConfig c = lora_config(t, "out");
  c.lora_target = {"q_proj"};
  const std::string e = error_of([&] { finetune(c, quiet()); });
  EXPECT_NE(e.find("--lora_target: LoRA target 'q_proj' matches no linear layer of this GPT-2 model; valid: c_attn, "
                   "c_proj, c_fc, c_proj"),
            std::string::npos)
      << e;
  EXPECT_FALSE(fs::exists(t.path / "out"));  // nothing left behind
}

}  // namespace
}  // namespace lmforge
