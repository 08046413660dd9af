#pragma once
// Every rank must run the same model: a host with another checkpoint in the same path would make
// its rows differ silently. Checked cheaply at start, not by hashing gigabytes of weights.
#include <cstdint>
#include <filesystem>
#include <string>

#include "lmforge/dist/world.h"

namespace lmforge::dist {

// FNV-1a 64 over config.json and adapter_config.json (their bytes, when present) and the names and
// sizes of the folder's weight files (*.safetensors, *.bin), in name order. lmforge::Error naming
// the folder when it cannot be read.
uint64_t model_fingerprint(const std::filesystem::path& folder);

// Gathers each rank's fingerprint of `folder` (a --model value: a folder or a Hub cache name) and,
// on rank 0, throws lmforge::Error naming `flag` and the first rank whose folder differs from rank
// 0's. A no-op in a world of one.
void check_same_model(const World& w, const std::string& flag, const std::string& folder);

// FNV-1a 64 over a file's bytes (a fixed value when it cannot be read, so that a file missing on
// every rank passes here and is reported by the command itself).
uint64_t file_fingerprint(const std::filesystem::path& file);

// As check_same_model, for a data file read by every rank (finetune's --data_path): a rank with
// another copy would train on other rows without anyone noticing. A no-op in a world of one.
void check_same_file(const World& w, const std::string& flag, const std::string& file);

}  // namespace lmforge::dist
