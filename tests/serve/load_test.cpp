// The load test, short enough for CI (bench/bench_serve.cpp runs it for a minute on a 124M shape):
// 64 streaming clients against lmforge serve on the tiny GPT-2 for a few seconds. No request may
// fail, and the server's resident memory must stay flat once warmed up.
#include <gtest/gtest.h>

#include <cstdio>

#include "../../bench/serve_load.h"
#include "serve/serve_process.h"

// The server binary is built with the same flags as this test: GCC says AddressSanitizer with
// __SANITIZE_ADDRESS__, clang with __has_feature(address_sanitizer).
#if defined(__SANITIZE_ADDRESS__)
#define LMFORGE_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LMFORGE_UNDER_ASAN 1
#endif
#endif

namespace lmforge {
namespace {

const std::string kModel = std::string(LMFORGE_TEST_DATA) + "/models/gpt2-tiny";

TEST(ServeLoad, SixtyFourStreamingClientsNoFailureFlatMemory) {
  test::ServeProcess server({"--model", kModel, "--max_batch", "64", "--threads", "2"});
  bench::LoadOptions o;
  o.port = server.port();
  o.server_pid = server.pid();
  o.clients = 64;
  o.seconds = 8;
  o.warmup = 3;
  o.max_tokens = 24;
  o.prompts = {"Hello", "Once upon a time there was", "The market rose after a long week of talks in Paris and"};
  const bench::LoadReport r = bench::run_load(o);
  const long warm = r.rss_after_warmup_kb(o.warmup), peak = r.rss_max_after_kb(o.warmup);
  std::printf("load: %d completed, %d failed, %d cut off at the end; %.0f tokens/s; TTFT p50 %.3f s, p99 %.3f s; "
              "VmRSS %.1f MB after warm-up, %.1f MB largest after\n",
              r.ok, r.failed, r.abandoned, r.tokens_per_second(), r.ttft_quantile(0.5), r.ttft_quantile(0.99),
              warm / 1024.0, peak / 1024.0);
  EXPECT_EQ(r.failed, 0) << r.first_failure;
  EXPECT_GE(r.ok, 64) << "every client should have finished at least one request";
  ASSERT_GT(warm, 0);
#ifndef LMFORGE_UNDER_ASAN
  // Flat: no more than 10 % + 16 MB above the warmed-up size (allocator noise), where a leak of a
  // request's buffers or a thread per request would keep climbing. (Under AddressSanitizer freed
  // memory sits in its quarantine, up to 256 MB, so resident memory climbs by design there.)
  EXPECT_LE(peak, warm + warm / 10 + 16 * 1024) << "resident memory grew under steady load";
#endif
  EXPECT_EQ(server.terminate(), 0);
}

}  // namespace
}  // namespace lmforge
