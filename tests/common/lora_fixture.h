#pragma once
// The PEFT LoRA fixture (tests/data/lora, a copy of ../shared/fixtures/public/lora): one case per
// architecture in cases.jsonl, naming its base model folder and its peft-written adapter folder.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "common/fixtures.h"

namespace lmforge::test {

inline std::filesystem::path lora_dir() { return data_dir() / "lora"; }

// The case of `arch` ("gpt2" or "gptj"); a test failure (and {}) when there is none.
inline nlohmann::json lora_case(const std::string& arch) {
  for (const auto& c : read_jsonl(lora_dir() / "cases.jsonl"))
    if (c["arch"] == arch) return c;
  ADD_FAILURE() << "no lora case for " << arch;
  return {};
}

}  // namespace lmforge::test
