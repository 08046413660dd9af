#pragma once
// HF stopping criteria, evaluated per row on the row's full sequence (padded prompt included):
//   MaxLengthCriteria  - the sequence reached max_length (every row at once);
//   EosTokenCriteria   - the last token is one of the eos ids;
//   StopStringCriteria - the last token completes one of the stop strings. As in HF the match may
//                        start inside an earlier token (or the prompt) and the last token may run
//                        past the end of the string, but the string must end inside the last token.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "generate/plan.h"

namespace lmforge::gen {

class StoppingCriterion {
 public:
  virtual ~StoppingCriterion() = default;
  // `first_real`: index of the row's first non-padding token.
  virtual bool done(const std::vector<int32_t>& ids, int first_real) const = 0;
};

class MaxLengthCriterion : public StoppingCriterion {
 public:
  explicit MaxLengthCriterion(int max_length) : max_length_(max_length) {}
  bool done(const std::vector<int32_t>& ids, int) const override {
    return static_cast<int>(ids.size()) >= max_length_;
  }

 private:
  int max_length_;
};

class EosTokenCriterion : public StoppingCriterion {
 public:
  explicit EosTokenCriterion(std::vector<int32_t> eos) : eos_(std::move(eos)) {}
  bool done(const std::vector<int32_t>& ids, int first_real) const override;

 private:
  std::vector<int32_t> eos_;
};

using DecodeFn = std::function<std::string(const std::vector<int32_t>&)>;

class StopStringCriterion : public StoppingCriterion {
 public:
  StopStringCriterion(std::vector<std::string> stop_strings, DecodeFn decode);
  bool done(const std::vector<int32_t>& ids, int first_real) const override;

 private:
  std::vector<std::string> stops_;
  DecodeFn decode_;
  size_t window_;  // tokens decoded: every token is at least one byte, so the longest string + 1 suffice
};

// HF StoppingCriteriaList: a row is done when any criterion says so.
class StoppingCriteria {
 public:
  // Throws lmforge::Error when stop strings are set but no decode callback was given.
  StoppingCriteria(const GenerationPlan& plan, const DecodeFn& decode);
  bool done(const std::vector<int32_t>& ids, int first_real) const;

 private:
  std::vector<std::unique_ptr<StoppingCriterion>> list_;
};

}  // namespace lmforge::gen
