// lmforge score: lm-evaluation-harness's raw `loglikelihood` / `loglikelihood_rolling` requests
// from a JSONL file, scored as its HF backend scores them (src/tasks/loglikelihood.cpp), so other
// tools can use lmforge as a backend. See docs/TASKS.md.
#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/common.h"
#include "lmforge/error.h"
#include "lmforge/model/model.h"
#include "lmforge/tasks/loglikelihood.h"

namespace lmforge::cli {
namespace {

using nlohmann::json;
using tasks::LLRequest;
using tasks::TokenIds;

struct Args {
  std::string model, requests, output, dtype = "auto";
  std::string adapter;  // --adapter: PEFT LoRA folder applied unmerged
  bool json = false;
  std::optional<bool> share_prefix;
  int batch_size = 8, threads = 0;
} args;

void setup(CLI::App& app) {
  app.add_option("--model,-m", args.model, "HF checkpoint folder (or a model name in the local HF cache)")->required();
  app.add_option("--requests", args.requests,
                 "JSONL requests: {\"context\",\"continuation\"} (text), {\"context_ids\",\"continuation_ids\"} or {\"text\"} (rolling)")
      ->required();
  app.add_option("--output,-o", args.output, "Write the JSONL results here (default: standard output)");
  app.add_flag("--json", args.json, "Print one JSON object (results, counts, timing) instead of JSONL lines");
  app.add_option("--batch_size", args.batch_size, "Continuation rows per forward pass (default 8)");
  add_bool_option(app, "--share_prefix", args.share_prefix,
                  "Run a context shared by several requests once and fork its KV cache (default true)");
  app.add_option("--threads", args.threads, "Threads (default: all cores)");
  add_dtype_option(app, args.dtype);
  add_adapter_option(app, args.adapter);
}

// One line of the requests file, resolved to the requests it scores.
struct Line {
  int number = 0;
  bool rolling = false;
  size_t first = 0, count = 0;  // its requests in the flat list (rolling: its windows)
};

[[noreturn]] void fail(int line, const std::string& what) {
  throw Error(args.requests + ":" + std::to_string(line) + ": " + what);
}

TokenIds ids_field(const json& j, const char* key, int line) {
  const json& v = j.at(key);
  if (!v.is_array()) fail(line, std::string("\"") + key + "\" must be an array of token ids");
  TokenIds out;
  for (const json& x : v) {
    if (!x.is_number_integer()) fail(line, std::string("\"") + key + "\" must be an array of token ids, found " + x.dump());
    out.push_back(x.get<int32_t>());
  }
  return out;
}

std::string text_field(const json& j, const char* key, int line) {
  if (!j.at(key).is_string()) fail(line, std::string("\"") + key + "\" must be a string");
  return j.at(key).get<std::string>();
}

// Everything a request builder needs to know about the model.
struct Context {
  const Tokenizer* tokenizer;
  int32_t prefix;
  int max_length, vocab;
};

const Tokenizer& need_tokenizer(const Context& c, const char* key, int line) {
  if (!c.tokenizer) fail(line, std::string("\"") + key + "\": the model folder has no tokenizer; use context_ids/continuation_ids");
  return *c.tokenizer;
}

void check_ids(const Context& c, const TokenIds& ids, const char* key, int line) {
  for (int32_t id : ids)
    if (id < 0 || id >= c.vocab)
      fail(line, std::string("\"") + key + "\": token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                     std::to_string(c.vocab) + ")");
}

void check_continuation(const Context& c, const TokenIds& cont, const char* key, int line) {
  if (cont.empty()) fail(line, std::string("\"") + key + "\": the continuation is empty (it tokenizes to nothing)");
  if (static_cast<int>(cont.size()) > c.max_length)
    fail(line, std::string("\"") + key + "\": the continuation has " + std::to_string(cont.size()) +
                   " tokens, more than the model's max_length " + std::to_string(c.max_length));
}

// Appends the requests of one parsed line to `out`.
Line parse_line(const Context& c, const json& j, int line, std::vector<LLRequest>& out) {
  if (!j.is_object()) fail(line, "expected a JSON object");
  for (const auto& [key, value] : j.items())
    if (key != "context" && key != "continuation" && key != "context_ids" && key != "continuation_ids" && key != "text")
      fail(line, "unknown key \"" + key + "\" (expected context/continuation, context_ids/continuation_ids or text)");
  const bool text = j.contains("context") || j.contains("continuation");
  const bool ids = j.contains("context_ids") || j.contains("continuation_ids");
  const bool rolling = j.contains("text");
  if (text + ids + rolling != 1)
    fail(line, "give exactly one of \"context\"+\"continuation\", \"context_ids\"+\"continuation_ids\" or \"text\"");
  Line l{line, rolling, out.size(), 0};
  if (rolling) {
    const TokenIds tokens = need_tokenizer(c, "text", line).encode(text_field(j, "text", line));
    for (LLRequest& r : tasks::rolling_windows(tokens, c.prefix, c.max_length)) out.push_back(std::move(r));
  } else if (text) {
    for (const char* key : {"context", "continuation"})
      if (!j.contains(key)) fail(line, std::string("missing \"") + key + "\"");
    const auto e = tasks::encode_pair(need_tokenizer(c, "context", line), text_field(j, "context", line),
                                      text_field(j, "continuation", line), c.prefix);
    if (e.context_enc.empty()) fail(line, "\"context\": it tokenizes to nothing (only whitespace)");
    check_continuation(c, e.continuation_enc, "continuation", line);
    out.push_back({e.context_enc, e.continuation_enc});
  } else {
    for (const char* key : {"context_ids", "continuation_ids"})
      if (!j.contains(key)) fail(line, std::string("missing \"") + key + "\"");
    LLRequest r{ids_field(j, "context_ids", line), ids_field(j, "continuation_ids", line)};
    if (r.context.empty()) r.context = {c.prefix};  // lm-eval's empty context
    check_ids(c, r.context, "context_ids", line);
    check_ids(c, r.continuation, "continuation_ids", line);
    check_continuation(c, r.continuation, "continuation_ids", line);
    out.push_back(std::move(r));
  }
  l.count = out.size() - l.first;
  return l;
}

std::vector<Line> read_requests(const Context& c, std::vector<LLRequest>& out) {
  std::ifstream in(args.requests, std::ios::binary);
  if (!in) throw Error("cannot read --requests file '" + args.requests + "'");
  std::vector<Line> lines;
  std::string text;
  for (int number = 1; std::getline(in, text); ++number) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank lines are not requests
    json j;
    try {
      j = json::parse(text);
    } catch (const json::exception& e) {
      fail(number, std::string("malformed JSON: ") + e.what());
    }
    lines.push_back(parse_line(c, j, number, out));
  }
  if (lines.empty()) throw Error("--requests file '" + args.requests + "' has no requests");
  return lines;
}

int run() {
  apply_threads(args.threads);
  if (args.batch_size < 1) throw Error("--batch_size must be at least 1, got " + std::to_string(args.batch_size));
  auto model = load_model(args.model, args.dtype, args.adapter);
  const auto tokenizer = load_tokenizer_for_model(args.model, model->vocab_size());
  const Context c{tokenizer ? &*tokenizer : nullptr, tasks::prefix_token_id(tokenizer ? &*tokenizer : nullptr, model->config()),
                  model->max_positions(), model->vocab_size()};
  std::vector<LLRequest> requests;
  const std::vector<Line> lines = read_requests(c, requests);

  const auto t0 = std::chrono::steady_clock::now();
  tasks::ScoreOptions o;
  o.batch_size = args.batch_size;
  o.share_prefix = args.share_prefix.value_or(true);
  tasks::ScoreStats stats;
  const auto scores = tasks::score_requests(*model, requests, o, &stats);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  json results = json::array();
  std::ostringstream jsonl;
  for (const Line& l : lines) {
    nlohmann::ordered_json row;  // "logprob" first, as documented
    if (l.rolling) {
      double sum = 0;  // lm-eval: Python sum of the windows' logprobs
      for (size_t i = l.first; i < l.first + l.count; ++i) sum += scores[i].logprob;
      row = {{"logprob", sum}};
    } else {
      row = {{"logprob", scores[l.first].logprob}, {"is_greedy", scores[l.first].is_greedy}};
    }
    jsonl << row.dump() << "\n";
    results.push_back(json::parse(row.dump()));
  }
  if (!args.output.empty()) write_file_atomic(args.output, jsonl.str());
  if (args.json) {
    json summary{{"requests", lines.size()}, {"scored_sequences", requests.size()}, {"forward_calls", stats.forward_calls},
                 {"fed_tokens", stats.fed_tokens}, {"seconds", seconds}};
    if (args.output.empty()) summary["results"] = std::move(results);
    std::cout << summary.dump(2) << "\n";
  } else if (args.output.empty()) {
    std::cout << jsonl.str();
  } else {
    std::cerr << "lmforge: scored " << lines.size() << " requests in " << seconds << " s, wrote " << args.output << "\n";
  }
  return 0;
}

Command command{"score", "lm-eval log-likelihoods (loglikelihood / loglikelihood_rolling requests) from JSONL", setup, run};

}  // namespace
}  // namespace lmforge::cli
