#pragma once
// `lmforge synth` settings: the YAML of the reference kit's generate_text.py (seed 000) plus our
// keys. Every key is also a flag of the same name; flags are applied after the YAML and win.
//
//   version: 1.0                                  ignored (the kit's configs carry it)
//   model: {path: DIR, pretrained_model: DIR, format: default}   or   model: DIR
//   generation: {prompt_file, min_length, max_length_buffer, ...}
//       any synth key may sit at the top level or inside `generation:` (the kit puts its three
//       there); giving one key in both places is an error.
//   HF generation keys by their HF names: do_sample, temperature, top_k, top_p, num_beams,
//       no_repeat_ngram_size, repetition_penalty, length_penalty, early_stopping, eos_token_id,
//       pad_token_id, bos_token_id, stop_strings (read by generation_config.h's reader).
// Lengths come from min_length / max_length_buffer only (see docs/SYNTH.md), so HF's max_length,
// max_new_tokens and min_new_tokens are refused with a pointer to them, and num_return_sequences
// with a pointer to num_samples.
//
// Errors are lmforge::Error, one line naming the file:line and key, e.g.
// "cfg.yml:3: unknown key 'top_pp' (did you mean 'top_p'?)".
#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "lmforge/eval/training_record.h"
#include "lmforge/generate/generation_config.h"
#include "lmforge/model/config.h"

namespace lmforge::synth {

enum class OutputFormat { Json, Jsonl, Csv };
enum class PrivacyMode { Drop, Flag };

struct SynthConfig {
  // Model: `path` wins over `pretrained_model` (both local HF folders).
  std::string model;
  std::string pretrained_model;  // model.pretrained_model: where the tokenizer is when `model` has none
  std::string tokenizer;         // tokenizer folder; "" = the model folder, else pretrained_model

  // Prompts and lengths (seed 000).
  std::string prompt_file;    // "" = generate from the prefix alone (one output entry); "-" = stdin
  std::string prompt_column;  // a CSV prompt file's prompt column ("" = prompt, else text; see io/prompt_file.h)
  int min_length = 0;         // generated tokens before the suffix may appear
  int max_length_buffer = 20; // max generated tokens = min_length + max_length_buffer
  std::string prefix = "|HEADLINE| ";
  std::string suffix = ".";
  bool keep_suffix = true;    // the seed prints "Farmers pleased with figures." with its '.'

  // Sampling and batching.
  int num_samples = 1;
  int batch_size = 16;
  uint64_t seed = 42;
  nlohmann::json generation = nlohmann::json::object();  // HF keys as given (YAML, then flags)

  // Output.
  std::string output;  // "" = stdout
  OutputFormat format = OutputFormat::Json;
  bool overwrite_output_dir = false;  // replace an --output/--report file that is not synth's own

  // Privacy guard and report.
  std::string reference_data;
  std::string column = "headline_text";
  int max_copy_ngram = 8;
  PrivacyMode privacy = PrivacyMode::Drop;
  std::string report;
  int self_bleu_samples = 500;

  int threads = 0;  // 0 = all cores

  std::set<std::string> given;  // keys set by the YAML or a flag (a training record fills only the others)

  int max_new_tokens() const { return min_length + max_length_buffer; }
};

// Every key a YAML file or flag may name (top-level spelling).
const std::vector<std::string>& synth_config_keys();
// True for the keys that take no value as a flag (`--do_sample` alone means true).
bool is_bool_key(const std::string& key);

// Reads a YAML file onto `cfg`. Relative paths in it (model, tokenizer, prompt_file,
// reference_data) are taken from the working directory when they exist there, else from the
// YAML file's folder.
void load_synth_config(const std::filesystem::path& file, SynthConfig& cfg);
// One key from a flag value ("0.9", "true", "out.json"); `where` names it ("--top_p").
void set_synth_value(SynthConfig& cfg, const std::string& key, const std::string& value, const std::string& where);

// finetune's training record of the model folder: its prefix and suffix become the config's unless
// the YAML or a flag gave them (cfg.given). Returns (key, value as shown) of what was taken, for
// eval::record_used_line.
std::vector<std::pair<std::string, std::string>> apply_training_record(SynthConfig& cfg,
                                                                       const eval::TrainingRecord& record);

// HF's --overwrite_output_dir rule for the files synth writes (output, report), checked before the
// generation: a missing or empty file is fine; an existing one must look like synth's own earlier
// output of that kind (below), else it is refused (lmforge::Error naming the key) unless
// overwrite_output_dir. Also refuses a folder, a missing or read-only folder, and the same file
// for both. Never deletes anything itself.
void check_output_files(const SynthConfig& cfg);
// synth's rows in any of its formats: JSON (an array of objects, each with a "sentences" list),
// JSONL (every non-blank line an object with "prompt" and "text"), CSV (first line
// "prompt,text,tokens,stop" or "prompt,text,tokens,stop,privacy").
bool is_synth_rows_output(const std::string& content);
// synth's report JSON: an object with a "rows" object holding "generated" and "kept", and "self_bleu".
bool is_synth_report_output(const std::string& content);

// Range checks naming the key: min_length >= 0, max_length_buffer >= 0 and max length >= 1,
// num_samples >= 1, batch_size >= 1, max_copy_ngram >= 1, model given, ...
void validate(const SynthConfig& cfg);

// HF generation settings for synth, each layer over the one before:
//   the model's special ids -> the folder's generation_config.json -> seed 000's sampling
//   (do_sample, top_k 0: plain multinomial sampling) -> the config's HF keys -> the lengths:
//   min_new_tokens = min_length, max_new_tokens = min_length + max_length_buffer.
// `suffix_id` (the suffix when it is one token) joins the model's eos ids, so a row stops at its
// '.' like the seed's loop; a longer suffix becomes a stop string instead.
GenerationConfig generation_config(const SynthConfig& cfg, const ModelConfig& model,
                                   std::optional<int32_t> suffix_id);

const char* to_string(OutputFormat f);
const char* to_string(PrivacyMode m);

}  // namespace lmforge::synth
