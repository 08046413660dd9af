// The Server class in-process: /health says 503 until ready(), API routes refuse with 503 meanwhile,
// and shutdown() returns promptly.
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "lmforge/serve/server.h"

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

}  // namespace
}  // namespace lmforge::serve
