// config.json parsing: the fixture configs, HF defaults, and one error per kind of bad input.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "io/io_test_util.h"
#include "lmforge/model/config.h"

namespace lmforge {
namespace {

using test::TempDir;
using test::ThrowsError;

ModelConfig parse(const std::string& text) { return parse_model_config(text, "cfg/config.json"); }

// parse must fail with "cfg/config.json" and every needle in the message.
::testing::AssertionResult Rejects(const std::string& text, std::vector<std::string> needles) {
  needles.push_back("cfg/config.json");
  return ThrowsError([&] { parse(text); }, needles);
}

TEST(Config, FixtureConfigsMatchTheManifest) {
  std::ifstream in(test::data_dir() / "manifest.json");
  const auto manifest = nlohmann::json::parse(in);
  for (const auto& m : manifest.at("models")) {
    SCOPED_TRACE(m.at("name").get<std::string>());
    const auto c = load_model_config(test::model_dir(m.at("name")));  // a folder works as well as the file
    const auto& e = m.at("config");
    EXPECT_EQ(c.arch, m.at("arch") == "gpt2" ? Arch::GPT2 : Arch::GPTJ);
    EXPECT_EQ(c.model_type, m.at("arch").get<std::string>());
    EXPECT_EQ(c.vocab_size, e.at("vocab_size").get<int>());
    EXPECT_EQ(c.n_positions, e.at("n_positions").get<int>());
    EXPECT_EQ(c.n_embd, e.at("n_embd").get<int>());
    EXPECT_EQ(c.n_layer, e.at("n_layer").get<int>());
    EXPECT_EQ(c.n_head, e.at("n_head").get<int>());
    EXPECT_EQ(c.bos_token_id, e.at("bos_token_id").get<int>());
    EXPECT_EQ(c.eos_token_id, e.at("eos_token_id").get<int>());
    EXPECT_FALSE(c.pad_token_id.has_value());
    EXPECT_EQ(c.n_inner, 0);  // null in every fixture
    EXPECT_EQ(c.inner_dim(), 4 * c.n_embd);
    EXPECT_FLOAT_EQ(c.layer_norm_epsilon, 1e-5f);
    EXPECT_EQ(c.activation_name, e.value("activation_function", std::string("gelu_new")));
    EXPECT_EQ(c.scale_attn_by_inverse_layer_idx, e.value("scale_attn_by_inverse_layer_idx", false));
    EXPECT_EQ(c.reorder_and_upcast_attn, e.value("reorder_and_upcast_attn", false));
    EXPECT_EQ(c.tie_word_embeddings, m.at("arch") == "gpt2");
    if (c.arch == Arch::GPTJ) {
      EXPECT_EQ(c.rotary_dim, e.at("rotary_dim").get<int>());
    }
    EXPECT_EQ(c.torch_dtype, m.at("stored_dtype").get<std::string>());
  }
  EXPECT_EQ(load_model_config(test::model_dir("gpt2-switches") / "config.json").activation, Activation::Gelu);
}

TEST(Config, Gpt2Defaults) {
  const auto c = parse(R"({"model_type": "gpt2"})");
  EXPECT_EQ(c.arch, Arch::GPT2);
  EXPECT_EQ(c.n_layer, 12);
  EXPECT_EQ(c.n_head, 12);
  EXPECT_EQ(c.n_embd, 768);
  EXPECT_EQ(c.n_positions, 1024);
  EXPECT_EQ(c.vocab_size, 50257);
  EXPECT_EQ(c.inner_dim(), 3072);
  EXPECT_FLOAT_EQ(c.layer_norm_epsilon, 1e-5f);
  EXPECT_EQ(c.activation, Activation::GeluNew);
  EXPECT_TRUE(c.scale_attn_weights);
  EXPECT_FALSE(c.scale_attn_by_inverse_layer_idx);
  EXPECT_FALSE(c.reorder_and_upcast_attn);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 50256);
  EXPECT_EQ(c.eos_token_id, 50256);
  EXPECT_FALSE(c.pad_token_id.has_value());
}

TEST(Config, GptjDefaults) {
  const auto c = parse(R"({"model_type": "gptj"})");
  EXPECT_EQ(c.arch, Arch::GPTJ);
  EXPECT_EQ(c.model_type, "gptj");
  EXPECT_EQ(c.n_embd, 4096);
  EXPECT_EQ(c.n_layer, 28);
  EXPECT_EQ(c.n_head, 16);
  EXPECT_EQ(c.n_positions, 2048);
  EXPECT_EQ(c.rotary_dim, 64);
  EXPECT_EQ(c.vocab_size, 50400);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.activation, Activation::GeluNew);
  EXPECT_EQ(c.inner_dim(), 4 * 4096);
}

TEST(Config, ArchitectureFromArchitecturesList) {
  EXPECT_EQ(parse(R"({"architectures": ["GPT2LMHeadModel"]})").arch, Arch::GPT2);
  EXPECT_EQ(parse(R"({"architectures": ["GPTJForCausalLM"]})").arch, Arch::GPTJ);
  EXPECT_EQ(parse(R"({"architectures": ["GPTJForCausalLM"]})").rotary_dim, 64);
  EXPECT_TRUE(Rejects(R"({"architectures": ["LlamaForCausalLM"]})", {"architectures", "no supported architecture"}));
  EXPECT_TRUE(Rejects(R"({"n_layer": 2})", {"model_type", "missing"}));
}

TEST(Config, Activations) {
  const std::pair<const char*, Activation> names[] = {
      {"gelu_new", Activation::GeluNew}, {"gelu", Activation::Gelu},           {"relu", Activation::Relu},
      {"gelu_fast", Activation::GeluFast}, {"gelu_pytorch_tanh", Activation::GeluPytorchTanh},
      {"quick_gelu", Activation::QuickGelu}, {"silu", Activation::Silu},      {"swish", Activation::Silu}};
  for (auto [name, act] : names) {
    const auto c = parse(std::string(R"({"model_type": "gpt2", "activation_function": ")") + name + "\"}");
    EXPECT_EQ(c.activation, act) << name;
    EXPECT_EQ(c.activation_name, name);
  }
  EXPECT_TRUE(Rejects(R"({"model_type": "gpt2", "activation_function": "tanh"})", {"activation_function", "tanh"}));
  EXPECT_TRUE(Rejects(R"({"model_type": "gpt2", "activation_function": null})", {"activation_function"}));
}

TEST(Config, TokenIdsAndOptionalFields) {
  auto c = parse(R"({"model_type": "gpt2", "eos_token_id": [7, 8], "bos_token_id": null, "pad_token_id": 3, "n_inner": 100,
                     "torch_dtype": null, "layer_norm_epsilon": 1e-6, "tie_word_embeddings": false, "scale_attn_weights": false})");
  EXPECT_EQ(c.eos_token_id, 7);
  EXPECT_FALSE(c.bos_token_id.has_value());
  EXPECT_EQ(c.pad_token_id, 3);
  EXPECT_EQ(c.inner_dim(), 100);
  EXPECT_EQ(c.torch_dtype, "float32");
  EXPECT_FLOAT_EQ(c.layer_norm_epsilon, 1e-6f);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.scale_attn_weights);
  EXPECT_FALSE(parse(R"({"model_type": "gpt2", "eos_token_id": []})").eos_token_id.has_value());
  // HF's attribute_map aliases are applied last, so they win over the n_* names.
  c = parse(R"({"model_type": "gpt2", "n_embd": 64, "hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 3,
                "max_position_embeddings": 16})");
  EXPECT_EQ(c.n_embd, 32);
  EXPECT_EQ(c.n_head, 2);
  EXPECT_EQ(c.n_layer, 3);
  EXPECT_EQ(c.n_positions, 16);
  // GPT-J: rotary_dim null rotates the whole head.
  EXPECT_EQ(parse(R"({"model_type": "gptj", "n_embd": 64, "n_head": 4, "rotary_dim": null})").rotary_dim, 0);
}

TEST(Config, MalformedJson) {
  EXPECT_TRUE(Rejects(R"({"model_type": "gpt2",)", {"malformed JSON"}));
  EXPECT_TRUE(Rejects("", {"malformed JSON"}));
  EXPECT_TRUE(Rejects("[1, 2]", {"JSON object"}));
}

TEST(Config, WrongTypes) {
  EXPECT_TRUE(Rejects(R"({"model_type": "gpt2", "n_layer": "12"})", {"'n_layer'", "integer"}));
  EXPECT_TRUE(Rejects(R"({"model_type": "gpt2", "n_layer": 12.0})", {"'n_layer'", "integer"}));
  EXPECT_TRUE(Rejects(R"({"model_type": "gpt2", "n_head": true})", {"'n_head'"}));
  EXPECT_TRUE(Rejects(R"({"model_type": "gpt2", "n_embd": 1e12})", {"'n_embd'"}));
  EXPECT_TRUE(Rejects(R"({"model_type": "gpt2", "vocab_size": 99999999999})", {"'vocab_size'", "out of range"}));
  EXPECT_TRUE(Rejects(R"({"model_type": "gpt2", "scale_attn_weights": 1})", {"'scale_attn_weights'", "true/false"}));
  EXPECT_TRUE(Rejects(R"({"model_type": "gpt2", "layer_norm_epsilon": "1e-5"})", {"'layer_norm_epsilon'", "number"}));
  EXPECT_TRUE(Rejects(R"({"model_type": "gpt2", "eos_token_id": "50256"})", {"'eos_token_id'"}));
  EXPECT_TRUE(Rejects(R"({"model_type": "gpt2", "eos_token_id": [1, "x"]})", {"'eos_token_id'"}));
  EXPECT_TRUE(Rejects(R"({"model_type": 2})", {"'model_type'", "string"}));
  EXPECT_TRUE(Rejects(R"({"model_type": "gpt2", "n_layer": null})", {"'n_layer'"}));
}

TEST(Config, UnknownModelType) {
  EXPECT_TRUE(Rejects(R"({"model_type": "llama"})", {"'model_type'", "llama"}));
}

TEST(Config, ImpossibleShapes) {
  EXPECT_TRUE(Rejects(R"({"model_type": "gpt2", "n_embd": 100, "n_head": 12})", {"n_embd (100)", "n_head (12)"}));
  EXPECT_TRUE(Rejects(R"({"model_type": "gpt2", "n_layer": 0})", {"'n_layer'", "positive"}));
  EXPECT_TRUE(Rejects(R"({"model_type": "gpt2", "n_head": -4})", {"'n_head'", "positive"}));
  EXPECT_TRUE(Rejects(R"({"model_type": "gpt2", "vocab_size": 0})", {"'vocab_size'", "positive"}));
  EXPECT_TRUE(Rejects(R"({"model_type": "gpt2", "n_positions": 0})", {"'n_positions'", "positive"}));
  EXPECT_TRUE(Rejects(R"({"model_type": "gpt2", "n_inner": 0})", {"'n_inner'", "positive"}));
  EXPECT_TRUE(Rejects(R"({"model_type": "gpt2", "layer_norm_epsilon": -1})", {"'layer_norm_epsilon'"}));
  // GPT-J: head_dim = 64 / 4 = 16.
  EXPECT_TRUE(Rejects(R"({"model_type": "gptj", "n_embd": 64, "n_head": 4, "rotary_dim": 7})", {"'rotary_dim'", "even"}));
  EXPECT_TRUE(Rejects(R"({"model_type": "gptj", "n_embd": 64, "n_head": 4, "rotary_dim": 32})", {"'rotary_dim'", "head dimension 16"}));
  EXPECT_TRUE(Rejects(R"({"model_type": "gptj", "n_embd": 64, "n_head": 4, "rotary_dim": 0})", {"'rotary_dim'", "positive"}));
  EXPECT_TRUE(Rejects(R"({"model_type": "gptj", "n_embd": 64, "n_head": 4})", {"'rotary_dim'", "default 64"}));
  EXPECT_EQ(parse(R"({"model_type": "gptj", "n_embd": 64, "n_head": 4, "rotary_dim": 16})").rotary_dim, 16);
}

TEST(Config, Files) {
  TempDir dir;
  EXPECT_TRUE(ThrowsError([&] { load_model_config(dir.path()); }, {(dir / "config.json").string(), "not found"}));
  test::write_file(dir / "config.json", "{\"model_type\": \"gpt2\", \"n_head\": }");
  EXPECT_TRUE(ThrowsError([&] { load_model_config(dir.path()); }, {(dir / "config.json").string(), "malformed JSON"}));
  test::write_file(dir / "config.json", R"({"model_type": "gpt2", "n_embd": 32, "n_head": 4})");
  EXPECT_EQ(load_model_config(dir / "config.json").head_dim(), 8);
  const auto missing = dir / "other" / "config.json";
  EXPECT_TRUE(ThrowsError([&] { load_model_config(missing); }, {missing.string(), "not found"}));
}

}  // namespace
}  // namespace lmforge
