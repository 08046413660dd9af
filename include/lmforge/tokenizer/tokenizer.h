#pragma once
// Byte-level BPE identical to HF's GPT2Tokenizer (slow tokenizer) / GPT-2 tokenizer.json.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lmforge {

class Tokenizer {
 public:
  // Reads vocab.json + merges.txt, or tokenizer.json, from `dir` (and tokenizer_config.json /
  // special_tokens_map.json when present). Throws lmforge::Error naming the file on problems.
  static Tokenizer from_dir(const std::filesystem::path& dir);
  static Tokenizer from_files(const std::filesystem::path& vocab_json, const std::filesystem::path& merges_txt);

  // HF's tokenizer.encode(text): added/special tokens written in the text (e.g. <|endoftext|>) are
  // matched whole; no BOS/EOS is added unless tokenizer_config.json sets add_bos_token. `text` must
  // be valid UTF-8 (throws lmforge::Error otherwise). encode/decode are safe to call concurrently.
  std::vector<int32_t> encode(std::string_view text) const;
  // skip_special_tokens drops added/special tokens (e.g. <|endoftext|>). Invalid UTF-8 produced by
  // partial byte tokens becomes U+FFFD, as HF's errors="replace". clean_up_tokenization_spaces
  // overrides the folder default. An id past the vocabulary (or on a hole in it) decodes
  // as nothing, as HF's fast tokenizer does; a negative id throws lmforge::Error.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false,
                     std::optional<bool> clean_up_tokenization_spaces = std::nullopt) const;
  // The token's vocabulary string (byte-to-unicode form, e.g. "Ġworld"). Throws on out-of-range id.
  const std::string& id_to_token(int32_t id) const;
  std::optional<int32_t> token_to_id(std::string_view token) const;

  int32_t vocab_size() const;  // including added tokens
  bool is_special(int32_t id) const;
  // Folder defaults from tokenizer_config.json; HF's current default is false.
  bool clean_up_tokenization_spaces_default() const;
  std::optional<int32_t> bos_id() const, eos_id() const, unk_id() const, pad_id() const;
  int64_t model_max_length() const;  // from tokenizer_config.json, else a very large number

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lmforge
