// Token masks: on a hand-made vocabulary (every case visible) and on GPT-2's real vocabulary,
// checked against an independent rule (a token is allowed exactly when its bytes can continue
// the output), not against the trie walk itself.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>

#include "common/fixtures.h"
#include "lmforge/structured/constraint.h"
#include "lmforge/tokenizer/tokenizer.h"

namespace lmforge::structured {
namespace {

bool allowed(const TokenConstraint::Mask& m, int32_t id) { return (m.bits[id >> 6] >> (id & 63)) & 1; }

std::shared_ptr<const TokenConstraint> small(const ConstraintSpec& spec, std::vector<std::string> tokens) {
  return compile_constraint(spec, std::make_shared<const TokenVocabulary>(std::move(tokens)));
}

TEST(Mask, HandMadeVocabulary) {
  // ids:                         0    1     2     3    4      5   6 (special)
  auto c = small({ConstraintKind::Regex, "ab+c"}, {"a", "ab", "bb", "bc", "abc", "c", ""});
  auto m0 = c->mask(c->start());
  EXPECT_TRUE(allowed(*m0, 0));
  EXPECT_TRUE(allowed(*m0, 1));
  EXPECT_TRUE(allowed(*m0, 4));
  EXPECT_FALSE(allowed(*m0, 2));
  EXPECT_FALSE(allowed(*m0, 5));
  EXPECT_FALSE(allowed(*m0, 6));  // empty bytes: never produced by the automaton
  EXPECT_FALSE(m0->accepting);

  const StateId after_ab = c->advance(c->start(), 1);
  auto m1 = c->mask(after_ab);
  EXPECT_TRUE(allowed(*m1, 2));
  EXPECT_TRUE(allowed(*m1, 3));
  EXPECT_TRUE(allowed(*m1, 5));
  EXPECT_FALSE(allowed(*m1, 0));
  EXPECT_FALSE(allowed(*m1, 4));

  const StateId done = c->advance(after_ab, 5);
  auto m2 = c->mask(done);
  EXPECT_TRUE(m2->accepting);
  EXPECT_TRUE(std::all_of(m2->bits.begin(), m2->bits.end(), [](uint64_t w) { return w == 0; }));
  EXPECT_EQ(c->advance(c->start(), 5), Matcher::kDead);
  EXPECT_EQ(c->mask(c->start()), m0);  // cached per state
}

TEST(Mask, SequenceStatesFollowReorderedRows) {
  auto c = small({ConstraintKind::Regex, "(ab|bb)*"}, {"a", "b", "ab"});
  SequenceStates states(c);
  const std::vector<int32_t> row1 = {0, 1, 2}, row2 = {2, 0};
  EXPECT_TRUE(c->mask(states.state_after(row1.data(), 3))->accepting);
  EXPECT_FALSE(c->mask(states.state_after(row2.data(), 2))->accepting);
  EXPECT_TRUE(c->mask(states.state_after(row1.data(), 2))->accepting);
  const std::vector<int32_t> bad = {1, 1, 0, 0};
  EXPECT_EQ(states.state_after(bad.data(), 4), Matcher::kDead);
}

const Tokenizer& gpt2() {
  static const Tokenizer tok = Tokenizer::from_dir(test::data_dir() / "tokenizer");
  return tok;
}

TEST(Mask, SharedConstraintsAreReusedPerSpecAndVocabulary) {
  auto vocab = std::make_shared<const TokenVocabulary>(std::vector<std::string>{"a", "b"});
  auto a = shared_constraint({ConstraintKind::Regex, "a+"}, vocab);
  EXPECT_EQ(shared_constraint({ConstraintKind::Regex, "a+"}, vocab), a);
  EXPECT_NE(shared_constraint({ConstraintKind::Regex, "b+"}, vocab), a);
  EXPECT_NE(shared_constraint({ConstraintKind::Grammar, "root ::= \"a\"+"}, vocab), a);
  EXPECT_NE(shared_constraint({ConstraintKind::Regex, "a+"}, std::make_shared<const TokenVocabulary>(
                                                               std::vector<std::string>{"a", "b"})),
            a);
  for (size_t i = 0; i < kSharedConstraints; ++i) shared_constraint({ConstraintKind::Regex, "x{" + std::to_string(i) + "}"}, vocab);
  EXPECT_NE(shared_constraint({ConstraintKind::Regex, "a+"}, vocab), a);  // pushed out by 16 newer ones
}

TEST(Mask, CacheStartsOverPastItsBound) {
  // A literal of 5000 bytes has a state per position: more states than masks kept.
  auto c = small({ConstraintKind::Regex, std::string(5000, 'a')}, {"a"});
  StateId s = c->start();
  const auto first = c->mask(s);
  for (size_t i = 0; i < kMaxCachedMasks + 10; ++i) {
    s = c->advance(s, 0);
    ASSERT_TRUE(allowed(*c->mask(s), 0));
    ASSERT_LE(c->cached_masks(), kMaxCachedMasks);
  }
  EXPECT_TRUE(allowed(*first, 0));  // a mask handed out earlier stays valid
  EXPECT_NE(c->mask(c->start()), first);  // recomputed after the reset, same content
  EXPECT_EQ(c->mask(c->start())->bits, first->bits);
}

TEST(Mask, Gpt2VocabularyDigits) {
  auto vocab = vocabulary_of(gpt2());
  ASSERT_EQ(vocab->size(), 50257);
  EXPECT_EQ(vocabulary_of(gpt2()), vocab);  // built once
  auto c = compile_constraint({ConstraintKind::Regex, "[0-9]+"}, vocab);
  auto m = c->mask(c->start());
  int n = 0;
  for (int32_t id = 0; id < vocab->size(); ++id) {
    const std::string& b = vocab->bytes(id);
    const bool digits = !b.empty() && std::all_of(b.begin(), b.end(), [](unsigned char ch) { return std::isdigit(ch); });
    ASSERT_EQ(allowed(*m, id), digits) << id << " '" << b << "'";
    n += digits;
  }
  EXPECT_GT(n, 100);
  EXPECT_FALSE(allowed(*m, 50256));  // <|endoftext|> is eos, handled apart from the mask
}

TEST(Mask, Gpt2VocabularyJsonObjectStart) {
  auto c = compile_constraint({ConstraintKind::JsonObject, ""}, vocabulary_of(gpt2()));
  auto m = c->mask(c->start());
  for (const char* ok : {"{", "{\""}) {
    auto id = gpt2().encode(ok);
    ASSERT_EQ(id.size(), 1u) << ok;
    EXPECT_TRUE(allowed(*m, id[0])) << ok;
  }
  for (const char* bad : {" {", "}", "[", "hello", "\""}) {
    auto id = gpt2().encode(bad);
    ASSERT_EQ(id.size(), 1u) << bad;
    EXPECT_FALSE(allowed(*m, id[0])) << bad;
  }
  // Every allowed token starts with '{' and the whole vocabulary was considered.
  for (int32_t id = 0; id < c->vocab_size(); ++id) {
    if (!allowed(*m, id)) continue;
    ASSERT_EQ(vocabulary_of(gpt2())->bytes(id)[0], '{') << id;
  }
}

TEST(Mask, Gpt2Utf8HalvesOfACharacter) {
  // A regex over one non-ASCII character: tokens holding only its first byte are allowed (the
  // next token can finish it), tokens with any other lead byte are not.
  auto vocab = vocabulary_of(gpt2());
  auto c = compile_constraint({ConstraintKind::Regex, "\u00e9+"}, vocab);  // é = C3 A9
  auto m = c->mask(c->start());
  for (int32_t id = 0; id < vocab->size(); ++id) {
    const std::string& b = vocab->bytes(id);
    if (b.empty()) continue;
    bool ok = true;
    for (size_t i = 0; i < b.size(); ++i) ok = ok && static_cast<unsigned char>(b[i]) == (i % 2 == 0 ? 0xC3 : 0xA9);
    ASSERT_EQ(allowed(*m, id), ok) << id;
  }
}

}  // namespace
}  // namespace lmforge::structured
