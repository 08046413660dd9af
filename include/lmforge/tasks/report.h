#pragma once
// Classification metrics of a task run: accuracy, per-class precision / recall, the confusion
// matrix and the answers that matched no label (docs/TASKS.md, "lmforge task").
#include <cstdint>
#include <string>
#include <vector>

namespace lmforge::tasks {

struct ClassMetrics {
  int64_t support = 0;     // rows with this gold label
  int64_t predicted = 0;   // rows predicted as this label (gold label known)
  int64_t true_positive = 0;
  double precision = 0;    // true_positive / predicted (0 when nothing was predicted, as scikit-learn)
  double recall = 0;       // true_positive / support (0 when there is no support)
  double f1 = 0;
};

struct ClassificationReport {
  std::vector<std::string> labels;
  int64_t scored = 0;     // rows with a gold label
  int64_t correct = 0;    // prediction == gold
  int64_t unmatched = 0;  // scored rows whose answer matched no label
  double accuracy = 0;    // correct / scored (0 when nothing was scored)
  std::vector<ClassMetrics> classes;
  // confusion[gold][predicted]; the last column counts unmatched answers.
  std::vector<std::vector<int64_t>> confusion;
};

// `gold[i]`: a label index or kNoLabel (-1: not scored); `predicted[i]`: a label index, or -1 when
// the answer matched no label.
ClassificationReport classification_report(const std::vector<std::string>& labels, const std::vector<int>& gold,
                                           const std::vector<int>& predicted);

// The report as aligned text: accuracy line, per-class table, confusion matrix.
std::string format_report(const ClassificationReport& report, const std::string& accuracy_name = "accuracy");

}  // namespace lmforge::tasks
