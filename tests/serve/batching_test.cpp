// Continuous batching in lmforge serve, end to end on the tiny GPT-2: a request gives the same
// bytes alone and among 63 others, greedy and beam outputs equal `lmforge generate`'s while other
// requests share the steps, and the KV-cache pool's limits.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/run.h"
#include "serve/serve_process.h"

namespace lmforge {
namespace {

using nlohmann::json;
using test::ServeProcess;

const std::string kModel = std::string(LMFORGE_TEST_DATA) + "/models/gpt2-tiny";

json complete(const ServeProcess& s, const json& body) {
  auto r = s.post("/v1/completions", body);
  EXPECT_TRUE(r);
  if (!r) return json();
  EXPECT_EQ(r->status, 200) << r->body;
  return json::parse(r->body);
}

// A streamed completion's text per choice index.
std::vector<std::string> streamed_texts(const ServeProcess& s, json body, size_t choices) {
  body["stream"] = true;
  auto r = s.post("/v1/completions", body);
  std::vector<std::string> text(choices);
  if (!r || r->status != 200) {
    ADD_FAILURE() << "streamed request failed";
    return text;
  }
  size_t pos = 0;
  for (size_t end; (end = r->body.find("\n\n", pos)) != std::string::npos; pos = end + 2) {
    const std::string event = r->body.substr(pos, end - pos);
    if (event == "data: [DONE]") continue;
    const json c = json::parse(event.substr(6));
    for (const json& ch : c["choices"]) text.at(ch["index"].get<size_t>()) += ch["text"].get<std::string>();
  }
  return text;
}

// The 63 others: greedy, sampled, streamed, echo with log-probs, long prompts (several prefill
// chunks at --max_step_tokens 32) and beam search, most of them long enough to be running when
// the request under test arrives.
json other_request(int i) {
  json body{{"prompt", "request number " + std::to_string(i) + " says"}, {"max_tokens", 30 + i % 17}};
  switch (i % 6) {
    case 0: body["temperature"] = 0; break;
    case 1: body.update({{"temperature", 1.1}, {"seed", i}, {"top_k", 40}}); break;
    case 2: body.update({{"temperature", 0.7}, {"stream", true}, {"logprobs", 2}}); break;
    case 3: body.update({{"echo", true}, {"logprobs", 1}, {"temperature", 0.5}, {"seed", i}}); break;
    case 4: {
      std::string long_prompt;
      for (int w = 0; w < 25 + i / 6; ++w) long_prompt += " word" + std::to_string(w % 9);  // 2 tokens each
      body.update({{"prompt", long_prompt}, {"max_tokens", 10}, {"temperature", 0.9}, {"n", 2}});
      break;
    }
    default: body.update({{"temperature", 0}, {"num_beams", 3}, {"max_tokens", 12}}); break;
  }
  return body;
}

TEST(Batching, ARequestGivesTheSameBytesAloneAndAmong63Others) {
  ServeProcess s({"--model", kModel, "--max_batch", "64", "--max_step_tokens", "32"});
  const json x{{"prompt", "The quick brown fox"}, {"max_tokens", 24}, {"temperature", 0.9}, {"top_p", 0.95},
               {"seed", 1234}, {"logprobs", 3}, {"n", 2}, {"echo", true}};
  const json alone = complete(s, x);
  const std::vector<std::string> alone_streamed = streamed_texts(s, x, 2);

  std::atomic<int> ok{0};
  std::vector<std::thread> others;
  for (int i = 0; i < 63; ++i)
    others.emplace_back([&, i] {
      auto r = s.post("/v1/completions", other_request(i));
      if (r && r->status == 200) ++ok;
      else ADD_FAILURE() << "request " << i << ": " << (r ? r->body : "no answer: " + httplib::to_string(r.error()));
    });
  // Send the request under test once most of the others are decoding.
  for (int t = 0; t < 200 && s.metric("lmforge_running_requests") < 32; ++t)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const double running = s.metric("lmforge_running_requests");
  json among;
  std::vector<std::string> among_streamed;
  std::thread mine([&] { among = complete(s, x); });
  std::thread mine_streamed([&] { among_streamed = streamed_texts(s, x, 2); });
  mine.join();
  mine_streamed.join();
  for (auto& t : others) t.join();
  EXPECT_EQ(ok.load(), 63);
  EXPECT_GE(running, 16) << "the others were not running together";

  ASSERT_EQ(alone["choices"].size(), 2u);
  EXPECT_EQ(alone["choices"], among["choices"]);  // text, finish_reason and every log-prob, bit for bit
  EXPECT_EQ(alone["usage"], among["usage"]);
  EXPECT_EQ(alone_streamed, among_streamed);
  for (size_t i = 0; i < 2; ++i) EXPECT_EQ(alone_streamed[i], alone["choices"][i]["text"]);
  // The steps were shared: on average many sequences per step.
  const double steps = s.metric("lmforge_batch_steps_total"), rows = s.metric("lmforge_batch_rows_total");
  ASSERT_GT(steps, 0);
  EXPECT_GT(rows / steps, 4.0) << rows << " rows in " << steps << " steps";
}

TEST(Batching, GreedyAndBeamEqualLmforgeGenerateWhileSharingSteps) {
  const std::vector<std::string> prompts = {"Hello world", "Once upon a time", "The weather today", "In 1999 we"};
  struct Case {
    std::string prompt, flags;
    json body;
    std::string expected;
  };
  std::vector<Case> cases;
  for (const std::string& p : prompts) {
    cases.push_back({p, "--max_new_tokens 12 --do_sample false", {{"temperature", 0}, {"max_tokens", 12}}, ""});
    cases.push_back({p, "--max_new_tokens 10 --do_sample false --num_beams 3",
                     {{"temperature", 0}, {"max_tokens", 10}, {"num_beams", 3}}, ""});
  }
  for (Case& c : cases) {
    const auto g = test::run_cli("generate --model " + kModel + " -p '" + c.prompt + "' " + c.flags + " --json");
    ASSERT_EQ(g.exit_code, 0) << g.err;
    json gen = json::parse(g.out);
    if (gen.is_array()) gen = gen[0];
    c.expected = gen["sentences"][0];
    c.body.update({{"prompt", c.prompt}, {"echo", true}});
  }
  ServeProcess s({"--model", kModel, "--max_batch", "16"});
  std::vector<std::string> got(cases.size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < cases.size(); ++i)
    clients.emplace_back([&, i] { got[i] = complete(s, cases[i].body)["choices"][0]["text"]; });
  for (auto& t : clients) t.join();
  for (size_t i = 0; i < cases.size(); ++i) EXPECT_EQ(got[i], cases[i].expected) << cases[i].prompt << " " << cases[i].flags;
}

// A PEFT adapter served over its base (sharing its weights) answers like `lmforge generate
// --adapter`, next to the base model answering like plain `generate`, in the same batched steps.
TEST(Batching, AdapterServedOverItsBaseEqualsGenerateWithAdapter) {
  const std::string adapter = std::string(LMFORGE_TEST_DATA) + "/lora/gpt2-tiny/adapter";
  auto expected = [&](const std::string& flags) {
    const auto g = test::run_cli("generate --model " + kModel + " " + flags +
                                 " -p 'Once upon a time' --max_new_tokens 12 --do_sample false --json");
    EXPECT_EQ(g.exit_code, 0) << g.err;
    json gen = json::parse(g.out);
    if (gen.is_array()) gen = gen[0];
    return gen["sentences"][0].get<std::string>();
  };
  const std::string want_tuned = expected("--adapter " + adapter), want_base = expected("");
  ASSERT_NE(want_tuned, want_base) << "the adapter should change this greedy text";
  ServeProcess s({"--model", kModel, "--adapter", "tuned=" + adapter});
  auto names = json::parse(s.client()->Get("/v1/models")->body)["data"];
  ASSERT_EQ(names.size(), 2u);
  EXPECT_EQ(names[1]["id"], "tuned");
  std::string tuned, base;
  json tuned_body{{"prompt", "Once upon a time"}, {"max_tokens", 12}, {"temperature", 0}, {"echo", true}};
  json base_body = tuned_body;
  tuned_body["model"] = "tuned";
  base_body["model"] = "gpt2-tiny";
  std::thread a([&] { tuned = complete(s, tuned_body)["choices"][0]["text"]; });
  std::thread b([&] { base = complete(s, base_body)["choices"][0]["text"]; });
  a.join();
  b.join();
  EXPECT_EQ(tuned, want_tuned);
  EXPECT_EQ(base, want_base);
  // An adapter whose base is not served, with two models to choose from, is one clear error.
  const auto bad = test::run_cli("serve --port 0 --model a=" + kModel + " --model b=" + kModel + " --adapter " + adapter);
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("--adapter"), std::string::npos) << bad.err;
}

// A json_schema's properties come out in the schema's order, as OpenAI's strict mode gives them,
// though the body is parsed by a JSON library that sorts keys (raw text here, so ours cannot sort it).
TEST(Batching, JsonSchemaPropertiesKeepTheirOrder) {
  ServeProcess s({"--model", kModel});
  const std::string body =
      R"({"prompt": "Data:", "max_tokens": 40, "temperature": 0, "response_format": {"type": "json_schema", )"
      R"("json_schema": {"name": "t", "strict": true, "schema": {"type": "object", "properties": )"
      R"({"zeta": {"enum": ["z"]}, "alpha": {"type": "boolean"}}, "required": ["zeta", "alpha"]}}}})";
  auto r = s.client()->Post("/v1/completions", body, "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const std::string text = json::parse(r->body)["choices"][0]["text"];
  const auto out = nlohmann::ordered_json::parse(text, nullptr, false);
  ASSERT_TRUE(out.is_object()) << text;
  ASSERT_EQ(out.size(), 2u) << text;
  EXPECT_EQ(out.begin().key(), "zeta") << text;
  EXPECT_EQ(out["zeta"], "z");
  EXPECT_TRUE(out["alpha"].is_boolean()) << text;
}

TEST(Batching, KvCachePoolLimits) {
  // 64 positions: 4 blocks of 16.
  ServeProcess s({"--model", kModel, "--kv_cache_tokens", "64"});
  auto too_big = s.post("/v1/completions", json{{"prompt", "Hello"}, {"max_tokens", 100}});
  ASSERT_TRUE(too_big);
  EXPECT_EQ(too_big->status, 400) << too_big->body;
  EXPECT_NE(json::parse(too_big->body)["error"]["message"].get<std::string>().find("--kv_cache_tokens"),
            std::string::npos);
  // Three requests of 3 blocks each: one at a time fits, the others wait for its blocks.
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 3; ++i)
    clients.emplace_back([&, i] {
      auto r = s.post("/v1/completions", json{{"prompt", "Hi " + std::to_string(i)}, {"max_tokens", 40}, {"temperature", 0}});
      if (r && r->status == 200) ++ok;
    });
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 3);
  EXPECT_EQ(s.metric("lmforge_kv_cache_blocks_used"), 0);
  EXPECT_EQ(s.metric("lmforge_kv_cache_blocks"), 4);
}

}  // namespace
}  // namespace lmforge
