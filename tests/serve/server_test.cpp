// The Server class in-process: /health says 503 until ready(), API routes refuse with 503 meanwhile,
// and shutdown() returns promptly; answer_raw() takes a request's bytes through the same parser and
// routes without a socket (what fuzz/fuzz_http.cpp drives).
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "lmforge/generate/generation_config.h"
#include "lmforge/model/model.h"
#include "lmforge/serve/server.h"
#include "lmforge/tokenizer/tokenizer.h"

namespace lmforge::serve {
namespace {

TEST(Server, HealthIs503UntilReady) {
  ServerOptions o;
  o.port = 0;
  Server server(o);
  const int port = server.start();
  httplib::Client client("127.0.0.1", port);
  auto loading = client.Get("/health");
  ASSERT_TRUE(loading);
  EXPECT_EQ(loading->status, 503);
  EXPECT_EQ(nlohmann::json::parse(loading->body)["status"], "loading");
  auto models = client.Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(models->status, 503);
  EXPECT_EQ(nlohmann::json::parse(models->body)["error"]["type"], "server_error");
  server.ready();
  auto ok = client.Get("/health");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  server.shutdown();
  EXPECT_FALSE(client.Get("/health"));  // no longer listening
}

// The status line and the body of a raw HTTP/1.1 response.
std::pair<std::string, std::string> status_and_body(const std::string& response) {
  const size_t line_end = response.find("\r\n"), head_end = response.find("\r\n\r\n");
  if (line_end == std::string::npos || head_end == std::string::npos) return {response, ""};
  return {response.substr(0, line_end), response.substr(head_end + 4)};
}

std::string post(const std::string& path, const std::string& key, const std::string& body) {
  return "POST " + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

TEST(Server, AnswerRawGoesThroughTheRoutesWithoutASocket) {
  const std::string dir = std::string(LMFORGE_TEST_DATA) + "/models/gpt2-tiny";
  ServerOptions o;
  o.api_key = "sk-test";
  Server server(o);
  auto model = Model::load(dir);
  const ModelConfig& c = model->config();
  GenerationConfig defaults = generation_defaults(c.eos_token_id, c.bos_token_id, c.pad_token_id, dir);
  server.add_model({"tiny", std::move(model), Tokenizer::from_dir(dir), std::move(defaults), 0});
  server.ready();

  // A greedy completion runs on the engine and comes back as OpenAI's object.
  auto [status, body] = status_and_body(
      server.answer_raw(post("/v1/completions", "sk-test", R"({"prompt": "Hello", "max_tokens": 3, "temperature": 0})")));
  EXPECT_EQ(status, "HTTP/1.1 200 OK");
  const auto j = nlohmann::json::parse(body);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["usage"]["completion_tokens"], 3);
  // Auth, bad JSON and a request line httplib refuses, each in its shape.
  std::tie(status, body) = status_and_body(server.answer_raw(post("/v1/completions", "wrong", "{}")));
  EXPECT_EQ(status, "HTTP/1.1 401 Unauthorized");
  EXPECT_EQ(nlohmann::json::parse(body)["error"]["code"], "invalid_api_key");
  std::tie(status, body) = status_and_body(server.answer_raw(post("/tokenize", "sk-test", "{\"prompt\": ")));
  EXPECT_EQ(status, "HTTP/1.1 400 Bad Request");
  EXPECT_NE(nlohmann::json::parse(body)["error"]["message"].get<std::string>().find("not valid JSON"), std::string::npos);
  std::tie(status, body) = status_and_body(server.answer_raw("BREW /pot HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(status.rfind("HTTP/1.1 4", 0), 0u) << status;
}

}  // namespace
}  // namespace lmforge::serve
