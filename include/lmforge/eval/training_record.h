#pragma once
// finetune's training record (the "training" block of a model folder's lmforge_output.json, see
// lmforge/io/output_dir.h), read by the commands that default to it: synth, eval perplexity, tune
// (the text format: prefix, suffix) and quantize (also the held-out split: text_column, data_path,
// max_rows, sample, validation_fraction, seed). A flag (or synth YAML key) always wins over the
// record; every value taken from it is announced on one stderr line (record_used_line), so a
// default never changes a result silently.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace lmforge::eval {

struct TrainingRecord {
  std::filesystem::path file;  // DIR/lmforge_output.json, for messages
  nlohmann::json block;        // the "training" object as stored (quantize copies it whole)
  // Each member is nullopt when the record does not have it (an older or partial record).
  std::optional<std::string> prefix, suffix, text_column, data_path, sample;  // sample: first | random
  std::optional<int64_t> max_rows;
  std::optional<double> validation_fraction;
  std::optional<uint64_t> seed;
};

// The record of `model_dir`, or nullopt when the folder has no lmforge_output.json or the file has
// no "training" block (a model not made by finetune). Throws lmforge::Error naming the file and
// key when a value has the wrong type (e.g. "training.seed must be a non-negative integer") or
// sample is not first/random: a damaged record is reported, never half-used.
std::optional<TrainingRecord> load_training_record(const std::filesystem::path& model_dir);

// A text for messages: 'text' with \, ', newlines, tabs and other control bytes escaped, so an
// empty or whitespace-only prefix is visible ('' or ' ').
std::string quote_text(std::string_view s);

// "lmforge: using finetune's prefix '|HEADLINE| ' and suffix '.' from DIR/lmforge_output.json":
// `taken` lists (name, value as shown) of the values taken from the record, in order; empty when
// nothing was taken (then no line is printed).
std::string record_used_line(const TrainingRecord& record, const std::vector<std::pair<std::string, std::string>>& taken);

}  // namespace lmforge::eval
