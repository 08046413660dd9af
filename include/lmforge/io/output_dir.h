#pragma once
// Output folders and the record each command leaves in them.
//
// Every folder lmforge writes as a whole (finetune's --save_path, quantize's --save_path, init's
// --save_path) holds a small `lmforge_output.json`:
//   {"command": "finetune", "lmforge_version": "0.1.0", "training": {...}}
// It serves two purposes:
//   1. HF's --overwrite_output_dir rule: a command refuses a non-empty folder unless it is that
//      command's own earlier output (its record names the command) or the flag is given.
//   2. The training record: finetune stores what the model was trained with under "training"
//      (prefix, suffix, text_column, data_path, max_rows, sample, validation_fraction, seed), so
//      synth, eval perplexity, quantize and tune default to the same text format and held-out split
//      (flags still override). quantize copies the block of the folder it quantized.
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace lmforge {

inline constexpr const char* kOutputRecordFile = "lmforge_output.json";

// <dir>/lmforge_output.json parsed, or nullopt when the folder has none. Throws lmforge::Error
// naming the file when it exists but is not a JSON object.
std::optional<nlohmann::json> read_output_record(const std::filesystem::path& dir);

// The "training" block of the record (an object), or nullopt when there is none.
std::optional<nlohmann::json> read_training_record(const std::filesystem::path& dir);

// HF's --overwrite_output_dir rule for `dir` (named by `flag` in the error, e.g. "--save_path"):
// fine when it does not exist, is an empty folder, holds a record written by `command`, or
// `overwrite` is true. Otherwise throws lmforge::Error, e.g.
//   --save_path: output folder 'out' exists and is not empty (and is not an earlier `lmforge
//   finetune` output); pass --overwrite_output_dir to write into it anyway
// A path that exists but is not a folder is always refused.
void check_output_dir(const std::filesystem::path& dir, const std::string& command, bool overwrite,
                      const std::string& flag);

// Writes <dir>/lmforge_output.json atomically (temp file + rename): {"command": command,
// "lmforge_version": ..., then the members of `extra` (an object, or null for none)}.
void write_output_record(const std::filesystem::path& dir, const std::string& command,
                         const nlohmann::json& extra = nullptr);

}  // namespace lmforge
