// Loading tokenizer folders: tokenizer.json, tokenizer_config.json / special_tokens_map.json
// settings, added tokens, and the one-line errors for broken files.
#include <functional>
#include <limits>
#include <sstream>

#include <gtest/gtest.h>

#include "lmforge/error.h"
#include "tokenizer/tokenizer_test_util.h"

namespace lmforge::test {
namespace {

using nlohmann::json;

// The fixture's merges.txt as a list of "left right" strings (header and blank lines dropped).
std::vector<std::string> fixture_merge_lines() {
  std::vector<std::string> out;
  std::istringstream in(read_text(tokenizer_data() / "merges.txt"));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty() && line.rfind("#version", 0) != 0) out.push_back(line);
  return out;
}

// A tokenizer.json in the layout HF's tokenizers library writes, from the fixture vocabulary.
json fixture_tokenizer_json(bool merges_as_pairs) {
  json merges = json::array();
  for (const auto& line : fixture_merge_lines()) {
    if (!merges_as_pairs) {
      merges.push_back(line);
      continue;
    }
    const auto space = line.find(' ');
    merges.push_back(json::array({line.substr(0, space), line.substr(space + 1)}));
  }
  json added = json::array({{{"id", 50256}, {"content", "<|endoftext|>"}, {"single_word", false}, {"lstrip", false},
                             {"rstrip", false}, {"normalized", true}, {"special", true}}});
  return {{"version", "1.0"},
          {"added_tokens", added},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}}},
          {"model",
           {{"type", "BPE"}, {"vocab", json::parse(read_text(tokenizer_data() / "vocab.json"))}, {"merges", merges}}}};
}

void expect_fixture_ids(const Tokenizer& tok) {
  const auto cases = read_jsonl(tokenizer_data() / "cases.jsonl");
  ASSERT_EQ(cases.size(), 58u);
  for (const auto& c : cases) {
    const auto ids = c.at("ids").get<std::vector<int32_t>>();
    EXPECT_EQ(tok.encode(c.at("text").get<std::string>()), ids) << c.at("text").dump();
    EXPECT_EQ(tok.decode(ids, true, true), c.at("decoded_skip_special").get<std::string>());
  }
}

TEST(TokenizerJson, StringMergesGiveHfIds) {
  TempDir dir;
  write_text(dir / "tokenizer.json", fixture_tokenizer_json(false).dump());
  const Tokenizer tok = Tokenizer::from_dir(dir.path());
  EXPECT_EQ(tok.vocab_size(), 50257);
  EXPECT_EQ(tok.eos_id(), 50256);
  EXPECT_TRUE(tok.is_special(50256));
  expect_fixture_ids(tok);
}

TEST(TokenizerJson, PairMergesGiveHfIds) {
  TempDir dir;
  write_text(dir / "tokenizer.json", fixture_tokenizer_json(true).dump());
  expect_fixture_ids(Tokenizer::from_dir(dir.path()));
}

// A folder with the slow tokenizer's files, the fixture's, plus the given extra files.
class ConfiguredFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::copy_file(tokenizer_data() / "vocab.json", dir_ / "vocab.json");
    std::filesystem::copy_file(tokenizer_data() / "merges.txt", dir_ / "merges.txt");
  }
  Tokenizer load_with_config(const json& config) {
    write_text(dir_ / "tokenizer_config.json", config.dump());
    return Tokenizer::from_dir(dir_.path());
  }
  TempDir dir_;
};

TEST_F(ConfiguredFolder, ConfigTurnsCleanUpOnByDefault) {
  const Tokenizer tok = load_with_config({{"clean_up_tokenization_spaces", true}});
  EXPECT_TRUE(tok.clean_up_tokenization_spaces_default());
  for (const auto& c : read_jsonl(tokenizer_data() / "decode_cases.jsonl")) {
    const auto ids = c.at("ids").get<std::vector<int32_t>>();
    EXPECT_EQ(tok.decode(ids), c.at("decoded").get<std::string>());
    EXPECT_EQ(tok.decode(ids, false, false), c.at("decoded_no_cleanup").get<std::string>());  // override
  }
}

TEST_F(ConfiguredFolder, ModelMaxLengthAndPadFromConfig) {
  const Tokenizer tok = load_with_config({{"model_max_length", 1024}, {"pad_token", "<|endoftext|>"}});
  EXPECT_EQ(tok.model_max_length(), 1024);
  EXPECT_EQ(tok.pad_id(), 50256);
  EXPECT_EQ(tok.bos_id(), 50256);
}

// transformers saves an unset model_max_length as int(1e30).
TEST_F(ConfiguredFolder, HugeModelMaxLengthIsClamped) {
  write_text(dir_ / "tokenizer_config.json", R"({"model_max_length": 1000000000000000019884624838656})");
  EXPECT_EQ(Tokenizer::from_dir(dir_.path()).model_max_length(), std::numeric_limits<int64_t>::max());
}

TEST_F(ConfiguredFolder, SpecialTokensMapOverridesRoles) {
  write_text(dir_ / "special_tokens_map.json",
             R"({"pad_token": {"content": "<|endoftext|>", "lstrip": false}, "bos_token": null})");
  const Tokenizer tok = Tokenizer::from_dir(dir_.path());
  EXPECT_EQ(tok.pad_id(), 50256);
  EXPECT_EQ(tok.bos_id(), std::nullopt);
  EXPECT_EQ(tok.eos_id(), 50256);
}

// HF's tokenize() splits on every added token; HF's slow _decode joins a non-special added token
// to its neighbours with spaces (spaces_between_special_tokens=True), and 64 / 65 are "a" / "b".
TEST_F(ConfiguredFolder, NonSpecialAddedTokenIsMatchedWholeAndSpacedOnDecode) {
  const Tokenizer tok = load_with_config(
      {{"added_tokens_decoder",
        {{"50257", {{"content", "<|new|>"}, {"lstrip", false}, {"rstrip", false}, {"single_word", false},
                    {"normalized", false}, {"special", false}}}}}});
  EXPECT_EQ(tok.vocab_size(), 50258);
  EXPECT_EQ(tok.encode("a<|new|>b"), (std::vector<int32_t>{64, 50257, 65}));
  EXPECT_FALSE(tok.is_special(50257));
  EXPECT_EQ(tok.decode({64, 50257, 65}), "a <|new|> b");
  EXPECT_EQ(tok.decode({64, 50257, 65}, true), "a <|new|> b");  // not special: kept
}

// rstrip makes the token swallow the whitespace on its right, lstrip on its left (HF AddedToken).
// 220 is " ", 64 "a", 65 "b".
TEST_F(ConfiguredFolder, AddedTokenStripsNeighbouringWhitespace) {
  const Tokenizer tok = load_with_config(
      {{"added_tokens_decoder",
        {{"50257", {{"content", "<R>"}, {"rstrip", true}, {"special", true}}},
         {"50258", {{"content", "<L>"}, {"lstrip", true}, {"special", true}}}}}});
  EXPECT_EQ(tok.encode("a <R>  b"), (std::vector<int32_t>{64, 220, 50257, 65}));
  EXPECT_EQ(tok.encode("a  <L> b"), (std::vector<int32_t>{64, 50258, 275}));
}

TEST_F(ConfiguredFolder, AddedTokensJsonIsRead) {
  write_text(dir_ / "added_tokens.json", R"({"<|x|>": 50257})");
  const Tokenizer tok = Tokenizer::from_dir(dir_.path());
  EXPECT_EQ(tok.token_to_id("<|x|>"), 50257);
  EXPECT_EQ(tok.encode("<|x|>"), (std::vector<int32_t>{50257}));
}

// add_prefix_space (GPT2Tokenizer option) prepends a space before tokenizing: "Hello" -> " Hello".
TEST_F(ConfiguredFolder, AddPrefixSpace) {
  const Tokenizer tok = load_with_config({{"add_prefix_space", true}});
  EXPECT_EQ(tok.encode("Hello world"), (std::vector<int32_t>{18435, 995}));
}

// GPT2Tokenizer(add_bos_token=True) prepends bos_token_id in build_inputs_with_special_tokens.
TEST_F(ConfiguredFolder, AddBosToken) {
  const Tokenizer tok = load_with_config({{"add_bos_token", true}});
  EXPECT_EQ(tok.encode("Hello world"), (std::vector<int32_t>{50256, 15496, 995}));
}

// ---------------------------------------------------------------------------------------------
// Errors: each is an lmforge::Error whose single-line message names the file at fault.

void expect_error_naming(const std::function<void()>& load, const std::vector<std::string>& parts) {
  try {
    load();
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

class BrokenFolder : public ::testing::Test {
 protected:
  void write(const std::string& name, const std::string& text) { write_text(dir_ / name, text); }
  void expect_load_error(const std::vector<std::string>& parts) {
    expect_error_naming([&] { Tokenizer::from_dir(dir_.path()); }, parts);
  }
  TempDir dir_;
  const std::string vocab_ = R"({"a": 0, "b": 1, "ab": 2, "<|endoftext|>": 3})";
};

TEST_F(BrokenFolder, NoTokenizerFiles) { expect_load_error({dir_.path().string(), "vocab.json", "tokenizer.json"}); }

TEST_F(BrokenFolder, MissingDirectory) {
  expect_error_naming([&] { Tokenizer::from_dir(dir_ / "nope"); }, {"nope"});
}

TEST_F(BrokenFolder, MissingMerges) {
  write("vocab.json", vocab_);
  expect_load_error({"merges.txt"});
}

TEST_F(BrokenFolder, MissingVocab) {
  write("merges.txt", "#version: 0.2\na b\n");
  expect_load_error({"vocab.json"});
}

TEST_F(BrokenFolder, FromFilesMissingFile) {
  write("vocab.json", vocab_);
  expect_error_naming([&] { Tokenizer::from_files(dir_ / "vocab.json", dir_ / "m.txt"); }, {"m.txt"});
}

TEST_F(BrokenFolder, MalformedVocabJson) {
  write("vocab.json", R"({"a": 0, "b": )");
  write("merges.txt", "#version: 0.2\n");
  expect_load_error({"vocab.json", "malformed JSON"});
  // A number past double is the JSON library's out_of_range, not a parse_error (found by fuzz_tokenizer_files).
  write("vocab.json", R"({"a": 0, "b": 1e999})");
  expect_load_error({"vocab.json", "malformed JSON"});
}

TEST_F(BrokenFolder, VocabIdNotAnInteger) {
  write("vocab.json", R"({"a": "zero"})");
  write("merges.txt", "#version: 0.2\n");
  expect_load_error({"vocab.json", "\"a\""});
}

TEST_F(BrokenFolder, NegativeOrHugeVocabId) {
  write("merges.txt", "#version: 0.2\n");
  write("vocab.json", R"({"a": -1})");
  expect_load_error({"vocab.json", "\"a\"", "out of range"});
  write("vocab.json", R"({"a": 3000000000})");
  expect_load_error({"vocab.json", "\"a\"", "out of range"});
}

TEST_F(BrokenFolder, DuplicateIdsInVocab) {
  write("vocab.json", R"({"a": 0, "b": 0})");
  write("merges.txt", "#version: 0.2\n");
  expect_load_error({"vocab.json", "duplicate id 0"});
}

TEST_F(BrokenFolder, MergeLineWithThreeSymbols) {
  write("vocab.json", vocab_);
  write("merges.txt", "#version: 0.2\na b\na b c\n");
  expect_load_error({"merges.txt:3", "two symbols"});
}

TEST_F(BrokenFolder, MergeLineWithOneSymbol) {
  write("vocab.json", vocab_);
  write("merges.txt", "#version: 0.2\nab\n");
  expect_load_error({"merges.txt:2"});
}

TEST_F(BrokenFolder, MergePartNotInVocab) {
  write("vocab.json", vocab_);
  write("merges.txt", "#version: 0.2\na b\nab c\n");
  expect_load_error({"merges.txt:3", "\"c\"", "not in the vocabulary"});
}

TEST_F(BrokenFolder, MergeResultNotInVocab) {
  write("vocab.json", vocab_);
  write("merges.txt", "#version: 0.2\nb a\n");
  expect_load_error({"merges.txt:2", "\"ba\"", "result"});
}

TEST_F(BrokenFolder, MalformedTokenizerJson) {
  write("tokenizer.json", "{\"model\": [");
  expect_load_error({"tokenizer.json", "malformed JSON"});
}

TEST_F(BrokenFolder, TokenizerJsonWithoutVocab) {
  write("tokenizer.json", R"({"model": {"type": "BPE", "merges": []}})");
  expect_load_error({"tokenizer.json", "model.vocab"});
}

TEST_F(BrokenFolder, TokenizerJsonNotBpe) {
  write("tokenizer.json", R"({"model": {"type": "WordPiece", "vocab": {}, "merges": []}})");
  expect_load_error({"tokenizer.json", "WordPiece"});
}

TEST_F(BrokenFolder, TokenizerJsonBadMerge) {
  write("tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b", ["a"]]}})");
  expect_load_error({"tokenizer.json", "model.merges[1]"});
}

TEST_F(BrokenFolder, TokenizerJsonAddedTokenReusesAnId) {
  write("tokenizer.json",
        R"({"added_tokens": [{"id": 1, "content": "<x>", "special": true}],
            "model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []}})");
  expect_load_error({"tokenizer.json", "duplicate id 1"});
}

TEST_F(BrokenFolder, MalformedTokenizerConfig) {
  write("vocab.json", vocab_);
  write("merges.txt", "#version: 0.2\na b\n");
  write("tokenizer_config.json", "{\"model_max_length\": ");
  expect_load_error({"tokenizer_config.json", "malformed JSON"});
}

TEST_F(BrokenFolder, TokenizerConfigWrongType) {
  write("vocab.json", vocab_);
  write("merges.txt", "#version: 0.2\na b\n");
  write("tokenizer_config.json", R"({"clean_up_tokenization_spaces": "yes"})");
  expect_load_error({"tokenizer_config.json", "clean_up_tokenization_spaces"});
}

// HF's fast tokenizer (AutoTokenizer's default) decodes an id past the vocabulary as nothing:
// GPT-J's 50400 output rows can produce ids 50257-50399 that GPT-2's tokenizer has no token for.
TEST(TokenizerErrors, DecodeSkipsIdsPastTheVocabularyAndRejectsNegativeOnes) {
  const Tokenizer& tok = gpt2_tokenizer();
  EXPECT_EQ(tok.decode({15496, 50257, 50399, 995}), "Hello world");
  EXPECT_EQ(tok.decode({50288}), "");
  EXPECT_EQ(tok.decode({15496, 50288, 50256}, /*skip_special_tokens=*/true), "Hello");
  EXPECT_THROW(tok.decode({-1}), Error);
  EXPECT_THROW(tok.id_to_token(50257), Error);
  EXPECT_EQ(tok.token_to_id("no such token"), std::nullopt);
}

TEST(TokenizerErrors, EncodeRejectsInvalidUtf8) {
  EXPECT_THROW(gpt2_tokenizer().encode("caf\xC3"), Error);
}

// Round trip on text outside the fixtures: byte-level BPE is lossless for any valid UTF-8.
TEST(TokenizerRoundTrip, UnicodeTextSurvivesEncodeDecode) {
  const Tokenizer& tok = gpt2_tokenizer();
  using namespace std::string_literals;
  for (const std::string& text : {"naïve café Ωμέγα 東京 ١٢٣"s, "a \u0085b\x1c\u2028 z"s, "x\0y\x7f\t\r\n"s}) {
    EXPECT_EQ(tok.decode(tok.encode(text), false, false), text);
  }
}

}  // namespace
}  // namespace lmforge::test
