#include "cli/distributed.h"

#include <unistd.h>

#include <iostream>

#include "lmforge/dist/same_model.h"
#include "lmforge/model/model.h"

namespace lmforge::cli {

namespace {

void put_result(dist::ByteWriter& out, const eval::PerplexityResult& r) {
  out.put(r.perplexity);
  out.put(r.nll_sum);
  out.put(r.tokens);
  out.put(r.window_mean_perplexity);
  out.put<uint64_t>(r.windows.size());
  for (const eval::PerplexityWindow& w : r.windows) {
    out.put(w.begin);
    out.put(w.end);
    out.put(w.trg_len);
    out.put(w.scored);
    out.put(w.loss);
  }
}

eval::PerplexityResult get_result(dist::ByteReader& in) {
  eval::PerplexityResult r;
  r.perplexity = in.get<double>();
  r.nll_sum = in.get<double>();
  r.tokens = in.get<int64_t>();
  r.window_mean_perplexity = in.get<double>();
  r.windows.resize(in.get<uint64_t>());
  for (eval::PerplexityWindow& w : r.windows) {
    w.begin = in.get<int64_t>();
    w.end = in.get<int64_t>();
    w.trg_len = in.get<int64_t>();
    w.scored = in.get<int64_t>();
    w.loss = in.get<double>();
  }
  return r;
}

}  // namespace

std::optional<eval::CorpusPerplexity> sharded_corpus(const dist::World& w, const Model& model, const Tokenizer& tok,
                                                     const std::vector<std::string>& texts,
                                                     const eval::PerplexityOptions& opt, const eval::TextFormat& format,
                                                     const std::string& announce_as) {
  const eval::PerplexityOptions checked = eval::checked_options(model, opt);
  const dist::Range mine = dist::shard_range(texts.size(), w);
  if (!announce_as.empty()) announce_shard(w, announce_as, "rows", mine, texts.size());
  std::vector<eval::PerplexityResult> rows;
  for (size_t i = mine.begin; i < mine.end; ++i) rows.push_back(eval::row_perplexity(model, tok, texts[i], checked, format));
  if (w.distributed()) rows = dist::gather_items(w, rows, "perplexity rows", put_result, get_result);
  if (!w.is_root()) return std::nullopt;
  return eval::corpus_from_rows(std::move(rows));
}

const dist::World& sharded_world(const std::string& model, const std::string& adapter) {
  const dist::World& w = dist::world();
  if (!model.empty()) dist::check_same_model(w, "--model", model);
  if (!adapter.empty()) dist::check_same_model(w, "--adapter", adapter);
  return w;
}

void announce_shard(const dist::World& w, const std::string& command, const std::string& units, dist::Range r,
                    size_t total) {
  if (!w.distributed()) return;
  const std::string line = "lmforge " + command + ": rank " + std::to_string(w.rank()) + " of " +
                           std::to_string(w.size()) + " runs " + units + " [" + std::to_string(r.begin) + ", " +
                           std::to_string(r.end) + ") of " + std::to_string(total) +
                           (r.empty() ? " (idle: more ranks than " + units + ")" : "") + "\n";
  // One write: mpirun forwards a rank's stderr in the chunks it was written in, and std::cerr writes
  // each << on its own, so the ranks' lines interleaved mid-line (seen in the quantize test).
  std::cerr.flush();
  if (::write(STDERR_FILENO, line.data(), line.size()) < 0) {
    // nothing to do: the line is informational
  }
}

double share_root_value(const dist::World& w, double value, const std::string& what) {
  if (!w.distributed()) return value;
  double v = w.is_root() ? value : 0.0;  // x + 0 is x, bit for bit (NaN stays NaN)
  w.allreduce_sum(&v, 1, what);
  return v;
}

}  // namespace lmforge::cli
