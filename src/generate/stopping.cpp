#include "generate/stopping.h"

#include <algorithm>

#include "lmforge/error.h"

namespace lmforge::gen {

bool EosTokenCriterion::done(const std::vector<int32_t>& ids, int) const {
  return !ids.empty() && std::find(eos_.begin(), eos_.end(), ids.back()) != eos_.end();
}

StopStringCriterion::StopStringCriterion(std::vector<std::string> stop_strings, DecodeFn decode)
    : stops_(std::move(stop_strings)), decode_(std::move(decode)), window_(1) {
  for (const auto& s : stops_) window_ = std::max(window_, s.size() + 1);
}

bool StopStringCriterion::done(const std::vector<int32_t>& ids, int first_real) const {
  const size_t end = ids.size();
  const size_t begin = std::max<size_t>(first_real, end > window_ ? end - window_ : 0);
  if (end <= begin) return false;
  const std::vector<int32_t> tail(ids.begin() + begin, ids.end());
  const std::vector<int32_t> before(tail.begin(), tail.end() - 1);
  const std::string text = decode_(tail);
  const size_t prev = decode_(before).size();  // text up to (not including) the last token
  for (const auto& s : stops_) {
    // A match must end after `prev`, i.e. start at or after prev + 1 - |s|.
    const size_t from = prev + 1 > s.size() ? prev + 1 - s.size() : 0;
    if (text.find(s, from) != std::string::npos) return true;
  }
  return false;
}

StoppingCriteria::StoppingCriteria(const GenerationPlan& plan, const DecodeFn& decode) {
  list_.push_back(std::make_unique<MaxLengthCriterion>(plan.max_length));
  if (!plan.cfg.stop_strings.empty()) {
    if (!decode) throw Error("--stop_strings needs a tokenizer to decode the generated text");
    list_.push_back(std::make_unique<StopStringCriterion>(plan.cfg.stop_strings, decode));
  }
  if (plan.has_eos()) list_.push_back(std::make_unique<EosTokenCriterion>(plan.eos()));
}

bool StoppingCriteria::done(const std::vector<int32_t>& ids, int first_real) const {
  for (const auto& c : list_)
    if (c->done(ids, first_real)) return true;
  return false;
}

}  // namespace lmforge::gen
