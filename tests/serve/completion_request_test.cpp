// Request parsing and the mapping onto GenerationConfig, without a server: defaults, every field's
// validation (400 naming the field), and the streaming hold-back rule.
#include <gtest/gtest.h>

#include "lmforge/structured/constraint.h"
#include "lmforge/tokenizer/tokenizer.h"
#include "serve/api_error.h"
#include "serve/completion_request.h"
#include "serve/completion_runner.h"

namespace lmforge::serve {
namespace {

using nlohmann::json;

const Tokenizer& tokenizer() {
  static const Tokenizer tok = Tokenizer::from_dir(std::string(LMFORGE_TEST_DATA) + "/models/gpt2-tiny");
  return tok;
}

CompletionRequest parse(const json& body) { return parse_completion_request(body, tokenizer(), 50257, 128, 50256); }

// The param of the ApiError parsing `body` throws ("" when it does not throw).
std::string refused_param(const json& body) {
  try {
    parse(body);
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    return e.param.empty() ? "(none)" : e.param;
  }
  return "";
}

TEST(CompletionRequest, OpenAiDefaults) {
  const CompletionRequest r = parse({{"prompt", "Hello world"}});
  EXPECT_EQ(r.prompts, (std::vector<std::vector<int32_t>>{{15496, 995}}));
  EXPECT_EQ(r.max_tokens, 16);
  EXPECT_EQ(r.temperature, 1.0f);
  EXPECT_EQ(r.top_p, 1.0f);
  EXPECT_EQ(r.n, 1);
  EXPECT_EQ(r.best_of, 1);
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.echo);
  EXPECT_FALSE(r.logprobs);
  EXPECT_TRUE(r.stop.empty());
}

TEST(CompletionRequest, PromptShapes) {
  EXPECT_EQ(parse({{"prompt", json::array({"Hello", "world"})}}).prompts.size(), 2u);
  EXPECT_EQ(parse({{"prompt", json::array({1, 2, 3})}}).prompts, (std::vector<std::vector<int32_t>>{{1, 2, 3}}));
  EXPECT_EQ(parse({{"prompt", json::array({json::array({1}), json::array({2, 3})})}}).prompts.size(), 2u);
  EXPECT_EQ(parse({{"prompt", ""}}).prompts, (std::vector<std::vector<int32_t>>{{50256}}));  // starts from bos
  EXPECT_EQ(refused_param({{"prompt", json::array({1, "a"})}}), "prompt");
  EXPECT_EQ(refused_param({{"prompt", json::object()}}), "prompt");
  EXPECT_EQ(refused_param({{"prompt", json::array({-1})}}), "prompt");
}

TEST(CompletionRequest, EveryFieldIsValidated) {
  const json base{{"prompt", "a"}};
  for (const auto& [field, value] : std::vector<std::pair<std::string, json>>{
           {"max_tokens", -1}, {"max_tokens", 1.5}, {"temperature", 3}, {"temperature", "x"}, {"top_p", 0},
           {"top_p", 1.5}, {"n", 0}, {"n", 17}, {"best_of", 17}, {"logprobs", 6}, {"logprobs", -1}, {"stream", 1},
           {"echo", "yes"}, {"stop", 5}, {"stop", json::array({""})}, {"presence_penalty", 3},
           {"frequency_penalty", -3}, {"logit_bias", json{{"x", 1}}}, {"logit_bias", json{{"1", 200}}},
           {"logit_bias", json{{"99999999", 1}}}, {"seed", "s"}, {"user", 1}, {"suffix", "s"}, {"top_k", -1},
           {"repetition_penalty", 0}, {"no_repeat_ngram_size", -1}, {"min_tokens", -1}, {"num_beams", 0},
           {"early_stopping", "sometimes"}, {"use_beam_search", "y"}}) {
    json body = base;
    body[field] = value;
    EXPECT_EQ(refused_param(body), field) << field << " = " << value.dump();
  }
  EXPECT_EQ(refused_param({{"prompt", "a"}, {"n", 2}, {"best_of", 1}}), "best_of");
  EXPECT_EQ(refused_param({{"prompt", "a"}, {"stream", true}, {"n", 1}, {"best_of", 2}}), "best_of");
  EXPECT_EQ(refused_param({{"prompt", "a"}, {"stream", true}, {"num_beams", 2}}), "stream");
  EXPECT_EQ(refused_param({{"prompt", "a b"}, {"max_tokens", 127}}), "prompt");  // 2 + 127 > 128
  EXPECT_EQ(refused_param({{"prompt", "a b"}, {"max_tokens", 126}}), "");
  EXPECT_EQ(refused_param({{"prompt", "a"}, {"max_tokens", nullptr}, {"whatever", 1}}), "");  // null = default; unknown ignored
}

TEST(GenerationConfigFor, MapsOntoHfSettings) {
  ServedModel m{"m", nullptr, Tokenizer::from_dir(std::string(LMFORGE_TEST_DATA) + "/models/gpt2-tiny"), {}, 0};
  m.defaults.eos_token_id = {50256};
  m.defaults.top_k = 50;  // HF's default: not what OpenAI samples with
  GenerationConfig g = generation_config_for(m, parse({{"prompt", "a"}, {"max_tokens", 7}, {"n", 2}, {"best_of", 3}}));
  EXPECT_TRUE(g.do_sample);
  EXPECT_EQ(g.top_k, 0);
  EXPECT_EQ(*g.max_new_tokens, 7);
  EXPECT_EQ(g.num_return_sequences, 3);
  EXPECT_TRUE(g.seed.has_value());

  g = generation_config_for(m, parse({{"prompt", "a"}, {"temperature", 0}, {"n", 3}, {"seed", 5}, {"top_k", 4},
                                      {"stop", "x"}, {"logit_bias", {{"3", 2}}}, {"presence_penalty", 0.5},
                                      {"frequency_penalty", 0.25}, {"min_tokens", 2}, {"repetition_penalty", 1.3}}));
  EXPECT_FALSE(g.do_sample);
  EXPECT_EQ(g.num_return_sequences, 1);  // greedy: one row serves every choice
  EXPECT_EQ(*g.seed, 5u);
  EXPECT_EQ(g.top_k, 4);
  EXPECT_EQ(g.stop_strings, std::vector<std::string>{"x"});
  EXPECT_EQ(g.logit_bias, (std::vector<std::pair<int32_t, float>>{{3, 2.0f}}));
  EXPECT_EQ(g.presence_penalty, 0.5f);
  EXPECT_EQ(g.frequency_penalty, 0.25f);
  EXPECT_EQ(*g.min_new_tokens, 2);
  EXPECT_EQ(g.repetition_penalty, 1.3f);
  EXPECT_NO_THROW(g.validate());

  g = generation_config_for(m, parse({{"prompt", "a"}, {"use_beam_search", true}, {"n", 2}, {"best_of", 3},
                                      {"temperature", 0}, {"length_penalty", 0.5}, {"early_stopping", "never"}}));
  EXPECT_FALSE(g.do_sample);
  EXPECT_EQ(g.num_beams, 3);
  EXPECT_EQ(g.num_return_sequences, 3);
  EXPECT_EQ(g.length_penalty, 0.5f);
  EXPECT_EQ(g.early_stopping, EarlyStopping::Never);
}

// The message of the ApiError parsing `body` throws.
std::string refused_message(const json& body) {
  try {
    parse(body);
  } catch (const ApiError& e) {
    return e.what();
  }
  return "";
}

// Whether the constraint lets `text` through (token by token) and then allows eos.
bool accepts(const CompletionRequest& r, const std::string& text) {
  structured::StateId s = r.constraint->start();
  for (int32_t id : tokenizer().encode(text)) s = r.constraint->advance(s, id);
  return r.constraint->mask(s)->accepting;
}

TEST(CompletionRequest, StructuredOutputFields) {
  EXPECT_EQ(parse({{"prompt", "a"}}).constraint, nullptr);
  EXPECT_EQ(parse({{"prompt", "a"}, {"response_format", {{"type", "text"}}}}).constraint, nullptr);

  const auto obj = parse({{"prompt", "a"}, {"response_format", {{"type", "json_object"}}}});
  ASSERT_NE(obj.constraint, nullptr);
  EXPECT_TRUE(accepts(obj, R"({"a": [1, "b"]})"));
  EXPECT_FALSE(accepts(obj, "[1]"));

  const json schema = {{"type", "object"},
                       {"properties", {{"ok", {{"type", "boolean"}}}}},
                       {"required", {"ok"}}};
  const auto js = parse({{"prompt", "a"},
                         {"response_format", {{"type", "json_schema"},
                                              {"json_schema", {{"name", "r"}, {"schema", schema}, {"strict", true}}}}}});
  ASSERT_NE(js.constraint, nullptr);
  EXPECT_TRUE(accepts(js, R"({"ok": true})"));
  EXPECT_FALSE(accepts(js, R"({"ok": 1})"));

  const auto re = parse({{"prompt", "a"}, {"regex", "[0-9]{3}"}});
  EXPECT_TRUE(accepts(re, "123"));
  EXPECT_FALSE(accepts(re, "12"));
  const auto gr = parse({{"prompt", "a"}, {"grammar", "root ::= \"yes\" | \"no\""}});
  EXPECT_TRUE(accepts(gr, "no"));
  EXPECT_FALSE(accepts(gr, "maybe"));

  GenerationConfig g;
  apply_structured_output(re, g);
  EXPECT_EQ(g.constraint, re.constraint);
}

TEST(CompletionRequest, StructuredOutputErrorsNameTheField) {
  EXPECT_EQ(refused_param({{"prompt", "a"}, {"response_format", "json"}}), "response_format");
  EXPECT_EQ(refused_param({{"prompt", "a"}, {"response_format", {{"type", "xml"}}}}), "response_format");
  EXPECT_EQ(refused_param({{"prompt", "a"}, {"response_format", {{"type", "json_schema"}}}}), "response_format");
  EXPECT_EQ(refused_param({{"prompt", "a"},
                           {"response_format", {{"type", "json_schema"}, {"json_schema", {{"schema", json::object()}}}}}}),
            "response_format");  // no name
  const json bad_schema = {{"type", "json_schema"},
                           {"json_schema", {{"name", "x"}, {"schema", {{"type", "integer"}, {"minimum", 2}}}}}};
  EXPECT_EQ(refused_param({{"prompt", "a"}, {"response_format", bad_schema}}), "response_format");
  EXPECT_EQ(refused_message({{"prompt", "a"}, {"response_format", bad_schema}}),
            "Invalid 'response_format': json_schema: unsupported key 'minimum' at #");
  EXPECT_EQ(refused_param({{"prompt", "a"}, {"regex", "(a"}}), "regex");
  EXPECT_EQ(refused_param({{"prompt", "a"}, {"regex", 5}}), "regex");
  EXPECT_EQ(refused_param({{"prompt", "a"}, {"grammar", "root ::= x"}}), "grammar");
  EXPECT_EQ(refused_param({{"prompt", "a"}, {"regex", "a"}, {"grammar", "root ::= \"a\""}}), "grammar");
}

TEST(StreamableLength, HoldsBackPossibleStopsAndPartialCharacters) {
  EXPECT_EQ(streamable_length("hello", {}), 5u);
  EXPECT_EQ(streamable_length("hello wo", {"world"}), 6u);  // "wo" may become "world"
  EXPECT_EQ(streamable_length("hello w", {"xyz", "wa"}), 6u);
  EXPECT_EQ(streamable_length("hello", {"abc"}), 5u);
  EXPECT_EQ(streamable_length("caf\xEF\xBF\xBD", {}), 3u);  // U+FFFD: half a character so far
}

}  // namespace
}  // namespace lmforge::serve
