// The Porter stemmer as NLTK's PorterStemmer implements it in its default NLTK_EXTENSIONS mode
// (nltk 3.8), which is what rouge-score uses. Written from the algorithm's description (Porter
// 1980) plus the documented NLTK departures, marked "NLTK:" below. Words are lowercase ASCII
// letters and digits (rouge-score's tokens); a digit counts as a consonant.
#include <array>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "lmforge/eval/rouge.h"

namespace lmforge::eval {
namespace {

bool ends_with(std::string_view w, std::string_view suffix) {
  return w.size() >= suffix.size() && w.substr(w.size() - suffix.size()) == suffix;
}

std::string without_suffix(std::string_view w, std::string_view suffix) {
  return std::string(w.substr(0, w.size() - suffix.size()));
}

// A consonant is a letter other than a, e, i, o, u, and other than a y preceded by a consonant.
bool is_consonant(std::string_view w, size_t i) {
  switch (w[i]) {
    case 'a': case 'e': case 'i': case 'o': case 'u': return false;
    case 'y': return i == 0 || !is_consonant(w, i - 1);
    default: return true;
  }
}

// m in [C](VC){m}[V]: the number of vowel-to-consonant transitions.
int measure(std::string_view w) {
  int m = 0;
  for (size_t i = 1; i < w.size(); ++i)
    if (!is_consonant(w, i - 1) && is_consonant(w, i)) ++m;
  return m;
}

bool contains_vowel(std::string_view w) {
  for (size_t i = 0; i < w.size(); ++i)
    if (!is_consonant(w, i)) return true;
  return false;
}

bool ends_double_consonant(std::string_view w) {
  return w.size() >= 2 && w.back() == w[w.size() - 2] && is_consonant(w, w.size() - 1);
}

// *o: ends consonant-vowel-consonant, the last not w, x or y. NLTK: also a two-letter
// vowel-consonant word, so "are", "eve", "ice" keep their e.
bool ends_cvc(std::string_view w) {
  const size_t n = w.size();
  if (n >= 3 && is_consonant(w, n - 3) && !is_consonant(w, n - 2) && is_consonant(w, n - 1) && w.back() != 'w' &&
      w.back() != 'x' && w.back() != 'y')
    return true;
  return n == 2 && !is_consonant(w, 0) && is_consonant(w, 1);
}

using StemCondition = std::function<bool(std::string_view stem)>;
struct SuffixRule {
  std::string_view suffix, replacement;
  StemCondition condition;  // empty = unconditional
};

// The first rule whose suffix the word ends with decides: its replacement when its condition holds
// on the remaining stem, otherwise the word unchanged (later rules are not tried).
std::string apply_first_rule(const std::string& w, const std::vector<SuffixRule>& rules) {
  for (const SuffixRule& r : rules) {
    if (!ends_with(w, r.suffix)) continue;
    const std::string stem = without_suffix(w, r.suffix);
    if (!r.condition || r.condition(stem)) return stem + std::string(r.replacement);
    return w;
  }
  return w;
}

bool positive_measure(std::string_view stem) { return measure(stem) > 0; }
bool measure_above_one(std::string_view stem) { return measure(stem) > 1; }

std::string step1a(const std::string& w) {
  if (ends_with(w, "ies") && w.size() == 4) return without_suffix(w, "ies") + "ie";  // NLTK: dies -> die
  return apply_first_rule(w, {{"sses", "ss", {}}, {"ies", "i", {}}, {"ss", "ss", {}}, {"s", "", {}}});
}

// What follows a successful -ed / -ing removal.
std::string step1b_tidy(const std::string& stem) {
  if (ends_with(stem, "at") || ends_with(stem, "bl") || ends_with(stem, "iz")) return stem + "e";
  if (ends_double_consonant(stem)) {
    const char last = stem.back();
    return (last == 'l' || last == 's' || last == 'z') ? stem : stem.substr(0, stem.size() - 1);
  }
  return (measure(stem) == 1 && ends_cvc(stem)) ? stem + "e" : stem;
}

std::string step1b(const std::string& w) {
  if (ends_with(w, "ied")) return without_suffix(w, "ied") + (w.size() == 4 ? "ie" : "i");  // NLTK: died -> die
  if (ends_with(w, "eed")) {
    const std::string stem = without_suffix(w, "eed");
    return measure(stem) > 0 ? stem + "ee" : w;
  }
  for (std::string_view suffix : {std::string_view("ed"), std::string_view("ing")}) {
    if (!ends_with(w, suffix)) continue;
    const std::string stem = without_suffix(w, suffix);
    if (contains_vowel(stem)) return step1b_tidy(stem);
  }
  return w;
}

// NLTK: y -> i only after a consonant that is not the whole stem (happy -> happi, enjoy, sky kept).
std::string step1c(const std::string& w) {
  if (!ends_with(w, "y")) return w;
  const std::string stem = without_suffix(w, "y");
  return (stem.size() > 1 && is_consonant(stem, stem.size() - 1)) ? stem + "i" : w;
}

std::string step2(const std::string& w) {
  // NLTK: -alli -> -al first, then step 2 again on the result.
  if (ends_with(w, "alli") && positive_measure(without_suffix(w, "alli"))) return step2(without_suffix(w, "alli") + "al");
  const StemCondition m0 = positive_measure;
  // NLTK: "logi" -> "log" keeps the l in the stem whose measure is tested (geo-logi, theo-logi).
  const StemCondition logi = [&w](std::string_view) { return positive_measure(std::string_view(w).substr(0, w.size() - 3)); };
  return apply_first_rule(w, {{"ational", "ate", m0}, {"tional", "tion", m0}, {"enci", "ence", m0}, {"anci", "ance", m0},
                              {"izer", "ize", m0},     {"bli", "ble", m0},    {"alli", "al", m0},    {"entli", "ent", m0},
                              {"eli", "e", m0},        {"ousli", "ous", m0},  {"ization", "ize", m0}, {"ation", "ate", m0},
                              {"ator", "ate", m0},     {"alism", "al", m0},   {"iveness", "ive", m0}, {"fulness", "ful", m0},
                              {"ousness", "ous", m0},  {"aliti", "al", m0},   {"iviti", "ive", m0},  {"biliti", "ble", m0},
                              {"fulli", "ful", m0},    {"logi", "log", logi}});
}

std::string step3(const std::string& w) {
  const StemCondition m0 = positive_measure;
  return apply_first_rule(w, {{"icate", "ic", m0}, {"ative", "", m0}, {"alize", "al", m0}, {"iciti", "ic", m0},
                              {"ical", "ic", m0}, {"ful", "", m0}, {"ness", "", m0}});
}

std::string step4(const std::string& w) {
  const StemCondition m1 = measure_above_one;
  const StemCondition ion = [](std::string_view s) { return measure(s) > 1 && (s.back() == 's' || s.back() == 't'); };
  return apply_first_rule(w, {{"al", "", m1},   {"ance", "", m1}, {"ence", "", m1}, {"er", "", m1},   {"ic", "", m1},
                              {"able", "", m1}, {"ible", "", m1}, {"ant", "", m1},  {"ement", "", m1}, {"ment", "", m1},
                              {"ent", "", m1},  {"ion", "", ion}, {"ou", "", m1},   {"ism", "", m1},  {"ate", "", m1},
                              {"iti", "", m1},  {"ous", "", m1},  {"ive", "", m1},  {"ize", "", m1}});
}

// (m > 1) E -> ;  (m = 1 and not *o) E -> . Both conditions are tried (unlike apply_first_rule).
std::string step5a(const std::string& w) {
  if (!ends_with(w, "e")) return w;
  const std::string stem = without_suffix(w, "e");
  const int m = measure(stem);
  return (m > 1 || (m == 1 && !ends_cvc(stem))) ? stem : w;
}

// (m > 1 and *d and *L) -> single letter, the measure taken with one l still there.
std::string step5b(const std::string& w) {
  return (ends_with(w, "ll") && measure(std::string_view(w).substr(0, w.size() - 1)) > 1) ? w.substr(0, w.size() - 1) : w;
}

// NLTK: irregular forms mapped directly, bypassing the steps.
const std::unordered_map<std::string_view, std::string_view>& irregular_forms() {
  static const std::unordered_map<std::string_view, std::string_view> forms = {
      {"sky", "sky"},         {"skies", "sky"},       {"dying", "die"},     {"lying", "lie"},
      {"tying", "tie"},       {"news", "news"},       {"innings", "inning"}, {"inning", "inning"},
      {"outings", "outing"},  {"outing", "outing"},   {"cannings", "canning"}, {"canning", "canning"},
      {"howe", "howe"},       {"proceed", "proceed"}, {"exceed", "exceed"}, {"succeed", "succeed"}};
  return forms;
}

}  // namespace

std::string porter_stem(const std::string& word) {
  if (auto it = irregular_forms().find(word); it != irregular_forms().end()) return std::string(it->second);
  if (word.size() <= 2) return word;  // NLTK/Martin: one- and two-letter words are left alone
  std::string w = step1a(word);
  w = step1b(w);
  w = step1c(w);
  w = step2(w);
  w = step3(w);
  w = step4(w);
  w = step5a(w);
  return step5b(w);
}

}  // namespace lmforge::eval
