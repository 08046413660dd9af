// Few-shot selection and prompt assembly (rules in include/lmforge/tasks/fewshot.h).
#include "lmforge/tasks/fewshot.h"

#include <filesystem>
#include <random>
#include <unordered_map>

#include "lmforge/error.h"

namespace lmforge::tasks {

namespace {

// SplitMix64's finaliser: spreads (seed, row id) over the whole state so that neighbouring ids
// give unrelated draws.
uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Uniform in [0, n) by rejection: std::uniform_int_distribution differs between standard
// libraries, and the selection must be the same on every build. mt19937_64's output is fixed by
// the standard.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x = 0;
  do x = rng();
  while (x >= limit);
  return x % n;
}

// `count` distinct positions of [0, n), in draw order (a partial Fisher-Yates shuffle with the
// swaps kept in a map, so a draw costs O(count), not O(n)).
std::vector<size_t> sample_positions(size_t n, size_t count, std::mt19937_64& rng) {
  std::unordered_map<size_t, size_t> swapped;
  auto at = [&](size_t i) {
    const auto it = swapped.find(i);
    return it == swapped.end() ? i : it->second;
  };
  std::vector<size_t> out;
  for (size_t i = 0; i < count; ++i) {
    const size_t j = i + uniform_below(rng, n - i);
    const size_t vi = at(i), vj = at(j);
    swapped[j] = vi;
    swapped[i] = vj;
    out.push_back(vj);
  }
  return out;
}

}  // namespace

FewshotSampler::FewshotSampler(const Template& t, const Dataset& eval, const Dataset* fewshot_file,
                               const FewshotOptions& o)
    : seed_(o.seed) {
  // The pool, first found: the few-shot file, the template's examples, the evaluated dataset.
  bool inline_pool = false;
  if (fewshot_file != nullptr) {
    external_ = &fewshot_file->rows;
    label_names_ = fewshot_file->label_names;
    source_ = fewshot_file->source;
    // A few-shot file that is the evaluated file is lm-eval's "fewshot split == test split" case.
    std::error_code ec;
    pool_is_eval_ = fewshot_file == &eval || fewshot_file->source == eval.source ||
                    std::filesystem::equivalent(fewshot_file->source, eval.source, ec);
  } else if (!t.examples.empty()) {
    owned_ = t.examples;
    label_names_ = t.label_names;
    source_ = t.source + " (examples)";
    inline_pool = true;
  } else {
    external_ = &eval.rows;
    label_names_ = eval.label_names;
    source_ = eval.source;
    pool_is_eval_ = true;
  }
  for (size_t i = 0; i < pool().size(); ++i)
    if (pool()[i].label != kNoLabel || (inline_pool && pool()[i].get("label") != nullptr)) labeled_.push_back(i);

  const std::vector<int64_t>& ids = o.ids.empty() ? t.fewshot_ids : o.ids;
  if (!ids.empty()) {
    if (o.num_fewshot && *o.num_fewshot != static_cast<int>(ids.size()))
      throw Error("num_fewshot " + std::to_string(*o.num_fewshot) + " differs from the " +
                  std::to_string(ids.size()) + " fixed few-shot example ids");
    for (int64_t id : ids) {
      // Ids are Row::id (file positions), which dropped unlabeled rows may have made sparse.
      size_t found = pool().size();
      for (size_t i = 0; i < pool().size(); ++i)
        if (pool()[i].id == id) found = i;
      if (found == pool().size())
        throw Error("few-shot example id " + std::to_string(id) + " is not a row of " + source_ + " (" +
                    std::to_string(pool().size()) + " rows, ids from 0)");
      fixed_.push_back(found);
    }
    k_ = static_cast<int>(ids.size());
    return;
  }
  if (!o.num_fewshot) {
    // Every inline example, in file order (one without a label fails when rendered).
    if (inline_pool)
      for (size_t i = 0; i < pool().size(); ++i) fixed_.push_back(i);
    k_ = static_cast<int>(fixed_.size());
    return;
  }
  k_ = *o.num_fewshot;
  if (k_ < 0) throw Error("num_fewshot must be 0 or more, got " + std::to_string(k_));
  // lm-eval draws K + 1 when the pool is the evaluated split, so it needs that many documents.
  const size_t needed = static_cast<size_t>(k_) + (pool_is_eval_ ? 1 : 0);
  if (k_ > 0 && needed > labeled_.size())
    throw Error("num_fewshot " + std::to_string(k_) + " is larger than the few-shot pool: " + source_ + " has " +
                std::to_string(labeled_.size()) + " rows with a gold label" +
                (pool_is_eval_ ? " and the evaluated row is never its own example" : ""));
  random_ = k_ > 0;
}

std::vector<const Row*> FewshotSampler::select(const Row& query) const {
  std::vector<const Row*> out;
  if (!random_) {
    for (size_t i : fixed_) out.push_back(&pool()[i]);
    return out;
  }
  std::mt19937_64 rng(mix(seed_ ^ mix(static_cast<uint64_t>(query.id))));
  const size_t draw = static_cast<size_t>(k_) + (pool_is_eval_ ? 1 : 0);
  for (size_t pos : sample_positions(labeled_.size(), draw, rng)) {
    const Row& row = pool()[labeled_[pos]];
    if (pool_is_eval_ && row.id == query.id) continue;
    if (out.size() < static_cast<size_t>(k_)) out.push_back(&row);
  }
  return out;
}

std::string build_prompt(const Template& t, const std::vector<const Row*>& examples, const Row& query,
                         const std::vector<std::string>& label_names) {
  std::string out = t.instruction;
  for (const Row* ex : examples)
    out += t.example_prefix + render_text(t, *ex) + t.target_delimiter + render_target(t, *ex, label_names) +
           t.fewshot_delimiter;
  out += t.query_prefix + render_text(t, query);
  return out;
}

std::string build_prompt(const Template& t, const FewshotSampler& sampler, const Row& query) {
  return build_prompt(t, sampler.select(query), query, sampler.label_names());
}

}  // namespace lmforge::tasks
