#pragma once
// Reads a tokenizer folder (vocab.json + merges.txt or tokenizer.json, plus tokenizer_config.json,
// special_tokens_map.json and added_tokens.json when present) into plain data. Every problem is an
// lmforge::Error whose one-line message starts with the offending file.
#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/bpe.h"

namespace lmforge::tokenizer {

struct AddedTokenSpec {
  std::string content;
  std::optional<int32_t> id;  // nullopt for tokens named only by role: they get the next free id
  bool lstrip = false, rstrip = false, single_word = false, special = false;
  std::string source;  // file it came from, for error messages
};

// HF's SPECIAL_TOKENS_ATTRIBUTES order, which is also the order new special tokens get ids in.
enum class Role { bos, eos, unk, sep, pad, cls, mask };
inline constexpr std::array<const char*, 7> kRoleKeys{"bos_token", "eos_token", "unk_token", "sep_token",
                                                      "pad_token", "cls_token", "mask_token"};

struct TokenizerSpec {
  std::unordered_map<std::string, int32_t> vocab;
  std::vector<MergeRule> merges;
  std::function<std::string(std::size_t)> merge_where;  // names merge i in error messages
  std::vector<AddedTokenSpec> added_tokens;              // tokens listed with explicit ids
  std::array<std::optional<AddedTokenSpec>, kRoleKeys.size()> roles;
  std::vector<AddedTokenSpec> additional_special;
  bool add_prefix_space = false;
  bool add_bos_token = false;
  bool clean_up_tokenization_spaces = false;  // HF's current default
  int64_t model_max_length = INT64_MAX;        // HF: VERY_LARGE_INTEGER when not configured
};

TokenizerSpec load_tokenizer_dir(const std::filesystem::path& dir);
TokenizerSpec load_vocab_merges(const std::filesystem::path& vocab_json, const std::filesystem::path& merges_txt);

}  // namespace lmforge::tokenizer
