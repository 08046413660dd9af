#pragma once
// BLEU exactly as sacrebleu 2.x computes it (sacrebleu.metrics.BLEU): 13a tokenizer, clipped n-gram
// counts against the closest-length reference, brevity penalty, geometric mean of the n-gram
// precisions with "exp" smoothing by default. Scores are on sacrebleu's 0..100 scale.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace lmforge::eval {

inline constexpr int kBleuMaxOrder = 4;

enum class BleuSmooth { kNone, kFloor, kAddK, kExp };
// 13a: mteval-v13a (sacrebleu's default); intl: mteval-v14 international (Unicode punctuation and
// symbols); char: every code point a token; none: split on whitespace only.
enum class BleuTokenizer { k13a, kIntl, kChar, kNone };

struct BleuOptions {
  BleuTokenizer tokenizer = BleuTokenizer::k13a;
  BleuSmooth smooth = BleuSmooth::kExp;
  double smooth_value = -1;      // < 0: sacrebleu's default for the method (floor 0.1, add-k 1)
  bool lowercase = false;
  bool effective_order = false;  // corpus_bleu default; sentence_bleu defaults to true
};

struct BleuScore {
  double score = 0;                     // 0..100
  std::array<double, 4> precisions{};   // percent, after smoothing (as sacrebleu reports them)
  double bp = 0;                        // brevity penalty
  double ratio = 0;                     // sys_len / ref_len
  int64_t sys_len = 0;
  int64_t ref_len = 0;
  std::string signature;                // e.g. "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
  std::array<int64_t, 4> counts{};      // matched n-grams per order (add-k includes the added k for n >= 2)
  std::array<int64_t, 4> totals{};      // hypothesis n-grams per order
};

// The sacrebleu version whose behaviour (and signature string) this implementation follows.
inline constexpr const char* kSacrebleuVersion = "2.6.0";

// references[r][i] is the r-th reference of hypothesis i (sacrebleu's layout: one list per reference stream).
BleuScore corpus_bleu(const std::vector<std::string>& hypotheses, const std::vector<std::vector<std::string>>& references);
BleuScore corpus_bleu(const std::vector<std::string>& hypotheses, const std::vector<std::vector<std::string>>& references,
                      const BleuOptions& options);

// sacrebleu.sentence_bleu: use_effective_order=True, exp smoothing. Thread-safe (no shared state).
BleuScore sentence_bleu(const std::string& hypothesis, const std::vector<std::string>& references);
BleuScore sentence_bleu(const std::string& hypothesis, const std::vector<std::string>& references,
                        const BleuOptions& options);

// sacrebleu's Tokenizer13a (mteval-v13a): the line split into tokens.
std::vector<std::string> tokenize_13a(const std::string& line);
// Any of sacrebleu's tokenizers above, as BLEU applies it (after an optional str.lower(), on the
// right-stripped line).
std::vector<std::string> tokenize_bleu(const std::string& line, BleuTokenizer tokenizer, bool lowercase = false);

// Parses "13a" / "intl" / "char" / "none" and "exp" / "floor" / "add-k" / "none" (sacrebleu's names);
// throws lmforge::Error naming the value otherwise.
BleuTokenizer parse_bleu_tokenizer(const std::string& name);
BleuSmooth parse_bleu_smooth(const std::string& name);

// sacrebleu's signature string for these options and reference count.
std::string bleu_signature(const BleuOptions& options, int num_refs);

// sacrebleu's score line: "BLEU = 31.45 66.7/40.0/25.0/14.3 (BP = 1.000 ratio = 1.000 hyp_len = 6 ref_len = 6)".
std::string format_bleu(const BleuScore& score);

}  // namespace lmforge::eval
