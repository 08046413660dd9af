// Accuracy, per-class precision / recall and the confusion matrix of a task run. See report.h.
#include "lmforge/tasks/report.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "lmforge/error.h"

namespace lmforge::tasks {

ClassificationReport classification_report(const std::vector<std::string>& labels, const std::vector<int>& gold,
                                           const std::vector<int>& predicted) {
  if (gold.size() != predicted.size()) throw Error("classification_report: gold and predicted differ in length");
  const int n = static_cast<int>(labels.size());
  ClassificationReport r;
  r.labels = labels;
  r.classes.resize(n);
  r.confusion.assign(n, std::vector<int64_t>(n + 1, 0));
  for (size_t i = 0; i < gold.size(); ++i) {
    const int g = gold[i], p = predicted[i];
    if (g < 0) continue;
    if (g >= n || p >= n) throw Error("classification_report: label index out of range");
    ++r.scored;
    ++r.classes[g].support;
    ++r.confusion[g][p < 0 ? n : p];
    if (p < 0) {
      ++r.unmatched;
      continue;
    }
    ++r.classes[p].predicted;
    if (p == g) {
      ++r.correct;
      ++r.classes[g].true_positive;
    }
  }
  r.accuracy = r.scored ? static_cast<double>(r.correct) / r.scored : 0.0;
  for (ClassMetrics& c : r.classes) {
    c.precision = c.predicted ? static_cast<double>(c.true_positive) / c.predicted : 0.0;
    c.recall = c.support ? static_cast<double>(c.true_positive) / c.support : 0.0;
    c.f1 = c.precision + c.recall > 0 ? 2 * c.precision * c.recall / (c.precision + c.recall) : 0.0;
  }
  return r;
}

namespace {

std::string fixed(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string pad(const std::string& s, size_t width, bool right = false) {
  if (s.size() >= width) return s;
  return right ? std::string(width - s.size(), ' ') + s : s + std::string(width - s.size(), ' ');
}

}  // namespace

std::string format_report(const ClassificationReport& r, const std::string& accuracy_name) {
  std::ostringstream o;
  o << accuracy_name << " " << fixed(r.accuracy, 4) << " (" << r.correct << "/" << r.scored << ")";
  if (r.unmatched) o << ", " << r.unmatched << " answers matched no label";
  o << "\n";
  size_t w = std::string("unmatched").size();
  for (const auto& l : r.labels) w = std::max(w, l.size());
  w += 2;
  o << pad("label", w) << pad("precision", 10, true) << pad("recall", 8, true) << pad("f1", 8, true)
    << pad("support", 9, true) << "\n";
  for (size_t i = 0; i < r.labels.size(); ++i) {
    const ClassMetrics& c = r.classes[i];
    o << pad(r.labels[i], w) << pad(fixed(c.precision, 4), 10, true) << pad(fixed(c.recall, 4), 8, true)
      << pad(fixed(c.f1, 4), 8, true) << pad(std::to_string(c.support), 9, true) << "\n";
  }
  o << "confusion matrix (rows: gold label, columns: predicted)\n" << pad("", w);
  size_t cw = 10;
  for (const auto& l : r.labels) cw = std::max(cw, l.size() + 2);
  for (const auto& l : r.labels) o << pad(l, cw, true);
  o << pad("unmatched", cw, true) << "\n";
  for (size_t g = 0; g < r.labels.size(); ++g) {
    o << pad(r.labels[g], w);
    for (int64_t v : r.confusion[g]) o << pad(std::to_string(v), cw, true);
    o << "\n";
  }
  return o.str();
}

}  // namespace lmforge::tasks
