// BLEU as sacrebleu 2.x computes it (see include/lmforge/eval/bleu.h and docs/EVAL.md).
#include "lmforge/eval/bleu.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <numeric>
#include <unordered_map>

#include "eval/text.h"
#include "lmforge/error.h"

namespace lmforge::eval {
namespace {

using CharPredicate = std::function<bool(char32_t)>;

// Python str.replace(from, to) on code points (non-overlapping, left to right).
std::u32string replace_all(std::u32string text, std::u32string_view from, std::u32string_view to) {
  std::u32string out;
  size_t pos = 0;
  for (size_t hit; (hit = text.find(from, pos)) != std::u32string::npos; pos = hit + from.size()) {
    out.append(text, pos, hit - pos);
    out.append(to);
  }
  out.append(text, pos, std::u32string::npos);
  return out;
}

// re.sub(r'(X)', r' \1 ', s) for a one-character class X.
std::u32string space_around(std::u32string_view text, const CharPredicate& cls) {
  std::u32string out;
  for (char32_t c : text) {
    if (cls(c)) {
      out.push_back(U' ');
      out.push_back(c);
      out.push_back(U' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// re.sub(r'(A)(B)', r'\1 \2 ', s) (space_before_first = false) or r' \1 \2' (true): matches are
// two characters long and do not overlap, scanning left to right as Python's re does.
std::u32string space_pairs(std::u32string_view text, const CharPredicate& first, const CharPredicate& second,
                           bool space_before_first) {
  std::u32string out;
  size_t i = 0;
  while (i < text.size()) {
    if (i + 1 < text.size() && first(text[i]) && second(text[i + 1])) {
      if (space_before_first) out.push_back(U' ');
      out.push_back(text[i]);
      out.push_back(U' ');
      out.push_back(text[i + 1]);
      if (!space_before_first) out.push_back(U' ');
      i += 2;
    } else {
      out.push_back(text[i++]);
    }
  }
  return out;
}

bool is_ascii_digit(char32_t c) { return c >= U'0' && c <= U'9'; }
bool is_not_ascii_digit(char32_t c) { return !is_ascii_digit(c); }
bool is_period_or_comma(char32_t c) { return c == U'.' || c == U','; }

// The ASCII symbols 13a always separates: [\{-\~\[-\` -\&\(-\+\:-\@\/].
bool is_13a_symbol(char32_t c) {
  return (c >= 0x7B && c <= 0x7E) || (c >= 0x5B && c <= 0x60) || (c >= 0x20 && c <= 0x26) ||
         (c >= 0x28 && c <= 0x2B) || (c >= 0x3A && c <= 0x40) || c == U'/';
}

std::vector<std::string> split_to_utf8(std::u32string_view text) {
  std::vector<std::string> tokens;
  for (const std::u32string& part : python_split(text)) tokens.push_back(to_utf8(part));
  return tokens;
}

std::vector<std::string> tokenize_13a_code_points(std::u32string line) {
  line = replace_all(std::move(line), U"<skipped>", U"");
  line = replace_all(std::move(line), U"-\n", U"");
  line = replace_all(std::move(line), U"\n", U" ");
  if (line.find(U'&') != std::u32string::npos) {  // the four entities mteval unescapes (not &apos;)
    line = replace_all(std::move(line), U"&quot;", U"\"");
    line = replace_all(std::move(line), U"&amp;", U"&");
    line = replace_all(std::move(line), U"&lt;", U"<");
    line = replace_all(std::move(line), U"&gt;", U">");
  }
  line.insert(line.begin(), U' ');  // 13a pads the line with a space on each side
  line.push_back(U' ');
  line = space_around(line, is_13a_symbol);
  line = space_pairs(line, is_not_ascii_digit, is_period_or_comma, false);  // "a." -> "a . "
  line = space_pairs(line, is_period_or_comma, is_not_ascii_digit, true);   // ".a" -> " . a"
  line = space_pairs(line, is_ascii_digit, [](char32_t c) { return c == U'-'; }, false);
  return split_to_utf8(line);
}

std::vector<std::string> tokenize_intl(std::u32string_view line) {
  auto not_number = [](char32_t c) { return !is_number(c); };
  std::u32string s = space_pairs(line, not_number, is_punctuation, false);
  s = space_pairs(s, is_punctuation, not_number, true);
  s = space_around(s, is_symbol);
  return split_to_utf8(s);
}

std::vector<std::string> tokenize_chars(std::u32string_view line) {
  std::vector<std::string> tokens;
  for (char32_t c : line)
    if (!is_space(c)) tokens.push_back(to_utf8(std::u32string_view(&c, 1)));
  return tokens;
}

// --- n-gram statistics ------------------------------------------------------------------------

// An n-gram of interned token ids; unused slots are -1.
struct NGram {
  std::array<int32_t, kBleuMaxOrder> ids;
  bool operator==(const NGram&) const = default;
};
struct NGramHash {
  size_t operator()(const NGram& g) const {
    size_t h = 1469598103934665603ull;
    for (int32_t id : g.ids) h = (h ^ static_cast<uint32_t>(id)) * 1099511628211ull;
    return h;
  }
};
using NGramCounts = std::unordered_map<NGram, int64_t, NGramHash>;

// Token strings -> small ids, shared by a hypothesis and its references.
class Interner {
 public:
  std::vector<int32_t> ids(const std::vector<std::string>& tokens) {
    std::vector<int32_t> out;
    out.reserve(tokens.size());
    for (const std::string& t : tokens) out.push_back(map_.try_emplace(t, static_cast<int32_t>(map_.size())).first->second);
    return out;
  }

 private:
  std::unordered_map<std::string, int32_t> map_;
};

NGramCounts count_ngrams(const std::vector<int32_t>& ids) {
  NGramCounts counts;
  for (int n = 1; n <= kBleuMaxOrder; ++n) {
    for (size_t i = 0; i + n <= ids.size(); ++i) {
      NGram g;
      g.ids.fill(-1);
      std::copy(ids.begin() + i, ids.begin() + i + n, g.ids.begin());
      ++counts[g];
    }
  }
  return counts;
}

int order_of(const NGram& g) {
  return static_cast<int>(std::count_if(g.ids.begin(), g.ids.end(), [](int32_t id) { return id >= 0; }));
}

// sacrebleu's sufficient statistics of one segment (or a sum of them).
struct BleuStats {
  int64_t sys_len = 0, ref_len = 0;
  std::array<int64_t, kBleuMaxOrder> correct{}, total{};
  void add(const BleuStats& o) {
    sys_len += o.sys_len;
    ref_len += o.ref_len;
    for (int n = 0; n < kBleuMaxOrder; ++n) {
      correct[n] += o.correct[n];
      total[n] += o.total[n];
    }
  }
};

// The reference length closest to the hypothesis length; ties go to the shorter reference.
int64_t closest_ref_len(int64_t hyp_len, const std::vector<int64_t>& ref_lens) {
  int64_t best_diff = -1, best_len = -1;
  for (int64_t len : ref_lens) {
    const int64_t diff = std::llabs(hyp_len - len);
    if (best_diff == -1 || diff < best_diff) {
      best_diff = diff;
      best_len = len;
    } else if (diff == best_diff && len < best_len) {
      best_len = len;
    }
  }
  return best_len;
}

BleuStats segment_stats(const std::string& hypothesis, const std::vector<const std::string*>& references,
                        const BleuOptions& opt) {
  Interner interner;
  NGramCounts max_ref_counts;  // per n-gram, the largest count in any one reference (clipping)
  std::vector<int64_t> ref_lens;
  for (const std::string* ref : references) {
    const std::vector<int32_t> ids = interner.ids(tokenize_bleu(*ref, opt.tokenizer, opt.lowercase));
    ref_lens.push_back(static_cast<int64_t>(ids.size()));
    for (const auto& [g, c] : count_ngrams(ids)) max_ref_counts[g] = std::max(max_ref_counts[g], c);
  }
  const std::vector<int32_t> hyp = interner.ids(tokenize_bleu(hypothesis, opt.tokenizer, opt.lowercase));
  BleuStats s;
  s.sys_len = static_cast<int64_t>(hyp.size());
  s.ref_len = closest_ref_len(s.sys_len, ref_lens);
  for (const auto& [g, c] : count_ngrams(hyp)) {
    const int n = order_of(g) - 1;
    s.total[n] += c;
    if (auto it = max_ref_counts.find(g); it != max_ref_counts.end()) s.correct[n] += std::min(c, it->second);
  }
  return s;
}

double default_smooth_value(BleuSmooth smooth) { return smooth == BleuSmooth::kFloor ? 0.1 : 1.0; }

// log() with sacrebleu's floor for zero precisions (so a missing order gives ~0, not NaN).
double bleu_log(double x) { return x == 0.0 ? -9999999999.0 : std::log(x); }

// BLEU.compute_bleu, step by step in the same order (so the doubles agree to the last bit).
BleuScore compute_bleu(const BleuStats& s, const BleuOptions& opt) {
  BleuScore r;
  r.sys_len = s.sys_len;
  r.ref_len = s.ref_len;
  r.ratio = s.ref_len > 0 ? static_cast<double>(s.sys_len) / static_cast<double>(s.ref_len) : 0.0;
  r.counts = s.correct;
  r.totals = s.total;
  if (s.sys_len < s.ref_len)
    r.bp = s.sys_len > 0 ? std::exp(1.0 - static_cast<double>(s.ref_len) / static_cast<double>(s.sys_len)) : 0.0;
  else
    r.bp = 1.0;
  if (std::all_of(s.correct.begin(), s.correct.end(), [](int64_t c) { return c == 0; })) return r;  // score 0

  const double k = opt.smooth_value >= 0 ? opt.smooth_value : default_smooth_value(opt.smooth);
  double smooth_mteval = 1.0;
  int eff_order = kBleuMaxOrder;
  for (int n = 1; n <= kBleuMaxOrder; ++n) {
    double correct = static_cast<double>(s.correct[n - 1]), total = static_cast<double>(s.total[n - 1]);
    if (opt.smooth == BleuSmooth::kAddK && n > 1) {  // sacrebleu reports the smoothed counts
      correct += k;
      total += k;
      r.counts[n - 1] = static_cast<int64_t>(correct);
      r.totals[n - 1] = static_cast<int64_t>(total);
    }
    if (total == 0) break;
    if (opt.effective_order) eff_order = n;
    double& p = r.precisions[n - 1];
    if (correct == 0) {
      if (opt.smooth == BleuSmooth::kExp) {
        smooth_mteval *= 2;
        p = 100.0 / (smooth_mteval * total);
      } else if (opt.smooth == BleuSmooth::kFloor) {
        p = 100.0 * k / total;
      }
    } else {
      p = 100.0 * correct / total;
    }
  }
  double log_sum = 0;
  for (int n = 0; n < eff_order; ++n) log_sum += bleu_log(r.precisions[n]);
  r.score = r.bp * std::exp(log_sum / eff_order);
  return r;
}

std::string format_fixed(double value, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, value);
  return buf;
}

// sacrebleu's names, indexed by the enums' values.
constexpr std::array<const char*, 4> kTokenizerNames = {"13a", "intl", "char", "none"};  // BleuTokenizer
constexpr std::array<const char*, 4> kSmoothNames = {"none", "floor", "add-k", "exp"};    // BleuSmooth

template <typename Enum>
Enum parse_name(const std::string& name, const std::array<const char*, 4>& names, const char* what) {
  for (size_t i = 0; i < names.size(); ++i)
    if (name == names[i]) return static_cast<Enum>(i);
  throw Error(std::string("unknown BLEU ") + what + " \"" + name + "\" (expected " + names[0] + ", " + names[1] + ", " +
              names[2] + " or " + names[3] + ")");
}

}  // namespace

std::vector<std::string> tokenize_bleu(const std::string& line, BleuTokenizer tokenizer, bool lowercase) {
  std::u32string text = to_code_points(line);
  if (lowercase) text = python_lower(text);
  const std::u32string_view stripped = python_rstrip(text);
  switch (tokenizer) {
    case BleuTokenizer::k13a: return tokenize_13a_code_points(std::u32string(stripped));
    case BleuTokenizer::kIntl: return tokenize_intl(stripped);
    case BleuTokenizer::kChar: return tokenize_chars(stripped);
    case BleuTokenizer::kNone: return split_to_utf8(stripped);
  }
  return {};
}

std::vector<std::string> tokenize_13a(const std::string& line) {
  return tokenize_13a_code_points(to_code_points(line));
}

BleuTokenizer parse_bleu_tokenizer(const std::string& name) {
  return parse_name<BleuTokenizer>(name, kTokenizerNames, "tokenizer");
}

BleuSmooth parse_bleu_smooth(const std::string& name) { return parse_name<BleuSmooth>(name, kSmoothNames, "smoothing"); }

std::string bleu_signature(const BleuOptions& opt, int num_refs) {
  std::string smooth = kSmoothNames[static_cast<size_t>(opt.smooth)];
  if (opt.smooth == BleuSmooth::kFloor || opt.smooth == BleuSmooth::kAddK) {
    smooth += '[';
    smooth += format_fixed(opt.smooth_value >= 0 ? opt.smooth_value : default_smooth_value(opt.smooth), 2);
    smooth += ']';
  }
  // Appends rather than operator+ chains: GCC 12 warns falsely (-Wrestrict) on "literal" + string&&.
  std::string sig = "nrefs:";
  sig += std::to_string(num_refs);
  sig += opt.lowercase ? "|case:lc" : "|case:mixed";
  sig += opt.effective_order ? "|eff:yes" : "|eff:no";
  sig += "|tok:";
  sig += kTokenizerNames[static_cast<size_t>(opt.tokenizer)];
  sig += "|smooth:";
  sig += smooth;
  sig += "|version:";
  sig += kSacrebleuVersion;
  return sig;
}

BleuScore corpus_bleu(const std::vector<std::string>& hypotheses, const std::vector<std::vector<std::string>>& references,
                      const BleuOptions& options) {
  if (references.empty()) throw Error("BLEU: no reference stream given");
  for (size_t r = 0; r < references.size(); ++r)
    if (references[r].size() != hypotheses.size())
      throw Error("BLEU: reference stream " + std::to_string(r + 1) + " has " + std::to_string(references[r].size()) +
                  " lines but there are " + std::to_string(hypotheses.size()) + " hypotheses");
  BleuStats total;
  std::vector<const std::string*> refs(references.size());
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    for (size_t r = 0; r < references.size(); ++r) refs[r] = &references[r][i];
    total.add(segment_stats(hypotheses[i], refs, options));
  }
  BleuScore score = compute_bleu(total, options);
  score.signature = bleu_signature(options, static_cast<int>(references.size()));
  return score;
}

BleuScore corpus_bleu(const std::vector<std::string>& hypotheses, const std::vector<std::vector<std::string>>& references) {
  return corpus_bleu(hypotheses, references, BleuOptions{});
}

BleuScore sentence_bleu(const std::string& hypothesis, const std::vector<std::string>& references,
                        const BleuOptions& options) {
  if (references.empty()) throw Error("sentence BLEU: no reference given");
  std::vector<const std::string*> refs;
  for (const std::string& r : references) refs.push_back(&r);
  BleuScore score = compute_bleu(segment_stats(hypothesis, refs, options), options);
  score.signature = bleu_signature(options, static_cast<int>(references.size()));
  return score;
}

BleuScore sentence_bleu(const std::string& hypothesis, const std::vector<std::string>& references) {
  BleuOptions options;
  options.effective_order = true;  // sacrebleu.sentence_bleu's default
  return sentence_bleu(hypothesis, references, options);
}

std::string format_bleu(const BleuScore& s) {
  std::string line = "BLEU = ";
  line += format_fixed(s.score, 2);
  for (int n = 0; n < kBleuMaxOrder; ++n) {
    line += n ? '/' : ' ';
    line += format_fixed(s.precisions[n], 1);
  }
  line += " (BP = ";
  line += format_fixed(s.bp, 3);
  line += " ratio = ";
  line += format_fixed(s.ratio, 3);
  line += " hyp_len = ";
  line += std::to_string(s.sys_len);
  line += " ref_len = ";
  line += std::to_string(s.ref_len);
  line += ')';
  return line;
}

}  // namespace lmforge::eval
