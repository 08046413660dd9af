#pragma once
// Few-shot examples and whole prompts (rules in docs/TASKS.md, "Datasets, templates and few-shot").
//
// The pool, first found: a few-shot file; the template's inline `examples`; the evaluated dataset.
// A few-shot file that is the evaluated file (same path) counts as the evaluated dataset.
// The examples for one query row:
//   - fixed ids (FewshotOptions::ids, else the template's fewshot_ids): those pool rows, in that
//     order, for every query (as the reference GPT-J notebook's v4 prompt does; a fixed id may be the query
//     row itself);
//   - else num_fewshot K > 0: lm-eval 0.4's ContextSampler: draw K (K + 1 when the pool is the
//     evaluated dataset) distinct rows without replacement, drop the query row, keep the first K.
//     Only rows with a gold label are drawn. The draw is seeded by (seed, query row id), so a row
//     gets the same examples whatever order or subset the rows are evaluated in; lm-eval instead
//     advances one random.Random(seed) over the documents, so the same seed does not give the
//     same examples as Python (the selection rule is the same, the random numbers are not);
//   - else, with num_fewshot unset, every inline example of the template in order; else none.
// K larger than the pool (minus the query row when the pool is the dataset), an id outside the
// pool, an example without a gold label, and K different from the number of fixed ids are one-line
// errors.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/tasks/dataset.h"
#include "lmforge/tasks/template.h"

namespace lmforge::tasks {

struct FewshotOptions {
  std::optional<int> num_fewshot;  // unset: the template's fixed ids or inline examples, else 0
  uint64_t seed = 1234;            // lm-eval's default few-shot seed
  std::vector<int64_t> ids;        // fixed example ids in the pool; override the template's
};

class FewshotSampler {
 public:
  // `fewshot_file`: a dataset loaded from a few-shot file, or nullptr. The sampler refers to the
  // rows of `eval` or `fewshot_file` (whichever is the pool; no copy of a large train split), so
  // that dataset must outlive it; the template's examples are copied. Throws lmforge::Error for
  // the errors above that can be seen without a query row.
  FewshotSampler(const Template& t, const Dataset& eval, const Dataset* fewshot_file, const FewshotOptions& options);

  // The few-shot examples for one query row, in prompt order.
  std::vector<const Row*> select(const Row& query) const;

  int num_fewshot() const { return k_; }
  const std::string& pool_source() const { return source_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

 private:
  // The pool: a dataset's rows (external_), or a copy of the template's examples (owned_), so
  // that copying the sampler never leaves it pointing into another sampler.
  const std::vector<Row>& pool() const { return external_ != nullptr ? *external_ : owned_; }
  const std::vector<Row>* external_ = nullptr;
  std::vector<Row> owned_;
  std::vector<size_t> labeled_;  // indices into pool_ of rows with a gold label (the random pool)
  std::vector<size_t> fixed_;    // indices into pool_ of fixed examples
  std::vector<std::string> label_names_;
  std::string source_;
  bool pool_is_eval_ = false;
  bool random_ = false;
  int k_ = 0;
  uint64_t seed_ = 0;
};

// instruction + each example (example_prefix + text + target_delimiter + target + fewshot_delimiter)
// + query_prefix + text(query). Example targets use `label_names` (the pool's).
std::string build_prompt(const Template& t, const std::vector<const Row*>& examples, const Row& query,
                         const std::vector<std::string>& label_names);

// The same with the sampler's examples for `query`.
std::string build_prompt(const Template& t, const FewshotSampler& sampler, const Row& query);

}  // namespace lmforge::tasks
