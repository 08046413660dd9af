#include "cli/generation_flags.h"

#include "cli/common.h"
#include "cli/options.h"
#include "lmforge/error.h"

namespace lmforge::cli {

void GenerationFlags::add(CLI::App& app, const std::string& max_new_tokens_names) {
  add_optional(app, "--max_length", max_length, "HF max_length: total length, prompt included (default 20)");
  add_optional(app, max_new_tokens_names, max_new_tokens, "HF max_new_tokens: tokens to generate (wins over --max_length)");
  add_optional(app, "--min_length", min_length, "HF min_length: EOS is blocked before this total length");
  add_optional(app, "--min_new_tokens", min_new_tokens, "HF min_new_tokens: EOS is blocked before this many new tokens");
  add_bool_option(app, "--do_sample", do_sample,
                  "HF do_sample: sample instead of greedy/beam search (default false; --do_sample false overrides a "
                  "generation_config.json that turns it on)");
  add_optional(app, "--num_beams", num_beams, "HF num_beams: beam search width (1 = no beam search)");
  add_optional(app, "--num_return_sequences", num_return_sequences, "HF num_return_sequences per prompt");
  add_optional(app, "--length_penalty", length_penalty, "HF length_penalty: beam score = logprob / length^penalty");
  app.add_option_function<std::string>(
         "--early_stopping", [this](const std::string& v) { early_stopping = v.empty() ? "true" : v; },
         "HF early_stopping: true | false | never (flag alone = true)")
      ->expected(0, 1);
  add_optional(app, "--temperature", temperature, "HF temperature for sampling (default 1)");
  add_optional(app, "--top_k", top_k, "HF top_k: keep the k most likely tokens (0 = off; HF default 50)");
  add_optional(app, "--top_p", top_p, "HF top_p: nucleus sampling threshold in (0, 1]");
  add_optional(app, "--repetition_penalty", repetition_penalty, "HF repetition_penalty (1 = off)");
  add_optional(app, "--no_repeat_ngram_size", no_repeat_ngram_size, "HF no_repeat_ngram_size (0 = off)");
  app.add_option("--eos_token_id", eos_token_id, "HF eos_token_id (repeatable)");
  add_optional(app, "--pad_token_id", pad_token_id, "HF pad_token_id (default: eos_token_id)");
  add_optional(app, "--bos_token_id", bos_token_id, "HF bos_token_id (prompt when none is given)");
  app.add_option("--stop_strings", stop_strings, "HF stop_strings: stop a sequence once its text contains one");
  add_optional(app, "--seed", seed, "Seed of the sampling RNG (reproducible sampling)");
}

GenerationConfig GenerationFlags::build(const ModelConfig& c, const std::string& model_dir) const {
  GenerationConfig g = generation_defaults(c.eos_token_id, c.bos_token_id, c.pad_token_id, model_dir);
  if (max_length) g.max_length = max_length;
  if (max_new_tokens) g.max_new_tokens = max_new_tokens;
  if (min_length) g.min_length = *min_length;
  if (min_new_tokens) g.min_new_tokens = min_new_tokens;
  if (do_sample) g.do_sample = *do_sample;
  if (num_beams) g.num_beams = *num_beams;
  if (num_return_sequences) g.num_return_sequences = *num_return_sequences;
  if (length_penalty) g.length_penalty = *length_penalty;
  if (early_stopping) {
    const std::string& v = *early_stopping;
    if (v == "true" || v == "True") g.early_stopping = EarlyStopping::True;
    else if (v == "false" || v == "False") g.early_stopping = EarlyStopping::False;
    else if (v == "never") g.early_stopping = EarlyStopping::Never;
    else throw Error("--early_stopping: expected true, false or never, got '" + v + "'");
  }
  if (temperature) g.temperature = *temperature;
  if (top_k) g.top_k = *top_k;
  if (top_p) g.top_p = *top_p;
  if (repetition_penalty) g.repetition_penalty = *repetition_penalty;
  if (no_repeat_ngram_size) g.no_repeat_ngram_size = *no_repeat_ngram_size;
  if (!eos_token_id.empty()) g.eos_token_id.assign(eos_token_id.begin(), eos_token_id.end());
  if (pad_token_id) g.pad_token_id = pad_token_id;
  if (bos_token_id) g.bos_token_id = bos_token_id;
  if (!stop_strings.empty()) g.stop_strings = stop_strings;
  if (seed) g.seed = seed;
  g.validate();
  return g;
}

}  // namespace lmforge::cli
