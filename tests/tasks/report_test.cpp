// Classification report: counts worked out by hand for a small 3-class example.
#include <gtest/gtest.h>

#include "lmforge/tasks/report.h"

namespace lmforge::tasks {
namespace {

TEST(Report, ConfusionPrecisionRecall) {
  // gold:      e e e n n c c c  (and one row without a gold label, not scored)
  // predicted: e n - n e c c e
  const std::vector<std::string> labels = {"e", "n", "c"};
  const std::vector<int> gold = {0, 0, 0, 1, 1, 2, 2, 2, -1};
  const std::vector<int> pred = {0, 1, -1, 1, 0, 2, 2, 0, 1};
  const ClassificationReport r = classification_report(labels, gold, pred);
  EXPECT_EQ(r.scored, 8);
  EXPECT_EQ(r.correct, 4);
  EXPECT_EQ(r.unmatched, 1);
  EXPECT_DOUBLE_EQ(r.accuracy, 0.5);
  const std::vector<std::vector<int64_t>> confusion = {{1, 1, 0, 1}, {1, 1, 0, 0}, {1, 0, 2, 0}};
  EXPECT_EQ(r.confusion, confusion);
  // e: predicted 3 times (rows 0, 4, 7), right once; support 3.
  EXPECT_EQ(r.classes[0].predicted, 3);
  EXPECT_DOUBLE_EQ(r.classes[0].precision, 1.0 / 3);
  EXPECT_DOUBLE_EQ(r.classes[0].recall, 1.0 / 3);
  // n: predicted twice, right once; support 2.
  EXPECT_DOUBLE_EQ(r.classes[1].precision, 0.5);
  EXPECT_DOUBLE_EQ(r.classes[1].recall, 0.5);
  // c: predicted twice, right twice; support 3.
  EXPECT_DOUBLE_EQ(r.classes[2].precision, 1.0);
  EXPECT_DOUBLE_EQ(r.classes[2].recall, 2.0 / 3);
  EXPECT_DOUBLE_EQ(r.classes[2].f1, 0.8);
}

TEST(Report, NothingPredictedGivesZeroPrecision) {
  const ClassificationReport r = classification_report({"a", "b"}, {0, 0}, {-1, -1});
  EXPECT_EQ(r.unmatched, 2);
  EXPECT_EQ(r.classes[0].precision, 0.0);
  EXPECT_EQ(r.classes[1].recall, 0.0);
  EXPECT_EQ(r.accuracy, 0.0);
}

TEST(Report, TextHasTheTableAndMatrix) {
  const std::string s = format_report(classification_report({"yes", "no"}, {0, 1, 1}, {0, 0, -1}));
  EXPECT_NE(s.find("accuracy 0.3333 (1/3), 1 answers matched no label"), std::string::npos) << s;
  EXPECT_NE(s.find("confusion matrix"), std::string::npos) << s;
  EXPECT_NE(s.find("unmatched"), std::string::npos) << s;
}

}  // namespace
}  // namespace lmforge::tasks
