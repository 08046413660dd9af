// The tokenizer against HF transformers' own outputs (tests/data/tokenizer, see its README):
// every case of cases.jsonl and decode_cases.jsonl.
#include <thread>

#include "tokenizer/tokenizer_test_util.h"

namespace lmforge::test {
namespace {

std::vector<nlohmann::json> encode_cases() { return read_jsonl(tokenizer_data() / "cases.jsonl"); }
std::vector<nlohmann::json> decode_cases() { return read_jsonl(tokenizer_data() / "decode_cases.jsonl"); }

std::vector<int32_t> ids_of(const nlohmann::json& c) { return c.at("ids").get<std::vector<int32_t>>(); }

// Guards against a truncated or missing fixture making the loops below vacuous.
TEST(HfFixtures, FixtureFilesHaveTheDocumentedSize) {
  EXPECT_EQ(encode_cases().size(), 58u);
  EXPECT_EQ(decode_cases().size(), 128u);
}

TEST(HfFixtures, EncodeGivesHfIds) {
  const Tokenizer& tok = gpt2_tokenizer();
  for (const auto& c : encode_cases()) {
    const std::string text = c.at("text");
    EXPECT_EQ(tok.encode(text), ids_of(c)) << "text: " << c.at("text").dump();
  }
}

TEST(HfFixtures, IdToTokenGivesHfTokenStrings) {
  const Tokenizer& tok = gpt2_tokenizer();
  for (const auto& c : encode_cases()) {
    const auto ids = ids_of(c);
    const auto tokens = c.at("tokens").get<std::vector<std::string>>();
    ASSERT_EQ(ids.size(), tokens.size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
      EXPECT_EQ(tok.id_to_token(ids[i]), tokens[i]) << "id " << ids[i];
      EXPECT_EQ(tok.token_to_id(tokens[i]), ids[i]) << "token " << tokens[i];
    }
  }
}

// The fixtures' `decoded` used HF 4.43's default clean_up_tokenization_spaces=True.
void expect_hf_decodes(const Tokenizer& tok, const nlohmann::json& c) {
  const auto ids = ids_of(c);
  const std::string where = "ids: " + c.at("ids").dump();
  EXPECT_EQ(tok.decode(ids, false, true), c.at("decoded").get<std::string>()) << where;
  EXPECT_EQ(tok.decode(ids, true, true), c.at("decoded_skip_special").get<std::string>()) << where;
  EXPECT_EQ(tok.decode(ids, false, false), c.at("decoded_no_cleanup").get<std::string>()) << where;
}

TEST(HfFixtures, DecodeOfEncodeCasesGivesHfText) {
  for (const auto& c : encode_cases()) expect_hf_decodes(gpt2_tokenizer(), c);
}

TEST(HfFixtures, DecodeCasesGiveHfTextIncludingReplacementCharacters) {
  for (const auto& c : decode_cases()) expect_hf_decodes(gpt2_tokenizer(), c);
}

// The folder has no tokenizer_config.json, so the current HF default (no clean-up) applies.
TEST(HfFixtures, DefaultDecodeDoesNotCleanUpWithoutConfig) {
  const Tokenizer& tok = gpt2_tokenizer();
  EXPECT_FALSE(tok.clean_up_tokenization_spaces_default());
  for (const auto& c : decode_cases())
    EXPECT_EQ(tok.decode(ids_of(c)), c.at("decoded_no_cleanup").get<std::string>()) << c.at("ids").dump();
}

TEST(HfFixtures, Gpt2SpecialTokenDefaults) {
  const Tokenizer& tok = gpt2_tokenizer();
  EXPECT_EQ(tok.vocab_size(), 50257);
  EXPECT_EQ(tok.bos_id(), 50256);
  EXPECT_EQ(tok.eos_id(), 50256);
  EXPECT_EQ(tok.unk_id(), 50256);
  EXPECT_EQ(tok.pad_id(), std::nullopt);
  EXPECT_TRUE(tok.is_special(50256));
  EXPECT_FALSE(tok.is_special(15496));
  EXPECT_EQ(tok.id_to_token(50256), "<|endoftext|>");
  // No tokenizer_config.json: HF's VERY_LARGE_INTEGER, i.e. no limit.
  EXPECT_GE(tok.model_max_length(), int64_t{1} << 60);
}

// The model folder used by the CLI carries the same vocabulary as tests/data/tokenizer.
TEST(HfFixtures, ModelFolderTokenizerMatchesFixtures) {
  const Tokenizer tok = Tokenizer::from_dir(model_dir("gpt2-tiny"));
  for (const auto& c : encode_cases()) EXPECT_EQ(tok.encode(c.at("text").get<std::string>()), ids_of(c));
}

// Encoding shares one merge cache; concurrent callers must still all get HF's ids.
TEST(HfFixtures, ConcurrentEncodesAgreeWithHf) {
  const Tokenizer tok = Tokenizer::from_dir(tokenizer_data());  // fresh, empty cache
  const auto cases = encode_cases();
  std::vector<int> failures(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int round = 0; round < 5; ++round)
        for (std::size_t i = 0; i < cases.size(); ++i) {
          const auto& c = cases[(i + t * 7) % cases.size()];
          if (tok.encode(c.at("text").get<std::string>()) != ids_of(c)) ++failures[t];
        }
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
}

}  // namespace
}  // namespace lmforge::test
