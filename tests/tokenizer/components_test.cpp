// The tokenizer's building blocks, each against the definition it must follow: Python's UTF-8
// "replace" decoder, GPT-2's byte table, the `regex`-module pre-tokenizer pattern, HF's clean-up
// chain and HF's BPE merge loop.
#include <gtest/gtest.h>

#include "lmforge/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/text_ops.h"
#include "tokenizer/tokenizer_test_util.h"
#include "tokenizer/utf8.h"

namespace lmforge::test {
namespace {

using namespace lmforge::tokenizer;
const std::string kFFFD = "\xEF\xBF\xBD";

// Expected strings are what CPython's b.decode("utf-8", "replace") returns for these bytes.
TEST(Utf8Replace, OneReplacementPerMaximalInvalidSubpart) {
  EXPECT_EQ(decode_utf8_replace("\xF0\x9F\x98"), kFFFD);                         // truncated 4-byte
  EXPECT_EQ(decode_utf8_replace("\xE0\x80\x80"), kFFFD + kFFFD + kFFFD);          // overlong
  EXPECT_EQ(decode_utf8_replace("\xED\xA0\x80"), kFFFD + kFFFD + kFFFD);          // surrogate
  EXPECT_EQ(decode_utf8_replace("\xF4\x90\x80\x80"), kFFFD + kFFFD + kFFFD + kFFFD);  // > U+10FFFF
  EXPECT_EQ(decode_utf8_replace("\xC0\xAF"), kFFFD + kFFFD);
  EXPECT_EQ(decode_utf8_replace("\xE2\x82" "A"), kFFFD + "A");
  EXPECT_EQ(decode_utf8_replace("\xF8"), kFFFD);
  EXPECT_EQ(decode_utf8_replace("\xF0\x9F\x98\x80\x80"), "\xF0\x9F\x98\x80" + kFFFD);
  EXPECT_EQ(decode_utf8_replace("\xF1\x80\x80\xE1\x80\xC2"), kFFFD + kFFFD + kFFFD);
  EXPECT_EQ(decode_utf8_replace("a\xFF" "b"), "a" + kFFFD + "b");
  EXPECT_EQ(decode_utf8_replace("\xE2\x82\xAC"), "\xE2\x82\xAC");
}

TEST(Utf8, FindInvalidReportsTheFirstBadOffset) {
  EXPECT_EQ(find_invalid_utf8("caf\xC3\xA9"), std::nullopt);
  EXPECT_EQ(find_invalid_utf8("ab\xC3"), 2u);
  EXPECT_EQ(find_invalid_utf8("a\xED\xA0\x80"), 1u);
}

// GPT-2's table: printable Latin-1 keeps its code point, the other bytes take U+0100.. in order.
TEST(ByteLevel, Gpt2ByteTable) {
  EXPECT_EQ(byte_to_char('A'), U'A');
  EXPECT_EQ(byte_to_char(0x00), 0x100u);
  EXPECT_EQ(byte_to_char(' '), 0x120u);   // "Ġ"
  EXPECT_EQ(byte_to_char('\n'), 0x10Au);  // "Ċ"
  EXPECT_EQ(byte_to_char(0x7F), 0x121u);
  EXPECT_EQ(byte_to_char(0xAD), 0x143u);
  EXPECT_EQ(byte_to_char(0xE9), 0xE9u);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(char_to_byte(byte_to_char(static_cast<unsigned char>(b))), b);
  EXPECT_EQ(char_to_byte(0x144), std::nullopt);
  EXPECT_EQ(bytes_to_token_string(" world"), "\xC4\xA0world");
}

std::vector<std::string> split(const std::string& text) {
  static const PreTokenizer pre;
  std::vector<std::string> out;
  for (auto piece : pre.split(text)) out.emplace_back(piece);
  return out;
}

// Expected pieces are what the `regex` package's findall returns for GPT-2's pattern. An ASCII-only
// \w-style class would cut "naïve" after "na" and would not see Greek, CJK or Arabic digits.
TEST(PreTokenizer, UsesUnicodeLetterAndNumberClasses) {
  EXPECT_EQ(split("naïve café Ωμέγα 東京 ١٢٣"),
            (std::vector<std::string>{"naïve", " café", " Ωμέγα", " 東京", " ١٢٣"}));
  EXPECT_EQ(split("Ⅻ ½ x²"), (std::vector<std::string>{"Ⅻ", " ½", " x", "²"}));
  // A combining mark is neither letter nor number.
  EXPECT_EQ(split("Ωμέγα\u0301 x"), (std::vector<std::string>{"Ωμέγα", "\u0301", " x"}));
}

// `regex`'s \s is Unicode White_Space: it includes NEL (U+0085) but not U+001C.
TEST(PreTokenizer, WhitespaceIsUnicodeWhiteSpace) {
  EXPECT_EQ(split("a \u0085b"), (std::vector<std::string>{"a", " ", "\u0085", "b"}));
  EXPECT_EQ(split("x \x1cy"), (std::vector<std::string>{"x", " \x1c", "y"}));
  EXPECT_EQ(split("a  \u00a0b"), (std::vector<std::string>{"a", "  ", "\u00a0", "b"}));
  EXPECT_EQ(split("x \u3000 y\u2028"), (std::vector<std::string>{"x", " \u3000", " y", "\u2028"}));
  // U+180E stopped being a space in Unicode 6.3; PCRE2's own \s still counts it.
  EXPECT_EQ(split("a \u180eb"), (std::vector<std::string>{"a", " \u180e", "b"}));
}

// Letters / digits newer than PCRE2's Unicode tables (Kawi, Unicode 15) are still letters / digits,
// as in the `regex` package; otherwise the apostrophe would be swallowed into a symbol run.
TEST(PreTokenizer, LettersFromRecentUnicodeVersions) {
  EXPECT_EQ(split("\U00011F2A's \U00011F50\U00011F51x"),
            (std::vector<std::string>{"\U00011F2A", "'s", " \U00011F50\U00011F51", "x"}));
}

TEST(PreTokenizer, ContractionsAndTrailingWhitespace) {
  EXPECT_EQ(split("it's  ok "), (std::vector<std::string>{"it", "'s", " ", " ok", " "}));
  EXPECT_EQ(split("IT'S"), (std::vector<std::string>{"IT", "'", "S"}));
}

// Python's str.replace chain from HF's clean_up_tokenization, in its order.
TEST(TextOps, CleanUpTokenizationFollowsHfOrder) {
  EXPECT_EQ(clean_up_tokenization("a . b , c ? d ! e"), "a. b, c? d! e");
  EXPECT_EQ(clean_up_tokenization("He said ' hi ' and n't"), "He said'hi'andn't");
  EXPECT_EQ(clean_up_tokenization("'s 't 're 've 'm 'll 'd"), "'s 't're've'm 'll 'd");
  EXPECT_EQ(replace_all("aaaa", "aa", "b"), "bb");
}

TEST(TextOps, StripUsesPythonWhitespace) {
  EXPECT_EQ(lstrip_space(" \t\u3000x \u00a0"), "x \u00a0");
  EXPECT_EQ(rstrip_space(" x \u00a0\x1c"), " x");
  EXPECT_EQ(rstrip_space("\u2003"), "");
}

// A folder with a hand-made vocabulary, to pin the merge loop on inputs where the order matters.
Tokenizer tiny_tokenizer(const TempDir& dir, const std::string& vocab, const std::string& merges) {
  write_text(dir / "vocab.json", vocab);
  write_text(dir / "merges.txt", merges);
  return Tokenizer::from_dir(dir.path());
}

// HF's bpe() merges every occurrence of the best pair left to right, so "aaa" -> "aa" + "a".
TEST(Bpe, MergesAllOccurrencesLeftToRight) {
  TempDir dir;
  Tokenizer tok = tiny_tokenizer(dir, R"({"a": 0, "aa": 1, "<|endoftext|>": 2})", "#version: 0.2\na a\n");
  EXPECT_EQ(tok.encode("aaa"), (std::vector<int32_t>{1, 0}));
  EXPECT_EQ(tok.encode("aaaa"), (std::vector<int32_t>{1, 1}));
}

// The lowest rank wins even when another pair comes first in the word.
TEST(Bpe, LowestRankMergesFirst) {
  TempDir dir;
  Tokenizer tok = tiny_tokenizer(dir, R"({"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4, "<|endoftext|>": 5})",
                                 "#version: 0.2\nb c\na b\n");
  EXPECT_EQ(tok.encode("abc"), (std::vector<int32_t>{0, 4}));
  EXPECT_EQ(tok.encode("ab"), (std::vector<int32_t>{3}));
}

// A byte with no single-character token becomes HF's encoder.get(unk_token).
TEST(Bpe, UnknownByteMapsToUnkToken) {
  TempDir dir;
  Tokenizer tok = tiny_tokenizer(dir, R"({"a": 0, "<|endoftext|>": 1})", "#version: 0.2\n");
  EXPECT_EQ(tok.encode("aza"), (std::vector<int32_t>{0, 1, 0}));
}

TEST(Bpe, UnknownByteWithoutUnkTokenIsAnError) {
  TempDir dir;
  Tokenizer tok = tiny_tokenizer(dir, R"({"a": 0})", "#version: 0.2\n");
  EXPECT_THROW(tok.encode("z"), Error);
  // <|endoftext|> is not in this vocabulary, so HF adds it after the last id.
  EXPECT_EQ(tok.vocab_size(), 2);
  EXPECT_EQ(tok.eos_id(), 1);
}

}  // namespace
}  // namespace lmforge::test
