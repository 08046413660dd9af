// lmforge serve end to end: the real binary on the tiny GPT-2, spoken to over HTTP. Outputs are
// checked against `lmforge generate` and `lmforge score` on the same model.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/run.h"
#include "serve/serve_process.h"

namespace lmforge {
namespace {

using nlohmann::json;
using test::ServeProcess;

const std::string kModel = std::string(LMFORGE_TEST_DATA) + "/models/gpt2-tiny";
const std::string kKey = "test-key";

class Serve : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServeProcess({"--model", kModel, "--api_key", kKey, "--max_body_bytes", "4096"});
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  static httplib::Result post(const std::string& path, const std::string& body, const std::string& key = kKey) {
    return server_->client(key)->Post(path.c_str(), body, "application/json");
  }
  // POST /v1/completions expecting 200; the parsed body.
  static json complete(json body) {
    auto r = post("/v1/completions", body.dump());
    EXPECT_TRUE(r);
    if (!r) return json();
    EXPECT_EQ(r->status, 200) << r->body;
    return json::parse(r->body);
  }
  // A streamed completion: the chunks' JSON (without [DONE]); `done` says whether [DONE] ended it.
  static std::vector<json> stream(json body, bool* done) {
    body["stream"] = true;
    auto r = post("/v1/completions", body.dump());
    EXPECT_TRUE(r);
    std::vector<json> chunks;
    *done = false;
    if (!r) return chunks;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
    size_t pos = 0;
    for (size_t end; (end = r->body.find("\n\n", pos)) != std::string::npos; pos = end + 2) {
      const std::string event = r->body.substr(pos, end - pos);
      EXPECT_EQ(event.rfind("data: ", 0), 0u) << event;
      if (event == "data: [DONE]") *done = true;
      else chunks.push_back(json::parse(event.substr(6)));
    }
    EXPECT_EQ(pos, r->body.size()) << "a partial event at the end";
    return chunks;
  }
  static void expect_error(const httplib::Result& r, int status, const std::string& param = "",
                           const std::string& code = "") {
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, status) << r->body;
    const json e = json::parse(r->body);
    ASSERT_TRUE(e.contains("error")) << r->body;
    for (const char* k : {"message", "type", "param", "code"}) EXPECT_TRUE(e["error"].contains(k)) << k;
    EXPECT_TRUE(e["error"]["message"].is_string());
    if (!param.empty()) {
      EXPECT_EQ(e["error"]["param"], param) << r->body;
    }
    if (!code.empty()) {
      EXPECT_EQ(e["error"]["code"], code) << r->body;
    }
  }

  static ServeProcess* server_;
};
ServeProcess* Serve::server_ = nullptr;

TEST_F(Serve, HealthAndModels) {
  auto h = server_->client()->Get("/health");  // no key needed
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto m = server_->client(kKey)->Get("/v1/models");
  ASSERT_TRUE(m);
  ASSERT_EQ(m->status, 200);
  const json list = json::parse(m->body);
  EXPECT_EQ(list["object"], "list");
  ASSERT_EQ(list["data"].size(), 1u);
  EXPECT_EQ(list["data"][0]["id"], "gpt2-tiny");
  EXPECT_EQ(list["data"][0]["object"], "model");
  auto one = server_->client(kKey)->Get("/v1/models/gpt2-tiny");
  ASSERT_TRUE(one);
  EXPECT_EQ(json::parse(one->body), list["data"][0]);
  expect_error(server_->client(kKey)->Get("/v1/models/nope"), 404, "model", "model_not_found");
}

TEST_F(Serve, GreedyMatchesLmforgeGenerate) {
  const auto g = test::run_cli("generate --model " + kModel + " -p 'Hello world' --max_new_tokens 8 --do_sample false --json");
  ASSERT_EQ(g.exit_code, 0) << g.err;
  json gen = json::parse(g.out);
  if (gen.is_array()) gen = gen[0];
  const std::string expected = gen["sentences"][0];
  const json r = complete({{"prompt", "Hello world"}, {"max_tokens", 8}, {"temperature", 0}, {"echo", true}});
  EXPECT_EQ(r["object"], "text_completion");
  EXPECT_EQ(r["id"].get<std::string>().rfind("cmpl-", 0), 0u);
  EXPECT_EQ(r["model"], "gpt2-tiny");
  ASSERT_EQ(r["choices"].size(), 1u);
  EXPECT_EQ(r["choices"][0]["text"], expected);
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(r["usage"]["completion_tokens"], 8);
  EXPECT_EQ(r["usage"]["total_tokens"], r["usage"]["prompt_tokens"].get<int>() + 8);
  // The same prompt as token ids gives the same text.
  const json ids = json::parse(post("/tokenize", json{{"prompt", "Hello world"}}.dump())->body)["tokens"];
  const json r2 = complete({{"prompt", ids}, {"max_tokens", 8}, {"temperature", 0}, {"echo", true}});
  EXPECT_EQ(r2["choices"][0]["text"], expected);
}

TEST_F(Serve, StreamedEqualsNonStreamed) {
  for (const json& extra : {json{{"temperature", 0}}, json{{"temperature", 0.8}, {"seed", 7}, {"n", 2}},
                            json{{"temperature", 0}, {"echo", true}}}) {
    json body{{"prompt", "Once upon a time"}, {"max_tokens", 10}};
    body.update(extra);
    const json whole = complete(body);
    bool done = false;
    const auto chunks = stream(body, &done);
    EXPECT_TRUE(done);
    std::vector<std::string> text(whole["choices"].size());
    std::vector<std::string> finish(whole["choices"].size());
    for (const json& c : chunks) {
      EXPECT_EQ(c["object"], "text_completion");
      ASSERT_EQ(c["choices"].size(), 1u);
      const int i = c["choices"][0]["index"];
      text.at(i) += c["choices"][0]["text"].get<std::string>();
      if (!c["choices"][0]["finish_reason"].is_null()) finish.at(i) = c["choices"][0]["finish_reason"];
    }
    for (size_t i = 0; i < text.size(); ++i) {
      EXPECT_EQ(text[i], whole["choices"][i]["text"]) << extra.dump();
      EXPECT_EQ(finish[i], whole["choices"][i]["finish_reason"]) << extra.dump();
    }
  }
}

TEST_F(Serve, StreamUsageChunk) {
  json body{{"prompt", "Hello"}, {"max_tokens", 4}, {"temperature", 0}, {"stream_options", {{"include_usage", true}}}};
  bool done = false;
  const auto chunks = stream(body, &done);
  ASSERT_FALSE(chunks.empty());
  EXPECT_TRUE(chunks.back()["choices"].empty());
  EXPECT_EQ(chunks.back()["usage"], complete(body)["usage"]);
  body["stream_options"] = nullptr;
  for (const json& c : stream(body, &done)) EXPECT_FALSE(c.contains("usage"));
}

TEST_F(Serve, StreamedLogprobsEqualNonStreamed) {
  for (const json& extra : {json{{"echo", false}}, json{{"echo", true}, {"stop", "e"}}}) {
    json body{{"prompt", "Once upon a time"}, {"max_tokens", 10}, {"temperature", 0}, {"logprobs", 2}};
    body.update(extra);
    const json whole = complete(body)["choices"][0]["logprobs"];
    bool done = false;
    json tokens = json::array(), lps = json::array(), offsets = json::array(), tops = json::array();
    for (const json& c : stream(body, &done)) {
      const json& lp = c["choices"][0]["logprobs"];
      ASSERT_TRUE(lp.is_object()) << c.dump();
      for (size_t i = 0; i < lp["tokens"].size(); ++i) {
        tokens.push_back(lp["tokens"][i]);
        lps.push_back(lp["token_logprobs"][i]);
        offsets.push_back(lp["text_offset"][i]);
        tops.push_back(lp["top_logprobs"][i]);
      }
    }
    EXPECT_TRUE(done);
    EXPECT_EQ(tokens, whole["tokens"]) << extra.dump();
    EXPECT_EQ(offsets, whole["text_offset"]) << extra.dump();
    ASSERT_EQ(lps.size(), whole["token_logprobs"].size());
    for (size_t i = 0; i < lps.size(); ++i) {
      EXPECT_EQ(lps[i].is_null(), whole["token_logprobs"][i].is_null());
      // Bit for bit: under continuous batching a token's numbers do not depend on whether it was
      // decoded (streamed: the step's logits) or rescored in one pass over the text (non-streamed).
      if (!lps[i].is_null()) {
        EXPECT_EQ(lps[i].get<double>(), whole["token_logprobs"][i].get<double>());
      }
      EXPECT_EQ(tops[i], whole["top_logprobs"][i]);
    }
  }
}

TEST_F(Serve, EchoLogprobsMatchLmforgeScore) {
  const std::string prompt = "The quick brown fox jumps over the lazy dog";
  const json r = complete({{"prompt", prompt}, {"max_tokens", 0}, {"echo", true}, {"logprobs", 2}});
  const json& c = r["choices"][0];
  EXPECT_EQ(c["text"], prompt);
  const json& lp = c["logprobs"];
  const json ids = json::parse(post("/tokenize", json{{"prompt", prompt}}.dump())->body)["tokens"];
  ASSERT_EQ(lp["tokens"].size(), ids.size());
  ASSERT_EQ(lp["token_logprobs"].size(), ids.size());
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_TRUE(lp["top_logprobs"][0].is_null());
  EXPECT_EQ(lp["top_logprobs"][1].size(), 2u);
  EXPECT_EQ(lp["text_offset"][0], 0);
  EXPECT_EQ(r["usage"]["completion_tokens"], 0);

  // lmforge score: continuation = the prompt from token k on, context = the tokens before it.
  const std::filesystem::path file = std::filesystem::temp_directory_path() / ("serve-score-" + std::to_string(getpid()) + ".jsonl");
  {
    std::ofstream out(file);
    for (size_t k : {1, 3})
      out << json{{"context_ids", json(std::vector<int>(ids.begin(), ids.begin() + k))},
                  {"continuation_ids", json(std::vector<int>(ids.begin() + k, ids.end()))}}.dump() << "\n";
  }
  const auto s = test::run_cli("score --model " + kModel + " --requests " + file.string());
  std::filesystem::remove(file);
  ASSERT_EQ(s.exit_code, 0) << s.err;
  std::istringstream lines(s.out);
  std::string line;
  for (size_t k : {1, 3}) {
    ASSERT_TRUE(std::getline(lines, line));
    double sum = 0;
    for (size_t i = k; i < ids.size(); ++i) sum += lp["token_logprobs"][i].get<double>();
    EXPECT_NEAR(json::parse(line)["logprob"].get<double>(), sum, 1e-4) << "from token " << k;
  }
}

TEST_F(Serve, EosHasALogprobButNoText) {
  // lm-eval's OpenAI backend: echo + max_tokens 1 + logprobs, then token_logprobs[ctxlen:-1]; a
  // generated eos must still be the last entry. Forced here with logit_bias.
  const json ids = json::array({464, 2068, 7586});
  json body{{"prompt", ids}, {"max_tokens", 1}, {"echo", true}, {"logprobs", 1}, {"temperature", 0},
            {"logit_bias", {{"50256", 100}}}};
  const json r = complete(body);
  const json& c = r["choices"][0];
  EXPECT_EQ(c["finish_reason"], "stop");
  EXPECT_EQ(c["text"], json::parse(post("/detokenize", json{{"tokens", ids}}.dump())->body)["prompt"]);
  ASSERT_EQ(c["logprobs"]["tokens"].size(), 4u);
  EXPECT_EQ(c["logprobs"]["tokens"][3], "<|endoftext|>");
  EXPECT_EQ(c["logprobs"]["text_offset"][3], c["text"].get<std::string>().size());
  bool done = false;
  std::vector<std::string> streamed;
  for (const json& chunk : stream(body, &done))
    if (chunk["choices"][0]["logprobs"].is_object())
      for (const json& t : chunk["choices"][0]["logprobs"]["tokens"]) streamed.push_back(t);
  EXPECT_EQ(json(streamed), c["logprobs"]["tokens"]);
}

TEST_F(Serve, CompletionLogprobs) {
  const json r = complete({{"prompt", "Hello"}, {"max_tokens", 5}, {"temperature", 0}, {"logprobs", 3}});
  const json& lp = r["choices"][0]["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), 5u);
  std::string joined;
  for (size_t i = 0; i < 5; ++i) {
    joined += lp["tokens"][i].get<std::string>();
    ASSERT_EQ(lp["top_logprobs"][i].size(), 3u);
    // Greedy: the chosen token is the most likely one.
    double best = -1e9;
    for (const auto& [tok, v] : lp["top_logprobs"][i].items()) best = std::max(best, v.get<double>());
    EXPECT_NEAR(lp["token_logprobs"][i].get<double>(), best, 1e-6);
  }
  EXPECT_EQ(joined, r["choices"][0]["text"]);
  EXPECT_EQ(lp["text_offset"][0], 5);  // offsets count from the prompt's start, as OpenAI's do
}

TEST_F(Serve, NAndBestOfShapes) {
  const json a = complete({{"prompt", json::array({"Hello", "Good morning"})}, {"max_tokens", 3}, {"n", 2}, {"seed", 1}});
  ASSERT_EQ(a["choices"].size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(a["choices"][i]["index"], i);
  const json b = complete({{"prompt", "Hello"}, {"max_tokens", 3}, {"n", 2}, {"best_of", 4}, {"seed", 1}, {"logprobs", 0}});
  ASSERT_EQ(b["choices"].size(), 2u);
  // best_of returns the candidates with the highest mean token log-prob, best first.
  auto mean = [](const json& c) {
    double s = 0;
    for (const json& v : c["logprobs"]["token_logprobs"]) s += v.get<double>();
    return c["logprobs"]["token_logprobs"].empty() ? 0.0 : s / c["logprobs"]["token_logprobs"].size();
  };
  EXPECT_GE(mean(b["choices"][0]) + 1e-9, mean(b["choices"][1]));
  EXPECT_EQ(b["usage"]["completion_tokens"], 12);  // all 4 candidates count
  const json beams = complete({{"prompt", "Hello"}, {"max_tokens", 3}, {"n", 2}, {"use_beam_search", true}, {"temperature", 0}});
  EXPECT_EQ(beams["choices"].size(), 2u);
}

TEST_F(Serve, EmptyPromptStartsFromBos) {
  // As OpenAI's "" and HF generate() without input_ids: the first token is predicted from bos.
  const json r = complete({{"prompt", ""}, {"max_tokens", 3}, {"temperature", 0}});
  const json ids = complete({{"prompt", json::array({50256})}, {"max_tokens", 3}, {"temperature", 0}});
  EXPECT_EQ(r["choices"][0]["text"], ids["choices"][0]["text"]);
  EXPECT_EQ(r["usage"]["prompt_tokens"], 1);
}

TEST_F(Serve, SeedRepeatsSampling) {
  const json body{{"prompt", "Hello"}, {"max_tokens", 8}, {"temperature", 1.0}, {"seed", 42}};
  const json a = complete(body), b = complete(body);
  EXPECT_EQ(a["choices"][0]["text"], b["choices"][0]["text"]);
  json other = body;
  other["seed"] = 43;
  std::set<std::string> texts;
  for (int s = 43; s < 47; ++s) {
    other["seed"] = s;
    texts.insert(complete(other)["choices"][0]["text"].get<std::string>());
  }
  texts.insert(a["choices"][0]["text"].get<std::string>());
  EXPECT_GT(texts.size(), 1u);
}

TEST_F(Serve, StopEndsTheTextBeforeTheStopString) {
  const json base{{"prompt", "Hello world"}, {"max_tokens", 12}, {"temperature", 0}};
  const std::string full = complete(base)["choices"][0]["text"];
  ASSERT_GT(full.size(), 8u);
  const std::string stop = full.substr(full.size() / 2, 2);
  json body = base;
  body["stop"] = json::array({"\x01never", stop});
  const json r = complete(body);
  EXPECT_EQ(r["choices"][0]["text"], full.substr(0, full.find(stop)));
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
  bool done = false;
  std::string streamed;
  for (const json& c : stream(body, &done)) streamed += c["choices"][0]["text"].get<std::string>();
  EXPECT_EQ(streamed, r["choices"][0]["text"]);
}

TEST_F(Serve, PenaltiesAndBiasAreApplied) {
  // A huge bias on one token makes greedy pick it every time.
  const json r = complete({{"prompt", "Hello"}, {"max_tokens", 3}, {"temperature", 0}, {"logit_bias", {{"318", 100}}}});
  EXPECT_EQ(r["choices"][0]["text"], " is is is");
  const json p = complete({{"prompt", "Hello"}, {"max_tokens", 3}, {"temperature", 0}, {"logit_bias", {{"318", 100}}},
                           {"frequency_penalty", 2}, {"presence_penalty", 2}, {"top_k", 5}, {"repetition_penalty", 1.2},
                           {"min_tokens", 1}, {"no_repeat_ngram_size", 2}, {"user", "u"}});
  EXPECT_EQ(p["choices"].size(), 1u);
}

TEST_F(Serve, ErrorsHaveOpenAiShape) {
  expect_error(post("/v1/completions", "{not json"), 400);
  expect_error(post("/v1/completions", "[1]"), 400);
  expect_error(post("/v1/completions", json{{"prompt", "a"}, {"max_tokens", "x"}}.dump()), 400, "max_tokens");
  expect_error(post("/v1/completions", json{{"prompt", "a"}, {"max_tokens", -1}}.dump()), 400, "max_tokens");
  expect_error(post("/v1/completions", json{{"prompt", 5}}.dump()), 400, "prompt");
  expect_error(post("/v1/completions", json{{"max_tokens", 1}}.dump()), 400, "prompt");
  expect_error(post("/v1/completions", json{{"prompt", "a b c"}, {"max_tokens", 127}}.dump()), 400, "prompt");
  expect_error(post("/v1/completions", json{{"prompt", "a"}, {"n", 100}}.dump()), 400, "n");
  expect_error(post("/v1/completions", json{{"prompt", std::vector<std::string>(300, "a")}}.dump()), 400, "prompt");
  expect_error(post("/v1/completions", json{{"prompt", "a"}, {"best_of", 100}}.dump()), 400, "best_of");
  expect_error(post("/v1/completions", json{{"prompt", "a"}, {"n", 3}, {"best_of", 2}}.dump()), 400, "best_of");
  expect_error(post("/v1/completions", json{{"prompt", "a"}, {"temperature", "hot"}}.dump()), 400, "temperature");
  expect_error(post("/v1/completions", json{{"prompt", "a"}, {"logprobs", 9}}.dump()), 400, "logprobs");
  expect_error(post("/v1/completions", json{{"prompt", "a"}, {"stop", json::array({"a", "b", "c", "d", "e"})}}.dump()), 400, "stop");
  expect_error(post("/v1/completions", json{{"prompt", "a"}, {"suffix", "b"}}.dump()), 400, "suffix");
  expect_error(post("/v1/completions", json{{"prompt", json::array({1, 99999999})}}.dump()), 400, "prompt");
  expect_error(post("/v1/completions", json{{"prompt", "a"}, {"model", "nope"}}.dump()), 404, "model", "model_not_found");
  expect_error(post("/v1/completions", std::string(5000, ' ')), 413);
  expect_error(post("/v1/nothing", "{}"), 404);
  // Unknown fields are ignored, as OpenAI's API does.
  complete({{"prompt", "a"}, {"max_tokens", 1}, {"no_such_field", 1}, {"model", "gpt2-tiny"}});
}

TEST_F(Serve, ApiKeyIsRequired) {
  expect_error(post("/v1/completions", json{{"prompt", "a"}}.dump(), ""), 401, "", "invalid_api_key");
  expect_error(post("/v1/completions", json{{"prompt", "a"}}.dump(), "wrong"), 401, "", "invalid_api_key");
  auto m = server_->client()->Get("/v1/models");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 401);
  auto ok = server_->client(kKey)->Get("/v1/models");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST_F(Serve, TokenizeDetokenizeMetrics) {
  auto t = post("/tokenize", json{{"prompt", "Hello world"}}.dump());
  ASSERT_EQ(t->status, 200);
  const json tok = json::parse(t->body);
  EXPECT_EQ(tok["tokens"], json::array({15496, 995}));
  EXPECT_EQ(tok["count"], 2);
  auto d = post("/detokenize", json{{"tokens", tok["tokens"]}}.dump());
  ASSERT_EQ(d->status, 200);
  EXPECT_EQ(json::parse(d->body)["prompt"], "Hello world");
  expect_error(post("/detokenize", json{{"tokens", "x"}}.dump()), 400, "tokens");

  complete({{"prompt", "Hello"}, {"max_tokens", 2}, {"temperature", 0}});
  auto m = server_->client(kKey)->Get("/metrics");
  ASSERT_EQ(m->status, 200);
  for (const char* s : {"lmforge_requests_total{route=\"/v1/completions\",status=\"200\"}", "lmforge_prompt_tokens_total ",
                        "lmforge_completion_tokens_total ", "lmforge_queue_length 0",
                        "lmforge_time_to_first_token_seconds_bucket", "lmforge_time_per_output_token_seconds_count"})
    EXPECT_NE(m->body.find(s), std::string::npos) << s << "\n" << m->body;
}

// lmforge_cancelled_requests_total from /metrics.
long cancelled_count(const ServeProcess& s, const std::string& key) {
  const std::string body = s.client(key)->Get("/metrics")->body;
  const std::string name = "\nlmforge_cancelled_requests_total ";
  const size_t at = body.find(name);
  return at == std::string::npos ? -1 : std::stol(body.substr(at + name.size()));
}

TEST_F(Serve, ClientLeavingMidStreamDoesNotHurtTheNext) {
  const long before = cancelled_count(*server_, kKey);
  ASSERT_GE(before, 0);
  // The server notices at its next write; 100 tokens take long enough for that (a few tries in case
  // a loaded machine lets one run to its end first).
  for (int i = 0; i < 5 && cancelled_count(*server_, kKey) == before; ++i) {
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.set_header("Authorization", "Bearer " + kKey);
    req.set_header("Content-Type", "application/json");
    req.body = json{{"prompt", "Hello"}, {"max_tokens", 100}, {"temperature", 0.7}, {"stream", true}}.dump();
    int chunks = 0;
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 2; };  // hang up
    auto client = server_->client();
    auto res = client->send(req);
    EXPECT_GE(chunks, 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the worker ends the job
  }
  EXPECT_GT(cancelled_count(*server_, kKey), before) << "generation went on after the client left";
  const json r = complete({{"prompt", "Hello"}, {"max_tokens", 2}, {"temperature", 0}});
  EXPECT_EQ(r["choices"].size(), 1u);
}

TEST_F(Serve, ConcurrentClientsAllGetAnswers) {
  // Tokenizer calls on the HTTP threads while the worker generates; bad requests mixed in.
  std::atomic<int> ok{0}, refused{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 6; ++t)
    clients.emplace_back([&, t] {
      for (int i = 0; i < 4; ++i) {
        auto tok = post("/tokenize", json{{"prompt", "client " + std::to_string(t)}}.dump());
        if (tok && tok->status == 200) ++ok;
        json body{{"prompt", "client " + std::to_string(t)}, {"max_tokens", 6}, {"logprobs", 1}, {"seed", t}};
        if (i % 2) body["stream"] = true;
        auto r = post("/v1/completions", body.dump());
        if (r && r->status == 200) ++ok;
        auto bad = post("/v1/completions", json{{"prompt", "x"}, {"n", "many"}}.dump());
        if (bad && bad->status == 400) ++refused;
      }
    });
  for (auto& c : clients) c.join();
  EXPECT_EQ(ok.load(), 6 * 4 * 2);
  EXPECT_EQ(refused.load(), 6 * 4);
}

TEST(ServeQueue, FullQueueAnswers429) {
  ServeProcess s({"--model", kModel, "--max_queue", "1", "--max_batch", "1"});
  std::atomic<int> ok{0}, full{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 6; ++i)
    clients.emplace_back([&] {
      auto r = s.client()->Post("/v1/completions", json{{"prompt", "Hello"}, {"max_tokens", 110}, {"temperature", 0}}.dump(),
                                "application/json");
      if (r && r->status == 200) ++ok;
      if (r && r->status == 429) {
        ++full;
        EXPECT_EQ(json::parse(r->body)["error"]["code"], "queue_full");
      }
    });
  for (auto& t : clients) t.join();
  EXPECT_GE(ok.load(), 1);
  EXPECT_GE(full.load(), 1);
  EXPECT_EQ(ok + full, 6);
}

TEST(ServeModels, SeveralModelsKeyFileAndSigterm) {
  const std::string key_file = std::filesystem::temp_directory_path() / ("serve-key-" + std::to_string(getpid()));
  std::ofstream(key_file) << "file-key\n";
  ServeProcess s({"--model", "a=" + kModel, "--model", kModel, "--api_key_file", key_file});
  std::filesystem::remove(key_file);
  EXPECT_EQ(s.client()->Get("/v1/models")->status, 401);
  auto names = json::parse(s.client("file-key")->Get("/v1/models")->body)["data"];
  ASSERT_EQ(names.size(), 2u);
  EXPECT_EQ(names[0]["id"], "a");
  EXPECT_EQ(names[1]["id"], "gpt2-tiny");
  auto none = s.client("file-key")->Post("/v1/completions", json{{"prompt", "Hi"}}.dump(), "application/json");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 404);
  EXPECT_EQ(json::parse(none->body)["error"]["code"], "model_not_found");
  auto named = s.client("file-key")->Post("/v1/completions", json{{"prompt", "Hi"}, {"model", "a"}, {"max_tokens", 2}}.dump(),
                                "application/json");
  ASSERT_TRUE(named);
  EXPECT_EQ(named->status, 200);
  // SIGTERM while a request runs: it still gets its answer, and the server exits 0.
  int status = 0;
  std::thread in_flight([&] {
    auto r = s.client("file-key")->Post("/v1/completions", json{{"prompt", "Hi"}, {"model", "a"}, {"max_tokens", 100}}.dump(),
                              "application/json");
    status = r ? r->status : -1;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(s.terminate(), 0);
  in_flight.join();
  EXPECT_TRUE(status == 200 || status == -1) << status;
}

}  // namespace
}  // namespace lmforge
