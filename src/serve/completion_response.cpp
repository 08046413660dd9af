#include "serve/completion_response.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>

namespace lmforge::serve {

using nlohmann::json;

ResponseHeader new_response_header(const std::string& model) {
  // Random hex, unique enough for logs; a counter keeps two ids in the same process distinct.
  static std::atomic<uint64_t> counter{0};
  static const uint64_t salt = std::random_device{}() * 0x100000001ull + std::random_device{}();
  char id[64];
  std::snprintf(id, sizeof id, "cmpl-%016llx%08llx", static_cast<unsigned long long>(salt),
                static_cast<unsigned long long>(++counter));
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  return {id, now, model};
}

json logprobs_json(const Logprobs& lp) {
  json tokens = lp.tokens, offsets = lp.text_offset;
  json token_logprobs = json::array(), top = json::array();
  for (const auto& v : lp.token_logprobs) token_logprobs.push_back(v ? json(*v) : json(nullptr));
  for (const auto& alts : lp.top_logprobs) {
    if (!alts) {
      top.push_back(nullptr);
      continue;
    }
    json m = json::object();
    for (const auto& [text, value] : *alts)
      if (!m.contains(text)) m[text] = value;  // two ids can decode to the same text; keep the likelier
    top.push_back(std::move(m));
  }
  return {{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top}, {"text_offset", offsets}};
}

namespace {
json usage_json(const CompletionResult& r) {
  return {{"prompt_tokens", r.prompt_tokens},
          {"completion_tokens", r.completion_tokens},
          {"total_tokens", r.prompt_tokens + r.completion_tokens}};
}
}  // namespace

json completion_json(const ResponseHeader& h, const CompletionResult& r) {
  json choices = json::array();
  for (const Choice& c : r.choices)
    choices.push_back({{"text", c.text},
                       {"index", c.index},
                       {"logprobs", c.logprobs ? logprobs_json(*c.logprobs) : json(nullptr)},
                       {"finish_reason", c.finish_reason}});
  return {{"id", h.id},
          {"object", "text_completion"},
          {"created", h.created},
          {"model", h.model},
          {"choices", choices},
          {"usage", usage_json(r)}};
}

std::string sse_usage_chunk(const ResponseHeader& h, const CompletionResult& r) {
  const json chunk{{"id", h.id},           {"object", "text_completion"}, {"created", h.created},
                   {"model", h.model},     {"choices", json::array()},    {"usage", usage_json(r)}};
  return "data: " + chunk.dump() + "\n\n";
}

std::string sse_chunk(const ResponseHeader& h, const ChoiceDelta& d) {
  const json chunk{{"id", h.id},
                   {"object", "text_completion"},
                   {"created", h.created},
                   {"model", h.model},
                   {"choices",
                    {{{"text", d.text},
                      {"index", d.index},
                      {"logprobs", d.logprobs ? logprobs_json(*d.logprobs) : json(nullptr)},
                      {"finish_reason", d.finish_reason ? json(*d.finish_reason) : json(nullptr)}}}}};
  return "data: " + chunk.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

std::string sse_error(const json& error_body) {
  return "data: " + error_body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

}  // namespace lmforge::serve
