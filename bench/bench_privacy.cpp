// Privacy guard at the scale of the reference kit's data set: a 1 M-row headline CSV against 10 k
// generated rows. Times reading the CSV, building the n-gram index, the 10 k checks, and the
// report's longest-shared-run scan.
//
//   bench_privacy [--rows 1000000] [--checks 10000] [--csv /tmp/lmforge_bench_privacy_1000000.csv]
//
// The CSV (synthetic headlines: Zipf-distributed words from a 30 k vocabulary, 4-12 words per
// row) is written once and reused by later runs.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "lmforge/synth/privacy_guard.h"
#include "lmforge/train/data.h"

using namespace lmforge;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Words shaped like headline words, drawn with a Zipf(1) law as real text is.
class HeadlineWords {
 public:
  explicit HeadlineWords(uint64_t seed) : rng_(seed) {
    const char* syllables[] = {"ba", "ro", "ki", "tan", "mel", "sor", "vi", "lo", "dar", "ne", "pu", "gre", "sta", "fi"};
    for (int i = 0; i < kVocab; ++i) {
      std::string w;
      for (int n = i; w.empty() || n > 0; n /= 14) w += syllables[n % 14];
      vocab_.push_back(w);
      total_ += 1.0 / (i + 1);
      cumulative_.push_back(total_);
    }
  }
  const std::string& word() {
    const double u = rng_.uniform() * total_;
    return vocab_[static_cast<size_t>(std::lower_bound(cumulative_.begin(), cumulative_.end(), u) - cumulative_.begin())];
  }
  std::string headline() {
    const int len = 4 + static_cast<int>(rng_.below(9));
    std::string s;
    for (int i = 0; i < len; ++i) s += (i ? " " : "") + word();
    return s;
  }
  uint64_t below(uint64_t n) { return rng_.below(n); }

 private:
  static constexpr int kVocab = 30000;
  Rng rng_;
  std::vector<std::string> vocab_;
  std::vector<double> cumulative_;
  double total_ = 0;
};

void write_csv(const std::string& path, int64_t rows) {
  HeadlineWords words(1);
  std::ofstream out(path + ".tmp");
  out << "publish_date,headline_text\n";
  for (int64_t i = 0; i < rows; ++i) out << 20030219 + i % 10000 << "," << words.headline() << "\n";
  out.close();
  std::rename((path + ".tmp").c_str(), path.c_str());
}

// Mostly new rows; 1 % exact copies (re-cased, punctuated) and 1 % with an 8-word copied run.
std::vector<std::string> generated_rows(const std::vector<std::string>& reference, int n) {
  HeadlineWords words(2);
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    const std::string& ref = reference[words.below(reference.size())];
    if (i % 100 == 0) out.push_back("  " + ref + "!");
    else if (i % 100 == 1) out.push_back(words.headline() + " " + ref + " " + words.headline());
    else out.push_back(words.headline());
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t rows = 1000000;
  int checks = 10000;
  std::string csv;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--rows")) rows = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--checks")) checks = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--csv")) csv = argv[i + 1];
  }
  if (csv.empty()) csv = "/tmp/lmforge_bench_privacy_" + std::to_string(rows) + ".csv";

  if (!std::filesystem::exists(csv)) {
    const auto t = Clock::now();
    write_csv(csv, rows);
    std::printf("wrote %s (%lld rows) in %.2f s\n", csv.c_str(), static_cast<long long>(rows), since(t));
  }

  auto t = Clock::now();
  DataOptions opt;
  opt.data_path = csv;
  opt.max_rows = 0;
  const std::vector<std::string> reference = read_text_rows(opt).texts;
  const double read_s = since(t);

  t = Clock::now();
  synth::PrivacyGuard guard(8);
  guard.add_references(reference);
  const double build_s = since(t);

  const std::vector<std::string> generated = generated_rows(reference, checks);
  t = Clock::now();
  int exact = 0, ngram = 0;
  for (const auto& row : generated) {
    const auto v = guard.check(row);
    exact += v.reason == synth::CopyReason::ExactCopy;
    ngram += v.reason == synth::CopyReason::NgramCopy;
  }
  const double check_s = since(t);

  t = Clock::now();
  const std::vector<int> longest = synth::longest_shared_ngrams(generated, reference);
  const double scan_s = since(t);
  int64_t longest_sum = 0;
  for (int l : longest) longest_sum += l;

  std::printf("reference: %zu rows, %zu distinct rows, %zu distinct 8-grams\n", reference.size(), guard.distinct_rows(),
              guard.distinct_ngrams());
  std::printf("read CSV             %8.3f s\n", read_s);
  std::printf("build index          %8.3f s\n", build_s);
  std::printf("%d checks         %8.3f s  (%.1f us/row; %d exact copies, %d 8-gram copies)\n", checks, check_s,
              1e6 * check_s / checks, exact, ngram);
  std::printf("longest-run scan     %8.3f s  (report overlap histogram; mean longest run %.2f words)\n", scan_s,
              static_cast<double>(longest_sum) / checks);
  std::printf("index build + checks %8.3f s\n", build_s + check_s);
  return 0;
}
