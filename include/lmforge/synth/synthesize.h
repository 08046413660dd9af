#pragma once
// The synthetic-row pipeline of `lmforge synth` (seed 000's generate_text.py, batched):
// prompts -> prefix + prompt -> batched HF generate() -> post-processing -> rows -> output text.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "lmforge/generate/generate.h"
#include "lmforge/io/prompt_file.h"  // prompt files: lmforge::read_prompt_file, shared with generate
#include "lmforge/synth/privacy_guard.h"
#include "lmforge/synth/synth_config.h"
#include "lmforge/tokenizer/tokenizer.h"

namespace lmforge::synth {

enum class StopReason { Suffix, Eos, Length };
const char* to_string(StopReason r);  // "suffix", "eos", "length"

struct SynthRow {
  size_t prompt_index = 0;
  std::string prompt;  // as in the prompt file ("" without one)
  std::string text;    // post-processed
  int tokens = 0;      // generated tokens before the suffix / EOS (the prompt not counted)
  StopReason stop = StopReason::Length;
  PrivacyVerdict privacy;
  bool kept = true;  // false once the privacy guard drops it
};

// Turns one generated row into text, as the seed does, plus the bookkeeping it leaves out:
//   the generated ids are cut at the first EOS / suffix id; their text is cut at the first
//   occurrence of the suffix (a token like `."` or `...` also ends the row); the prefix is
//   stripped from prompt + generated text; the result is trimmed, and the suffix put back when
//   keep_suffix and the row ended with it.
struct Postprocessed {
  std::string text;
  int tokens = 0;
  StopReason stop = StopReason::Length;
};
Postprocessed postprocess(const Tokenizer& tok, const std::vector<int32_t>& prompt_ids,
                          const std::vector<int32_t>& generated, const std::vector<int32_t>& eos_ids,
                          const SynthConfig& cfg);

struct Progress {
  size_t done = 0, total = 0;
};

// The generate() calls of generate_rows to run: [begin, end) of them. A rank of an mpirun job runs
// its own range (lmforge/dist/shard.h); a batch's rows do not depend on which batches run.
struct BatchRange {
  size_t begin = 0, end = SIZE_MAX;
};

// How many generate() calls generate_rows makes for `num_prompts` prompts (0 = the prefix alone).
size_t batch_count(const SynthConfig& cfg, const GenerationConfig& gen, size_t num_prompts);

// Generates num_samples rows per prompt (one entry from the prefix alone when `prompts` is empty)
// in batches of cfg.batch_size sequences: each batch is one left-padded generate() call, with the
// seed cfg.seed mixed with the batch number (identical prompts in different batches must not get
// identical samples), so a batch's rows depend on the seed and its number only, not on the batches
// run before it. Only the batches of `batches` run; every prompt is still checked. `on_batch` is
// called after each batch.
std::vector<SynthRow> generate_rows(const LanguageModel& lm, const Tokenizer& tok, const SynthConfig& cfg,
                                    const GenerationConfig& gen, const std::vector<std::string>& prompts,
                                    const std::function<void(const Progress&)>& on_batch = {},
                                    BatchRange batches = {});

// Marks copies of the reference rows (privacy guard); in drop mode they are no longer kept.
void apply_privacy_guard(const PrivacyGuard& guard, PrivacyMode mode, std::vector<SynthRow>& rows);

// The output file's contents. json: seed 000's `[{"sentences": [...]}, ...]`, one entry per prompt
// (in flag mode each entry also has "privacy": one reason or "" per sentence). jsonl: one object
// per row {prompt, text, tokens, stop[, privacy]}. csv: a header and the same columns.
std::string render_rows(const std::vector<SynthRow>& rows, size_t num_prompts, OutputFormat format,
                        PrivacyMode mode);

}  // namespace lmforge::synth
