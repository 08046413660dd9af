#include "generate/plan.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <string>

#include "lmforge/error.h"

namespace lmforge::gen {

bool GenerationPlan::is_eos(int32_t t) const {
  return std::find(cfg.eos_token_id.begin(), cfg.eos_token_id.end(), t) != cfg.eos_token_id.end();
}

int32_t GenerationPlan::pad_token() const {
  if (!pad) throw Error("--pad_token_id is needed (no --eos_token_id to default it to) to pad sequences");
  return *pad;
}

double decimal_value(float v) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);  // shortest round-trip representation
  *res.ptr = '\0';
  return std::strtod(buf, nullptr);
}

GenerationPlan resolve_plan(const GenerationConfig& cfg, int prompt_length) {
  cfg.validate();
  GenerationPlan p;
  p.cfg = cfg;
  p.prompt_length = prompt_length;
  // HF _prepare_generated_length: max_new_tokens wins (with a warning when max_length is also
  // given); otherwise max_length, whose default is 20.
  if (cfg.max_new_tokens) {
    p.max_length = prompt_length + *cfg.max_new_tokens;
  } else {
    p.max_length = cfg.max_length.value_or(20);
    if (p.max_length <= prompt_length)
      throw Error("--max_length " + std::to_string(p.max_length) + " is not longer than the prompt (" +
                  std::to_string(prompt_length) + " tokens); set a larger --max_length or use --max_new_tokens");
  }
  p.min_length = cfg.min_new_tokens ? prompt_length + *cfg.min_new_tokens : cfg.min_length;
  // HF _prepare_special_tokens: "Setting pad_token_id to eos_token_id for open-end generation".
  p.pad = cfg.pad_token_id;
  if (!p.pad && !cfg.eos_token_id.empty()) p.pad = cfg.eos_token_id.front();
  p.length_penalty = decimal_value(cfg.length_penalty);
  p.top_p = decimal_value(cfg.top_p);
  return p;
}

void check_fits_model(const GenerationPlan& plan, const LanguageModel& lm,
                      const std::vector<std::vector<int32_t>>& prompts) {
  const int ctx = lm.max_positions();
  const int vocab = lm.vocab_size();
  if (plan.prompt_length > ctx)
    throw Error("the prompt (" + std::to_string(plan.prompt_length) + " tokens) is longer than the model's context (" +
                std::to_string(ctx) + " positions)");
  if (plan.max_length > ctx) {
    const std::string flag = plan.cfg.max_new_tokens
                                 ? "--max_new_tokens " + std::to_string(*plan.cfg.max_new_tokens)
                                 : "--max_length " + std::to_string(plan.max_length);
    throw Error(flag + " needs " + std::to_string(plan.max_length) + " positions with a " +
                std::to_string(plan.prompt_length) + "-token prompt, but the model's context is " +
                std::to_string(ctx) + " positions");
  }
  for (const auto& prompt : prompts)
    for (int32_t t : prompt)
      if (t < 0 || t >= vocab)
        throw Error("prompt token id " + std::to_string(t) + " is outside the vocabulary [0, " +
                    std::to_string(vocab) + ")");
  auto check_special = [&](const char* flag, int32_t t) {
    if (t < 0 || t >= vocab)
      throw Error(std::string(flag) + " " + std::to_string(t) + " is outside the vocabulary [0, " +
                  std::to_string(vocab) + ")");
  };
  for (int32_t e : plan.eos()) check_special("--eos_token_id", e);
  if (plan.pad) check_special("--pad_token_id", *plan.pad);
}

}  // namespace lmforge::gen
