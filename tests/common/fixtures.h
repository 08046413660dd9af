#pragma once
// Readers for the HF reference fixtures copied into tests/data/ (see tests/data/README.md).
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lmforge::test {

// tests/data (the copy of ../shared/fixtures/public).
std::filesystem::path data_dir();
// tests/data/models/<name>
std::filesystem::path model_dir(const std::string& name);

// Every line of a .jsonl file as JSON.
std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& file);
// Cases of one model, optionally only those of one kind ("logits", "generate", "dist", ...).
std::vector<nlohmann::json> model_cases(const std::string& model, const std::string& kind = "");

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;
};
// A little-endian float32 .npy (numpy.save). `path` may be relative to data_dir().
NpyArray read_npy(const std::filesystem::path& path);

// Names of the models in manifest.json, optionally only one architecture ("gpt2" / "gptj").
std::vector<std::string> model_names(const std::string& arch = "");

}  // namespace lmforge::test
