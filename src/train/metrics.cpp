// Metrics JSONL log and the terminal progress line.
#include "lmforge/train/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "io/io_util.h"
#include "lmforge/error.h"
#include "lmforge/train/train_state.h"

namespace lmforge {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

std::string read_all(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) return {};
  return io::read_text_file(file, "metrics log");
}

}  // namespace

// ---- JSONL -----------------------------------------------------------------------------------

MetricsLog::MetricsLog(const fs::path& file, int64_t keep_up_to_step) : file_(file) {
  std::error_code ec;
  if (file.has_parent_path()) {
    fs::create_directories(file.parent_path(), ec);
    if (ec) throw Error("cannot create folder '" + file.parent_path().string() + "': " + ec.message());
  }
  const std::string old = read_all(file);
  if (!old.empty()) {
    std::string kept;
    bool changed = false;
    size_t pos = 0;
    while (pos < old.size()) {
      const size_t nl = old.find('\n', pos);
      if (nl == std::string::npos) {  // torn last line
        changed = true;
        break;
      }
      const std::string line = old.substr(pos, nl - pos);
      pos = nl + 1;
      bool keep = true;
      if (keep_up_to_step >= 0) {
        const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (j.is_object() && j.contains("step") && j["step"].is_number() && j["step"].get<double>() > static_cast<double>(keep_up_to_step))
          keep = false;
      }
      if (keep) kept += line + "\n";
      else changed = true;
    }
    if (changed) write_file_atomic(file, kept);
  }
  out_.open(file, std::ios::binary | std::ios::app);
  if (!out_) throw Error("cannot open '" + file.string() + "' for writing");
}

void MetricsLog::write(const json& record) {
  out_ << record.dump() << '\n';
  out_.flush();
  if (!out_) throw Error("cannot write to '" + file_.string() + "'");
}

json MetricsLog::log_train(int64_t step, double epoch, double loss, double lr, double tokens_per_s,
                           std::optional<double> grad_norm) {
  json r{{"type", "train"},
         {"step", step},
         {"epoch", number_or_null(epoch)},
         {"loss", number_or_null(loss)},
         {"lr", number_or_null(lr)},
         {"tokens_per_s", number_or_null(tokens_per_s)}};
  if (grad_norm) r["grad_norm"] = number_or_null(*grad_norm);
  write(r);
  return r;
}

json MetricsLog::log_eval(int64_t step, double epoch, double eval_loss) {
  json r{{"type", "eval"},
         {"step", step},
         {"epoch", number_or_null(epoch)},
         {"eval_loss", number_or_null(eval_loss)},
         {"perplexity", number_or_null(std::exp(eval_loss))}};
  write(r);
  return r;
}

std::vector<json> read_metrics(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) io::fail(file.string(), "no such file");
  const std::string text = io::read_text_file(file, "metrics log");
  std::vector<json> out;
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) break;  // torn last line
    ++line_no;
    const std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      io::fail(file.string() + ":" + std::to_string(line_no), "not a JSON object: " + io::printable(line, 80));
    out.push_back(std::move(j));
  }
  return out;
}

LossCurve loss_curve_from_records(const std::vector<json>& records) {
  LossCurve c;
  auto num = [](const json& r, const char* k, double* v) {
    auto it = r.find(k);
    if (it == r.end() || !it->is_number()) return false;
    *v = it->get<double>();
    return std::isfinite(*v);
  };
  for (const auto& r : records) {
    if (!r.is_object()) continue;
    double step, v;
    if (!num(r, "step", &step)) continue;
    if (num(r, "eval_loss", &v)) c.validation.push_back({step, v});
    else if (num(r, "loss", &v)) c.train.push_back({step, v});
  }
  return c;
}

// ---- progress --------------------------------------------------------------------------------

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const long long total = std::llround(seconds);
  const long long h = total / 3600, m = (total / 60) % 60, s = total % 60;
  char buf[48];
  if (h == 0) std::snprintf(buf, sizeof buf, "%02lld:%02lld", m, s);
  else std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", h, m, s);
  return buf;
}

std::string format_progress(const ProgressInfo& p) {
  std::ostringstream o;
  char buf[64];
  if (p.total_steps > 0) {
    const double frac = std::clamp(static_cast<double>(p.step) / static_cast<double>(p.total_steps), 0.0, 1.0);
    const int w = std::max(p.bar_width, 0);
    if (w > 0) {
      const int filled = static_cast<int>(std::floor(frac * w + 1e-9));
      o << '[' << std::string(static_cast<size_t>(filled), '#') << std::string(static_cast<size_t>(w - filled), '-') << "] ";
    }
    std::snprintf(buf, sizeof buf, "%3d%%", static_cast<int>(std::floor(frac * 100 + 1e-9)));
    o << buf << " step " << p.step << '/' << p.total_steps;
  } else {
    o << "step " << p.step;
  }
  std::snprintf(buf, sizeof buf, "%.2f", p.epoch);
  o << " | epoch " << buf;
  if (p.num_epochs > 0) o << '/' << p.num_epochs;
  if (std::isfinite(p.loss)) std::snprintf(buf, sizeof buf, "%.4f", p.loss);
  else std::snprintf(buf, sizeof buf, "nan");
  o << " | loss " << buf;
  std::snprintf(buf, sizeof buf, "%.2e", p.lr);
  o << " | lr " << buf;
  std::snprintf(buf, sizeof buf, "%.0f", std::isfinite(p.tokens_per_s) ? p.tokens_per_s : 0.0);
  o << " | " << buf << " tok/s";
  const int64_t done = p.step - p.start_step;
  double eta = -1;
  if (p.total_steps > 0 && done > 0 && p.elapsed_s >= 0)
    eta = p.elapsed_s / static_cast<double>(done) * static_cast<double>(std::max<int64_t>(p.total_steps - p.step, 0));
  o << " | ETA " << format_duration(eta);
  return o.str();
}

}  // namespace lmforge
