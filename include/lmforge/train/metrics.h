#pragma once
// Training metrics: a JSONL log, loss-curve plots (PNG and SVG, drawn with cairo), and the
// terminal progress line.
//
// JSONL records (one JSON object per line, flushed after each line):
//   {"type":"train","step":S,"epoch":E,"loss":L,"lr":LR,"tokens_per_s":TPS[,"grad_norm":G]}
//   {"type":"eval","step":S,"epoch":E,"eval_loss":L,"perplexity":exp(L)}
// Non-finite numbers are written as null (JSON has no NaN).
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lmforge {

class MetricsLog {
 public:
  // Opens `file` for appending (created with its folder if missing). A torn last line (a kill
  // mid-write) is dropped. With keep_up_to_step >= 0 (a resumed run), records whose "step" is
  // greater are dropped too: they were logged after the checkpoint being resumed.
  explicit MetricsLog(const std::filesystem::path& file, int64_t keep_up_to_step = -1);

  void write(const nlohmann::json& record);  // one line, flushed; throws lmforge::Error on I/O errors
  nlohmann::json log_train(int64_t step, double epoch, double loss, double lr, double tokens_per_s,
                           std::optional<double> grad_norm = std::nullopt);
  nlohmann::json log_eval(int64_t step, double epoch, double eval_loss);
  const std::filesystem::path& path() const { return file_; }

 private:
  std::filesystem::path file_;
  std::ofstream out_;
};

// Every complete record of a metrics file (a torn last line is skipped). Throws lmforge::Error
// naming the file and line on a malformed complete line.
std::vector<nlohmann::json> read_metrics(const std::filesystem::path& file);

// ---- loss curves -----------------------------------------------------------------------------

struct CurvePoint {
  double step = 0, value = 0;
};
struct LossCurve {
  std::vector<CurvePoint> train;       // "loss" of train records
  std::vector<CurvePoint> validation;  // "eval_loss" of eval records
};
// Non-finite values are left out.
LossCurve loss_curve_from_records(const std::vector<nlohmann::json>& records);

struct PlotOptions {
  int width = 800, height = 480;
  std::string title = "Loss";
  std::string x_label = "step";
  std::string y_label = "loss";
};

// Curve colours (0xRRGGBB), the same in both files.
constexpr uint32_t kTrainColor = 0x1f77b4;       // blue
constexpr uint32_t kValidationColor = 0xff7f0e;  // orange

// "Nice" tick values (steps of 1, 2 or 5 x 10^k) from a multiple of the step <= lo to one >= hi,
// with about max_ticks intervals (at most max_ticks + 1).
std::vector<double> nice_ticks(double lo, double hi, int max_ticks = 6);
// A tick label with just enough decimals for `step` ("0.5", "1500", "2e+04" style for huge/tiny).
std::string format_tick(double v, double step);

// The plot, drawn with cairo (antialiased, "sans-serif" text): axes with tick labels, x/y labels,
// the title, the train curve, the validation curve with point markers, and a legend. Either curve
// may be empty; with no points at all the axes are drawn over [0, 1]. Sizes outside
// 64x48 .. 16384x16384 are refused.
std::string loss_curve_png(const LossCurve& curve, const PlotOptions& opt = {});  // PNG file bytes (8-bit RGB)
std::string loss_curve_svg(const LossCurve& curve, const PlotOptions& opt = {});  // SVG document

// Write the file atomically (temp name + rename). Throw lmforge::Error naming the file.
void write_loss_curve_png(const std::filesystem::path& file, const LossCurve& curve, const PlotOptions& opt = {});
void write_loss_curve_svg(const std::filesystem::path& file, const LossCurve& curve, const PlotOptions& opt = {});

// ---- progress line ---------------------------------------------------------------------------

struct ProgressInfo {
  int64_t step = 0, total_steps = 0;  // optimizer steps done / planned
  int64_t start_step = 0;             // step this run started from (resume), for the ETA's rate
  double epoch = 0;                   // fractional epochs done
  int num_epochs = 0;
  double loss = 0, lr = 0, tokens_per_s = 0;
  double elapsed_s = 0;               // wall time of this run so far
  int bar_width = 20;
};
// e.g. "[########------------]  40% step 400/1000 | epoch 1.20/3 | loss 2.3456 | lr 5.00e-05 |
// 1234 tok/s | ETA 01:30". No terminal control characters; the caller adds "\r" or "\n".
// ETA = elapsed / (step - start_step) * (total_steps - step); "--:--" before the first step.
std::string format_progress(const ProgressInfo& p);
// "MM:SS" under an hour, else "H:MM:SS"; negative / non-finite -> "--:--".
std::string format_duration(double seconds);

}  // namespace lmforge
