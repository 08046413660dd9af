// TrainConfig: YAML keys = flag names, the reference kit's config_base.yml, unknown-key
// suggestions, type errors, validation, and flag-style overrides.
#include <gtest/gtest.h>

#include "common/error_of.h"
#include "io/io_test_util.h"
#include "lmforge/train/train_config.h"

namespace lmforge {
namespace {

using test::TempDir;
using test::ThrowsError;
using test::write_file;

TrainConfig parse(const std::string& yaml, const std::string& where = "cfg.yml") {
  TrainConfig c;
  parse_train_config(yaml, where, c);
  return c;
}

TEST(TrainConfig, DefaultsAreTheIssuesAndReferenceKits) {
  const TrainConfig c;
  EXPECT_EQ(c.text_column, "headline_text");
  EXPECT_EQ(c.prefix, "|HEADLINE| ");
  EXPECT_EQ(c.suffix, ".");
  EXPECT_EQ(c.max_rows, 5000);
  EXPECT_EQ(c.sample, SampleMode::First);
  EXPECT_DOUBLE_EQ(c.validation_fraction, 0.2);
  EXPECT_EQ(c.num_epochs, 3);
  EXPECT_DOUBLE_EQ(c.lr, 5e-5);
  EXPECT_EQ(c.per_device_train_batch_size, 8);
  EXPECT_EQ(c.gradient_accumulation_steps, 1);
  EXPECT_EQ(c.zero_stage, 0);
  EXPECT_EQ(c.warmup_steps, 0);
  EXPECT_DOUBLE_EQ(c.weight_decay, 0.0);
  EXPECT_DOUBLE_EQ(c.max_grad_norm, 1.0);
  EXPECT_EQ(c.seed, 42u);
  EXPECT_FALSE(c.bfloat16);
  EXPECT_FALSE(c.packing);
  EXPECT_EQ(c.init, InitMode::Pretrained);
  EXPECT_EQ(c.max_steps, -1);
  EXPECT_NO_THROW(validate(c, /*require_paths=*/false));
  // An empty document changes nothing.
  const TrainConfig e = parse("");
  EXPECT_EQ(to_yaml(e), to_yaml(c));
}

TEST(TrainConfig, EveryKeyByItsFlagName) {
  const TrainConfig c = parse(R"(
model: models/gpt2-medium
data_path: data/abcnews-date-text.csv
save_path: out/ft
tokenizer: tok/
resume_from_checkpoint: latest
text_column: title
prefix: "<h> "
suffix: ""
max_rows: 1000
sample: random
validation_fraction: 0.1
packing: true
block_size: 128
num_epochs: 2
max_steps: 300
lr: 1e-4
per_device_train_batch_size: 4
gradient_accumulation_steps: 2
warmup_steps: 10
weight_decay: 0.01
max_grad_norm: 0.5
seed: 7
bfloat16: yes
logging_steps: 5
eval_steps: 50
save_steps: 100
save_total_limit: 2
init: random
n_layer: 2
n_embd: 64
n_head: 4
n_positions: 256
)");
  EXPECT_EQ(c.model, "models/gpt2-medium");
  EXPECT_EQ(c.data_path, "data/abcnews-date-text.csv");
  EXPECT_EQ(c.save_path, "out/ft");
  EXPECT_EQ(c.tokenizer, "tok/");
  EXPECT_EQ(c.resume_from_checkpoint, "latest");
  EXPECT_EQ(c.text_column, "title");
  EXPECT_EQ(c.prefix, "<h> ");
  EXPECT_EQ(c.suffix, "");
  EXPECT_EQ(c.max_rows, 1000);
  EXPECT_EQ(c.sample, SampleMode::Random);
  EXPECT_DOUBLE_EQ(c.validation_fraction, 0.1);
  EXPECT_TRUE(c.packing);
  EXPECT_EQ(c.block_size, 128);
  EXPECT_EQ(c.num_epochs, 2);
  EXPECT_EQ(c.max_steps, 300);
  EXPECT_DOUBLE_EQ(c.lr, 1e-4);
  EXPECT_EQ(c.per_device_train_batch_size, 4);
  EXPECT_EQ(c.gradient_accumulation_steps, 2);
  EXPECT_EQ(c.warmup_steps, 10);
  EXPECT_DOUBLE_EQ(c.weight_decay, 0.01);
  EXPECT_DOUBLE_EQ(c.max_grad_norm, 0.5);
  EXPECT_EQ(c.seed, 7u);
  EXPECT_TRUE(c.bfloat16);
  EXPECT_EQ(c.logging_steps, 5);
  EXPECT_EQ(c.eval_steps, 50);
  EXPECT_EQ(c.save_steps, 100);
  EXPECT_EQ(c.save_total_limit, 2);
  EXPECT_EQ(c.init, InitMode::Random);
  EXPECT_EQ(c.n_layer, 2);
  EXPECT_EQ(c.n_embd, 64);
  EXPECT_EQ(c.n_head, 4);
  EXPECT_EQ(c.n_positions, 256);
  EXPECT_NO_THROW(validate(c));
}

// configs/config_base.yml of the reference kit, as shipped.
const char* kConfigBase = R"(# config_base.yaml
version: 1.0

# model config
model:
  format: default # default, onnx
  pretrained_model: gpt2-medium
  path: # path to saved model

# generation config
generation:
  prompt_file: prompt.csv # file of seed texts, [optional]
  min_length: 0 # minimum length of sentence to generate
  max_length_buffer: 20 # max_length = min_length + max_length_buffer
)";

TEST(TrainConfig, ReferenceKitConfigBase) {
  TempDir dir;
  write_file(dir / "config_base.yml", kConfigBase);
  const TrainConfig c = load_train_config(dir / "config_base.yml");
  EXPECT_EQ(c.model, "gpt2-medium");  // path is null: the pretrained model names the folder
  EXPECT_EQ(c.pretrained_model, "gpt2-medium");
  EXPECT_EQ(c.generation.prompt_file, "prompt.csv");
  EXPECT_EQ(c.generation.min_length, 0);
  EXPECT_EQ(c.generation.max_length_buffer, 20);
  EXPECT_EQ(c.num_epochs, 3);  // untouched defaults
  EXPECT_DOUBLE_EQ(c.lr, 5e-5);

  // A filled-in path wins; format onnx cannot be trained.
  const TrainConfig p = parse("model:\n  format: default\n  pretrained_model: gpt2-medium\n  path: saved/gpt2-ft\n");
  EXPECT_EQ(p.model, "saved/gpt2-ft");
  EXPECT_TRUE(ThrowsError([] { parse("model:\n  format: onnx\n  path: saved/x-onnx\n", "config_finetuned_intel.yml"); },
                          {"config_finetuned_intel.yml:2", "model.format", "onnx"}));
  // Flags given after the YAML override it.
  TrainConfig o = c;
  set_config_value(o, "model", "local/gpt2", "--model");
  EXPECT_EQ(o.model, "local/gpt2");
}

TEST(TrainConfig, HfAliases) {
  const TrainConfig c = parse("learning_rate: 3e-5\nnum_train_epochs: 5\noutput_dir: o\nbf16: true\n");
  EXPECT_DOUBLE_EQ(c.lr, 3e-5);
  EXPECT_EQ(c.num_epochs, 5);
  EXPECT_EQ(c.save_path, "o");
  EXPECT_TRUE(c.bfloat16);
  EXPECT_TRUE(ThrowsError([] { parse("lr: 1e-4\nlearning_rate: 2e-4\n"); }, {"cfg.yml:2", "learning_rate", "'lr'"}));
  EXPECT_TRUE(ThrowsError([] { parse("lr: 1e-4\nseed: 1\nlr: 2e-4\n"); }, {"cfg.yml:3", "duplicate key 'lr'"}));
}

TEST(TrainConfig, UnknownKeyNamesTheClosestValidOne) {
  EXPECT_TRUE(ThrowsError([] { parse("num_epochs: 3\nnum_epoch: 3\n", "my.yml"); },
                          {"my.yml:2", "unknown key 'num_epoch'", "did you mean 'num_epochs'"}));
  EXPECT_TRUE(ThrowsError([] { parse("learnig_rate: 1e-4\n"); }, {"unknown key 'learnig_rate'", "'learning_rate'"}));
  EXPECT_TRUE(ThrowsError([] { parse("per_device_batch_size: 4\n"); }, {"'per_device_train_batch_size'"}));
  EXPECT_TRUE(ThrowsError([] { parse("modle: x\n"); }, {"unknown key 'modle'", "'model'"}));
  EXPECT_TRUE(ThrowsError([] { parse("Seed: 1\n"); }, {"unknown key 'Seed'", "'seed'"}));
  EXPECT_TRUE(ThrowsError([] { parse("model:\n  pth: x\n"); }, {"cfg.yml:2", "unknown key 'model.pth'", "'model.path'"}));
  EXPECT_TRUE(ThrowsError([] { parse("generation:\n  min_lenght: 3\n"); },
                          {"unknown key 'generation.min_lenght'", "'generation.min_length'"}));
}

TEST(TrainConfig, WrongTypesNameFileAndKey) {
  EXPECT_TRUE(ThrowsError([] { parse("lr: fast\n", "t.yml"); }, {"t.yml:1", "'lr'", "number", "'fast'"}));
  EXPECT_TRUE(ThrowsError([] { parse("seed: 1\nnum_epochs: 2.5\n", "t.yml"); }, {"t.yml:2", "'num_epochs'", "integer"}));
  EXPECT_TRUE(ThrowsError([] { parse("packing: maybe\n", "t.yml"); }, {"t.yml", "'packing'", "true or false"}));
  EXPECT_TRUE(ThrowsError([] { parse("seed: -1\n", "t.yml"); }, {"t.yml", "'seed'", "non-negative integer"}));
  EXPECT_TRUE(ThrowsError([] { parse("max_rows: [1, 2]\n", "t.yml"); }, {"t.yml", "'max_rows'", "a list"}));
  EXPECT_TRUE(ThrowsError([] { parse("prefix: {a: 1}\n", "t.yml"); }, {"t.yml", "'prefix'", "a map"}));
  EXPECT_TRUE(ThrowsError([] { parse("sample: shuffled\n", "t.yml"); }, {"t.yml", "'sample'", "'first' or 'random'"}));
  EXPECT_TRUE(ThrowsError([] { parse("init: warm\n", "t.yml"); }, {"t.yml", "'init'", "'pretrained' or 'random'"}));
  EXPECT_TRUE(ThrowsError([] { parse("lr: .nan\n", "t.yml"); }, {"t.yml", "'lr'", "finite"}));
  EXPECT_TRUE(ThrowsError([] { parse("n_layer: 99999999999\n", "t.yml"); }, {"t.yml", "'n_layer'", "out of range"}));
  EXPECT_TRUE(ThrowsError([] { parse("generation: 3\n", "t.yml"); }, {"t.yml", "'generation'", "a map"}));
  EXPECT_TRUE(ThrowsError([] { parse("- lr\n- 3\n", "t.yml"); }, {"t.yml", "top level"}));
  EXPECT_TRUE(ThrowsError([] { parse("lr: [1,\n", "t.yml"); }, {"t.yml", "invalid YAML"}));
}

TEST(TrainConfig, NullLeavesTheDefault) {
  const TrainConfig c = parse("lr:\nseed: ~\nprefix: null\n");
  EXPECT_DOUBLE_EQ(c.lr, 5e-5);
  EXPECT_EQ(c.seed, 42u);
  EXPECT_EQ(c.prefix, "|HEADLINE| ");
}

TEST(TrainConfig, MissingFile) {
  TempDir dir;
  EXPECT_TRUE(ThrowsError([&] { load_train_config(dir / "none.yml"); }, {"none.yml", "no such file"}));
}

TEST(TrainConfig, SetFromFlagText) {
  TrainConfig c;
  set_config_value(c, "lr", "2e-5", "--lr");
  set_config_value(c, "packing", "true", "--packing");
  set_config_value(c, "sample", "random", "--sample");
  set_config_value(c, "max_rows", "100", "--max_rows");
  set_config_value(c, "prefix", "", "--prefix");
  set_config_value(c, "learning_rate", "3e-5", "--learning_rate");
  EXPECT_DOUBLE_EQ(c.lr, 3e-5);
  EXPECT_TRUE(c.packing);
  EXPECT_EQ(c.sample, SampleMode::Random);
  EXPECT_EQ(c.max_rows, 100);
  EXPECT_EQ(c.prefix, "");
  EXPECT_TRUE(ThrowsError([&] { set_config_value(c, "lr", "abc", "--lr"); }, {"--lr", "'lr'", "number"}));
  EXPECT_TRUE(ThrowsError([&] { set_config_value(c, "batch_size", "4", "--batch_size"); },
                          {"--batch_size", "unknown setting 'batch_size'", "did you mean"}));
}

TEST(TrainConfig, ValidateNamesTheKey) {
  auto bad = [](auto edit, const std::string& key) {
    TrainConfig c;
    c.model = "m";
    c.data_path = "d.csv";
    c.save_path = "o";
    edit(c);
    return ThrowsError([&] { validate(c); }, {key});
  };
  EXPECT_TRUE(bad([](TrainConfig& c) { c.lr = 0; }, "lr"));
  EXPECT_TRUE(bad([](TrainConfig& c) { c.response_template = "\xFF"; }, "response_template"));
  EXPECT_TRUE(bad([](TrainConfig& c) { c.response_template = " <END>", c.packing = true; }, "invalid response_template: not with --packing"));
  EXPECT_TRUE(bad([](TrainConfig& c) { c.response_template = " <END>", c.run_clm = true; }, "invalid response_template: not with --train_file"));
  EXPECT_TRUE(bad([](TrainConfig& c) { c.validation_fraction = 1.0; }, "validation_fraction"));
  EXPECT_TRUE(bad([](TrainConfig& c) { c.per_device_train_batch_size = 0; }, "per_device_train_batch_size"));
  EXPECT_TRUE(bad([](TrainConfig& c) { c.gradient_accumulation_steps = 0; }, "gradient_accumulation_steps"));
  EXPECT_TRUE(bad([](TrainConfig& c) { c.num_epochs = 0; }, "num_epochs"));
  EXPECT_TRUE(bad([](TrainConfig& c) { c.zero_stage = 2; }, "--zero_stage 2: only 0 and 1 are supported"));
  EXPECT_TRUE(bad([](TrainConfig& c) { c.zero_stage = -1; }, "--zero_stage -1: only 0 and 1 are supported"));
  EXPECT_TRUE(bad([](TrainConfig& c) { c.weight_decay = -1; }, "weight_decay"));
  EXPECT_TRUE(bad([](TrainConfig& c) { c.max_grad_norm = -1; }, "max_grad_norm"));
  EXPECT_TRUE(bad([](TrainConfig& c) { c.warmup_steps = -1; }, "warmup_steps"));
  EXPECT_TRUE(bad([](TrainConfig& c) { c.save_total_limit = -1; }, "save_total_limit"));
  EXPECT_TRUE(bad([](TrainConfig& c) { c.data_path.clear(); }, "data_path"));
  EXPECT_TRUE(bad([](TrainConfig& c) { c.save_path.clear(); }, "save_path"));
  EXPECT_TRUE(bad([](TrainConfig& c) { c.model.clear(); }, "model"));
  EXPECT_TRUE(bad([](TrainConfig& c) { c.n_layer = 2; }, "init"));
  EXPECT_TRUE(bad(
      [](TrainConfig& c) {
        c.init = InitMode::Random;
        c.n_embd = 10;
        c.n_head = 3;
      },
      "n_head"));
  TrainConfig ok;
  ok.init = InitMode::Random;
  ok.data_path = "d";
  ok.save_path = "o";
  EXPECT_NO_THROW(validate(ok));  // no model needed for a random init
  ok.max_steps = 10;
  ok.num_epochs = 0;
  EXPECT_NO_THROW(validate(ok));  // max_steps alone is enough
}

TEST(TrainConfig, YamlRoundTrip) {
  TrainConfig c;
  c.model = "m";
  c.data_path = "d: with colon.csv";
  c.prefix = "|HEADLINE| ";
  c.suffix = "\"quoted\"";
  c.response_template = " <END>";
  c.sample = SampleMode::Random;
  c.lr = 3.3e-5;
  c.validation_fraction = 0.15;
  c.seed = 123456789012345ull;
  c.init = InitMode::Random;
  c.n_layer = 3;
  c.bfloat16 = true;
  c.zero_stage = 1;
  c.generation.prompt_file = "p.csv";
  const std::string y = to_yaml(c);
  const TrainConfig d = parse(y);
  EXPECT_EQ(to_yaml(d), y) << y;
  EXPECT_EQ(d.zero_stage, 1);
  EXPECT_EQ(d.data_path, c.data_path);
  EXPECT_EQ(d.prefix, c.prefix);
  EXPECT_EQ(d.suffix, c.suffix);
  EXPECT_EQ(d.response_template, " <END>");
  EXPECT_EQ(d.lr, c.lr);
  EXPECT_EQ(d.validation_fraction, c.validation_fraction);
  EXPECT_EQ(d.seed, c.seed);
  EXPECT_EQ(d.n_layer, 3);
  EXPECT_FALSE(d.n_embd.has_value());
  EXPECT_EQ(d.generation.prompt_file, "p.csv");
}

TEST(TrainConfig, LoraKeysDefaultToPeftsLoraConfig) {
  const TrainConfig c;
  EXPECT_FALSE(c.lora);
  EXPECT_EQ(c.lora_r, 8);
  EXPECT_DOUBLE_EQ(c.lora_alpha, 8.0);
  EXPECT_DOUBLE_EQ(c.lora_dropout, 0.0);
  EXPECT_TRUE(c.lora_target.empty());
  EXPECT_EQ(c.base_dtype, "float32");
  EXPECT_FALSE(c.gradient_checkpointing);
}

TEST(TrainConfig, LoraKeysFromYaml) {
  const TrainConfig c = parse(
      "lora_r: 16\nlora_alpha: 32\nlora_dropout: 0.05\nlora_target: [q_proj, v_proj]\nbase_dtype: int8\n"
      "gradient_checkpointing: true\n");
  EXPECT_TRUE(c.lora);  // implied by the lora_* keys
  EXPECT_EQ(c.lora_r, 16);
  EXPECT_DOUBLE_EQ(c.lora_alpha, 32.0);
  EXPECT_DOUBLE_EQ(c.lora_dropout, 0.05);
  EXPECT_EQ(c.lora_target, (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_EQ(c.base_dtype, "int8");
  EXPECT_TRUE(c.gradient_checkpointing);
  EXPECT_NO_THROW(validate(c, false));
  // A comma string is the flag's form; spaces around names and empty names are dropped.
  EXPECT_EQ(parse("lora_target: \"c_attn , c_proj,\"\n").lora_target, (std::vector<std::string>{"c_attn", "c_proj"}));
  EXPECT_TRUE(parse("lora_target: c_attn\n").lora);
  EXPECT_TRUE(parse("lora: true\n").lora);
  EXPECT_TRUE(parse("lora_dropout: 0.1\n").lora);
  EXPECT_TRUE(parse("lora_alpha: 4\n").lora);
  // An explicit lora wins over the keys that imply it, before or after them.
  EXPECT_FALSE(parse("lora: false\nlora_r: 4\n").lora);
  EXPECT_FALSE(parse("lora_r: 4\nlora: false\n").lora);
  EXPECT_EQ(parse("lora_r: 4\nlora: false\n").lora_r, 4);
  // A null value leaves the default and does not switch LoRA on.
  EXPECT_FALSE(parse("lora_r:\n").lora);
  EXPECT_TRUE(ThrowsError([] { parse("lora_r: 2.5\n", "t.yml"); }, {"t.yml:1", "'lora_r'", "integer"}));
  EXPECT_TRUE(ThrowsError([] { parse("lora_target: {a: 1}\n", "t.yml"); }, {"t.yml:1", "'lora_target'", "a map"}));
  EXPECT_TRUE(ThrowsError([] { parse("lora_target: [[a]]\n", "t.yml"); }, {"t.yml", "'lora_target'", "a list"}));
  EXPECT_TRUE(ThrowsError([] { parse("gradient_checkpointing: maybe\n", "t.yml"); },
                          {"t.yml", "'gradient_checkpointing'", "true or false"}));
  EXPECT_TRUE(ThrowsError([] { parse("lora_rank: 8\n"); }, {"unknown key 'lora_rank'", "did you mean 'lora_r'"}));
}

TEST(TrainConfig, LoraKeysFromFlagText) {
  TrainConfig c;
  set_config_value(c, "lora_target", "q_proj,v_proj", "--lora_target");
  EXPECT_TRUE(c.lora);
  EXPECT_EQ(c.lora_target, (std::vector<std::string>{"q_proj", "v_proj"}));
  TrainConfig d;
  set_config_value(d, "lora_r", "4", "--lora_r");
  set_config_value(d, "base_dtype", "bfloat16", "--base_dtype");
  set_config_value(d, "gradient_checkpointing", "True", "--gradient_checkpointing");  // Python's spelling
  EXPECT_TRUE(d.lora);
  EXPECT_EQ(d.lora_r, 4);
  EXPECT_EQ(d.base_dtype, "bfloat16");
  EXPECT_TRUE(d.gradient_checkpointing);
  EXPECT_TRUE(ThrowsError([&] { set_config_value(d, "lora_alpha", "big", "--lora_alpha"); }, {"--lora_alpha", "number"}));
}

TEST(TrainConfig, LoraValidation) {
  auto error = [](auto edit) {
    TrainConfig c;
    c.lora = true;
    edit(c);
    return test::error_of([&] { validate(c, false); });
  };
  EXPECT_EQ(error([](TrainConfig& c) { c.lora_r = 0; }), "--lora_r must be a positive integer, got 0");
  EXPECT_EQ(error([](TrainConfig& c) { c.lora_r = -3; }), "--lora_r must be a positive integer, got -3");
  EXPECT_EQ(error([](TrainConfig& c) { c.lora_alpha = 0; }), "--lora_alpha must be > 0, got 0");
  EXPECT_EQ(error([](TrainConfig& c) { c.lora_alpha = -1.5; }), "--lora_alpha must be > 0, got -1.5");
  EXPECT_EQ(error([](TrainConfig& c) { c.lora_dropout = 1; }), "--lora_dropout must be in [0, 1), got 1");
  EXPECT_EQ(error([](TrainConfig& c) { c.lora_dropout = -0.1; }), "--lora_dropout must be in [0, 1), got -0.1");
  EXPECT_EQ(error([](TrainConfig& c) { c.base_dtype = "fp16"; }),
            "--base_dtype must be float32, bfloat16 or int8, got 'fp16'");
  EXPECT_EQ(error([](TrainConfig& c) { c.lora_dropout = 0.999; }), "");
  for (const char* dtype : {"float32", "bfloat16", "int8"})
    EXPECT_EQ(error([&](TrainConfig& c) { c.base_dtype = dtype; }), "") << dtype;
  // Without LoRA the base is what is trained: fp32 only.
  TrainConfig full;
  full.base_dtype = "bfloat16";
  const std::string e = test::error_of([&] { validate(full, false); });
  EXPECT_EQ(e.rfind("--base_dtype bfloat16 needs --lora", 0), 0u) << e;
  EXPECT_NE(e.find("a full fine-tune trains fp32 weights"), std::string::npos) << e;
  full.base_dtype = "int8";
  EXPECT_NE(test::error_of([&] { validate(full, false); }).find("--base_dtype int8 needs --lora"), std::string::npos);
  full.base_dtype = "float32";
  EXPECT_NO_THROW(validate(full, false));
}

TEST(TrainConfig, LoraYamlRoundTrip) {
  TrainConfig c;
  c.lora = true;
  c.lora_r = 12;
  c.lora_alpha = 24.5;
  c.lora_dropout = 0.1;
  c.lora_target = {"q_proj", "k_proj", "v_proj"};
  c.base_dtype = "int8";
  c.gradient_checkpointing = true;
  const std::string y = to_yaml(c);
  const TrainConfig d = parse(y);
  EXPECT_EQ(to_yaml(d), y) << y;
  EXPECT_TRUE(d.lora);
  EXPECT_EQ(d.lora_r, 12);
  EXPECT_DOUBLE_EQ(d.lora_alpha, 24.5);
  EXPECT_DOUBLE_EQ(d.lora_dropout, 0.1);
  EXPECT_EQ(d.lora_target, c.lora_target);
  EXPECT_EQ(d.base_dtype, "int8");
  EXPECT_TRUE(d.gradient_checkpointing);
  // A config without LoRA reads back without it, although its lora_* keys are written.
  const TrainConfig plain;
  const std::string p = to_yaml(plain);
  EXPECT_NE(p.find("lora_r: 8"), std::string::npos) << p;
  EXPECT_FALSE(parse(p).lora);
  EXPECT_TRUE(parse(p).lora_target.empty());
  EXPECT_EQ(to_yaml(parse(p)), p);
}

TEST(TrainConfig, RunClmSpellings) {
  const TrainConfig c = parse(
      "model_name_or_path: m\ntrain_file: data/train.csv\nvalidation_file: data/val.csv\ntokenizer_name: tok\n"
      "do_train: True\ndo_eval: True\nfp16: True\noverwrite_cache: True\nuse_fast_tokenizer: False\n"
      "eval_strategy: steps\nsave_strategy: epoch\ndeepspeed: ds_config_gptj.json\n");
  EXPECT_EQ(c.model, "m");
  EXPECT_EQ(c.data_path, "data/train.csv");
  EXPECT_TRUE(c.run_clm);  // --train_file is --data_path read by run_clm.py's pipeline
  EXPECT_EQ(c.validation_file, "data/val.csv");
  EXPECT_EQ(c.tokenizer, "tok");
  EXPECT_EQ(c.do_train, true);
  EXPECT_EQ(c.do_eval, true);
  EXPECT_TRUE(c.fp16);
  EXPECT_FALSE(c.bfloat16);  // fp16 is read as bf16 by the trainer, the key itself stays
  EXPECT_TRUE(c.overwrite_cache);
  EXPECT_FALSE(c.use_fast_tokenizer);
  EXPECT_EQ(c.evaluation_strategy, IntervalStrategy::Steps);
  EXPECT_EQ(c.save_strategy, IntervalStrategy::Epoch);
  EXPECT_EQ(c.deepspeed, "ds_config_gptj.json");
  EXPECT_FALSE(parse("data_path: x.csv\n").run_clm);
  EXPECT_TRUE(ThrowsError([] { parse("data_path: a.csv\ntrain_file: b.csv\n"); }, {"cfg.yml:2", "train_file", "'data_path'"}));
  EXPECT_TRUE(ThrowsError([] { parse("model: a\nmodel_name_or_path: b\n"); }, {"cfg.yml:2", "'model'"}));
  // The flag forms, as run_clm.py command lines write them.
  TrainConfig f;
  set_config_value(f, "evaluation_strategy", "epoch", "--evaluation_strategy");
  set_config_value(f, "do_train", "true", "--do_train");
  set_config_value(f, "use_fast_tokenizer", "False", "--use_fast_tokenizer");
  EXPECT_EQ(f.evaluation_strategy, IntervalStrategy::Epoch);
  EXPECT_FALSE(f.use_fast_tokenizer);
  EXPECT_TRUE(ThrowsError([&] { set_config_value(f, "evaluation_strategy", "step", "--evaluation_strategy"); },
                          {"--evaluation_strategy", "'steps', 'epoch' or 'no'", "'step'"}));
  EXPECT_TRUE(ThrowsError([&] { set_config_value(f, "save_strategy", "always", "--save_strategy"); },
                          {"--save_strategy", "'steps', 'epoch' or 'no'", "'always'"}));
  EXPECT_TRUE(ThrowsError([&] { set_config_value(f, "do_eval", "sometimes", "--do_eval"); }, {"--do_eval", "true or false"}));
}

TEST(TrainConfig, DoTrainAndDoEval) {
  TrainConfig c;  // neither: train, and evaluate (every epoch by default)
  EXPECT_TRUE(will_train(c));
  EXPECT_TRUE(will_evaluate(c));
  EXPECT_EQ(eval_strategy(c), IntervalStrategy::Epoch);
  c.eval_steps = 5;
  EXPECT_EQ(eval_strategy(c), IntervalStrategy::Steps);
  TrainConfig eval_only;
  eval_only.do_eval = true;  // run_clm.py: without --do_train nothing is trained
  EXPECT_FALSE(will_train(eval_only));
  EXPECT_TRUE(will_evaluate(eval_only));
  TrainConfig train_only;
  train_only.do_train = true;
  train_only.evaluation_strategy = IntervalStrategy::No;
  EXPECT_TRUE(will_train(train_only));
  EXPECT_FALSE(will_evaluate(train_only));
  train_only.evaluation_strategy = IntervalStrategy::Steps;  // HF: a strategy other than no sets do_eval
  EXPECT_TRUE(will_evaluate(train_only));
  TrainConfig both;
  both.do_train = true;
  both.do_eval = true;
  both.evaluation_strategy = IntervalStrategy::No;
  EXPECT_TRUE(will_evaluate(both));  // at the end only
}

TEST(TrainConfig, EvalAndSaveStrategies) {
  TrainConfig c;
  c.evaluation_strategy = IntervalStrategy::Steps;
  c.eval_steps = 10;
  EXPECT_TRUE(eval_due(c, 10, false));
  EXPECT_TRUE(eval_due(c, 20, false));
  EXPECT_FALSE(eval_due(c, 15, true));
  c.eval_steps = 0;  // HF: eval_steps defaults to logging_steps
  c.logging_steps = 4;
  EXPECT_TRUE(eval_due(c, 8, false));
  EXPECT_FALSE(eval_due(c, 6, false));
  c.evaluation_strategy = IntervalStrategy::Epoch;
  c.eval_steps = 10;
  EXPECT_FALSE(eval_due(c, 10, false));
  EXPECT_TRUE(eval_due(c, 7, true));
  c.evaluation_strategy = IntervalStrategy::No;
  EXPECT_FALSE(eval_due(c, 10, true));
  TrainConfig s;  // default: steps, every save_steps (500)
  EXPECT_TRUE(save_due(s, 500, false));
  EXPECT_FALSE(save_due(s, 250, true));
  s.save_steps = 0;
  EXPECT_FALSE(save_due(s, 500, true));
  s.save_strategy = IntervalStrategy::Epoch;
  EXPECT_TRUE(save_due(s, 3, true));
  EXPECT_FALSE(save_due(s, 500, false));
  s.save_strategy = IntervalStrategy::No;
  s.save_steps = 500;
  EXPECT_FALSE(save_due(s, 500, true));
}

TEST(TrainConfig, RunClmValidation) {
  auto error = [](auto edit) {
    TrainConfig c;
    c.model = "m";
    c.data_path = "d.csv";
    c.save_path = "o";
    edit(c);
    return test::error_of([&] { validate(c); });
  };
  EXPECT_EQ(error([](TrainConfig& c) {
              c.do_train = false;
              c.do_eval = false;
            }),
            "nothing to do: --do_train and --do_eval are both false (as in run_clm.py, without --do_train nothing is "
            "trained; --do_eval alone evaluates --model on the validation set)");
  EXPECT_EQ(error([](TrainConfig& c) { c.do_train = false; }).substr(0, 15), "nothing to do: ");
  EXPECT_EQ(error([](TrainConfig& c) {
              c.do_eval = true;
              c.init = InitMode::Random;
              c.model.clear();
            }),
            "--do_eval without --do_train evaluates --model as it is: it needs init: pretrained, not random");
  EXPECT_EQ(error([](TrainConfig& c) {
              c.do_eval = true;
              c.do_train = true;
              c.validation_fraction = 0;
            }),
            "--do_eval needs a validation set: --validation_file FILE, or --validation_fraction > 0");
  EXPECT_EQ(error([](TrainConfig& c) {
              c.evaluation_strategy = IntervalStrategy::Epoch;
              c.validation_fraction = 0;
            }),
            "--evaluation_strategy needs a validation set: --validation_file FILE, or --validation_fraction > 0");
  EXPECT_EQ(error([](TrainConfig& c) {
              c.validation_fraction = 0;
              c.validation_file = "v.csv";
              c.do_eval = true;
            }),
            "");
  EXPECT_EQ(error([](TrainConfig& c) {
              c.evaluation_strategy = IntervalStrategy::Steps;
              c.logging_steps = 0;
            }),
            "--evaluation_strategy steps needs --eval_steps > 0 (or --logging_steps > 0, HF's default for it)");
  EXPECT_EQ(error([](TrainConfig& c) {
              c.run_clm = true;
              c.data_path = "data/train.parquet";
            }),
            "data/train.parquet: --train_file must be a .csv, .json, .jsonl or .txt file (the extension says how it is "
            "read), got '.parquet'");
  EXPECT_EQ(error([](TrainConfig& c) {
              c.run_clm = true;
              c.validation_file = "val.tsv";
            }).rfind("val.tsv: --validation_file must be a .csv", 0),
            0u);
  // Evaluation alone needs no training file when a validation file is given.
  EXPECT_EQ(error([](TrainConfig& c) {
              c.data_path.clear();
              c.do_eval = true;
              c.validation_file = "val.jsonl";
            }),
            "");
  EXPECT_NE(error([](TrainConfig& c) {
              c.data_path.clear();
              c.do_eval = true;
            }).find("data_path"),
            std::string::npos);
}

TEST(TrainConfig, RunClmYamlRoundTrip) {
  TrainConfig c;
  set_config_value(c, "train_file", "t.txt", "--train_file");
  c.validation_file = "v.txt";
  c.do_train = true;
  c.evaluation_strategy = IntervalStrategy::No;
  c.save_strategy = IntervalStrategy::Epoch;
  c.fp16 = true;
  c.overwrite_cache = true;
  c.use_fast_tokenizer = false;
  c.deepspeed = "ds.json";
  const std::string y = to_yaml(c);
  EXPECT_NE(y.find("evaluation_strategy: \"no\""), std::string::npos) << y;  // YAML 1.1 readers take a bare no as false
  const TrainConfig d = parse(y);
  EXPECT_EQ(to_yaml(d), y) << y;
  EXPECT_TRUE(d.run_clm);
  EXPECT_EQ(d.data_path, "t.txt");
  EXPECT_EQ(d.validation_file, "v.txt");
  EXPECT_EQ(d.do_train, true);
  EXPECT_FALSE(d.do_eval.has_value());
  EXPECT_EQ(d.evaluation_strategy, IntervalStrategy::No);
  EXPECT_EQ(d.save_strategy, IntervalStrategy::Epoch);
  EXPECT_TRUE(d.fp16);
  EXPECT_TRUE(d.overwrite_cache);
  EXPECT_FALSE(d.use_fast_tokenizer);
  EXPECT_EQ(d.deepspeed, "ds.json");
  // Unset stays unset.
  const TrainConfig plain = parse(to_yaml(TrainConfig{}));
  EXPECT_FALSE(plain.do_train.has_value());
  EXPECT_FALSE(plain.evaluation_strategy.has_value());
  EXPECT_FALSE(plain.run_clm);
}

TEST(TrainConfig, EditDistance) {
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("same", "same"), 0u);
  EXPECT_EQ(edit_distance("LR", "lr"), 0u);  // case-insensitive
  EXPECT_EQ(closest_match("sed", {"seed", "save_steps", "lr"}), "seed");
  EXPECT_EQ(closest_match("x", {}), "");
}

TEST(TrainConfig, DataAndLoaderOptions) {
  TrainConfig c;
  c.data_path = "d.csv";
  c.text_column = "title";
  c.seed = 9;
  const DataOptions d = data_options(c, 1024);
  EXPECT_EQ(d.data_path, "d.csv");
  EXPECT_EQ(d.text_column, "title");
  EXPECT_EQ(d.max_tokens, 1024);
  EXPECT_EQ(d.seed, 9u);
  EXPECT_EQ(d.max_rows, 5000);
  EXPECT_EQ(d.response_template, "");
  c.response_template = " <END>";
  EXPECT_EQ(data_options(c, 1024).response_template, " <END>");
  EXPECT_EQ(loader_options(c, 2048, 50256).block_size, 1024);  // 0 = min(n_positions, 1024)
  EXPECT_EQ(loader_options(c, 128, 50256).block_size, 128);
  EXPECT_EQ(loader_options(c, 128, 50256).pad_id, 50256);
  EXPECT_EQ(loader_options(c, 128, 50256).batch_size, 8);
  c.packing = true;
  c.block_size = 256;
  EXPECT_TRUE(ThrowsError([&] { loader_options(c, 128, 0); }, {"block_size", "256", "n_positions 128"}));
}

}  // namespace
}  // namespace lmforge
