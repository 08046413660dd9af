// Metrics: the JSONL log, the loss-curve PNG (decoded back with cairo's PNG reader) and SVG,
// ticks, and the progress line.
#include <cairo.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <regex>
#include <set>

#include "io/io_test_util.h"
#include "lmforge/train/metrics.h"

namespace lmforge {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::read_file;
using test::TempDir;
using test::ThrowsError;
using test::write_file;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    out.push_back(text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  return out;
}

TEST(MetricsLog, TrainAndEvalRecordsFlushedPerLine) {
  TempDir dir;
  const fs::path file = dir / "logs" / "metrics.jsonl";
  MetricsLog log(file);
  log.log_train(10, 0.25, 3.5, 5e-5, 1234.5, 0.75);
  // Still open: the line is already on disk (flushed).
  auto lines = lines_of(read_file(file));
  ASSERT_EQ(lines.size(), 1u);
  const json t = json::parse(lines[0]);
  EXPECT_EQ(t["type"], "train");
  EXPECT_EQ(t["step"], 10);
  EXPECT_EQ(t["epoch"], 0.25);
  EXPECT_EQ(t["loss"], 3.5);
  EXPECT_EQ(t["lr"], 5e-5);
  EXPECT_EQ(t["tokens_per_s"], 1234.5);
  EXPECT_EQ(t["grad_norm"], 0.75);

  log.log_eval(20, 0.5, std::log(20.0));
  log.log_train(30, 0.75, NAN, 4e-5, 1000);
  const auto recs = read_metrics(file);
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[1]["type"], "eval");
  EXPECT_NEAR(recs[1]["perplexity"].get<double>(), 20.0, 1e-12);  // exp(eval_loss)
  EXPECT_NEAR(recs[1]["eval_loss"].get<double>(), 2.995732273553991, 1e-15);
  EXPECT_TRUE(recs[2]["loss"].is_null());  // JSON has no NaN
  EXPECT_FALSE(recs[2].contains("grad_norm"));
}

TEST(MetricsLog, TornLineDroppedAndResumeTruncates) {
  TempDir dir;
  const fs::path file = dir / "m.jsonl";
  write_file(file, "{\"type\":\"train\",\"step\":10,\"loss\":3}\n{\"type\":\"eval\",\"step\":20,\"eval_loss\":2}\n"
                   "{\"type\":\"train\",\"step\":30,\"loss\":1}\n{\"type\":\"tra");
  EXPECT_EQ(read_metrics(file).size(), 3u);  // the torn tail is not a record
  {
    MetricsLog log(file, /*keep_up_to_step=*/20);  // resuming from checkpoint-20
    log.log_train(30, 1.0, 1.5, 1e-5, 10);
  }
  const auto recs = read_metrics(file);
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0]["step"], 10);
  EXPECT_EQ(recs[1]["step"], 20);
  EXPECT_EQ(recs[2]["step"], 30);
  EXPECT_EQ(recs[2]["loss"], 1.5);  // the new record, not the stale one
  const std::string text = read_file(file);
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(lines_of(text).size(), 3u);

  {
    MetricsLog log(file);  // plain append keeps everything
    log.log_eval(40, 1.2, 1.0);
  }
  EXPECT_EQ(read_metrics(file).size(), 4u);

  write_file(dir / "bad.jsonl", "{\"step\":1}\nnot json\n");
  EXPECT_TRUE(ThrowsError([&] { read_metrics(dir / "bad.jsonl"); }, {"bad.jsonl:2", "not a JSON object"}));
  EXPECT_TRUE(ThrowsError([&] { read_metrics(dir / "none.jsonl"); }, {"none.jsonl"}));
}

TEST(LossCurve, FromRecords) {
  const std::vector<json> recs = {{{"type", "train"}, {"step", 1}, {"loss", 4.0}},
                                  {{"type", "train"}, {"step", 2}, {"loss", nullptr}},
                                  {{"type", "eval"}, {"step", 2}, {"eval_loss", 3.5}, {"perplexity", 33.1}},
                                  {{"loss", 3.0}, {"step", 3}},  // HF log_history style, no "type"
                                  {{"note", "no step"}}};
  const LossCurve c = loss_curve_from_records(recs);
  ASSERT_EQ(c.train.size(), 2u);
  EXPECT_EQ(c.train[0].step, 1);
  EXPECT_EQ(c.train[0].value, 4.0);
  EXPECT_EQ(c.train[1].step, 3);
  ASSERT_EQ(c.validation.size(), 1u);
  EXPECT_EQ(c.validation[0].value, 3.5);
}

TEST(Ticks, NiceValues) {
  auto near = [](const std::vector<double>& got, const std::vector<double>& want) {
    if (got.size() != want.size()) return false;
    for (size_t i = 0; i < got.size(); ++i)
      if (std::abs(got[i] - want[i]) > 1e-12) return false;
    return true;
  };
  EXPECT_TRUE(near(nice_ticks(0, 1, 5), {0, 0.2, 0.4, 0.6, 0.8, 1.0}));
  EXPECT_TRUE(near(nice_ticks(0, 100, 6), {0, 20, 40, 60, 80, 100}));
  EXPECT_TRUE(near(nice_ticks(1, 3, 5), {1, 1.5, 2, 2.5, 3}));
  EXPECT_TRUE(near(nice_ticks(0.1, 1.1, 5), {0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2}));  // widened to cover
  EXPECT_TRUE(near(nice_ticks(-3, 7, 5), {-4, -2, 0, 2, 4, 6, 8}));
  EXPECT_TRUE(near(nice_ticks(2.31, 2.87, 5), {2.2, 2.4, 2.6, 2.8, 3.0}));  // 0.112/step -> 0.2
  for (auto [lo, hi] : std::vector<std::pair<double, double>>{{0, 1}, {3, 3}, {-0.001, 0.004}, {1e3, 7.3e5}, {5, 4}}) {
    const auto t = nice_ticks(lo, hi, 6);
    ASSERT_GE(t.size(), 2u);
    EXPECT_LE(t.front(), std::min(lo, hi));
    EXPECT_GE(t.back(), std::max(lo, hi));
    EXPECT_LE(t.size(), 8u);
    const double step = t[1] - t[0];
    const double mant = step / std::pow(10.0, std::floor(std::log10(step)));
    EXPECT_TRUE(std::abs(mant - 1) < 1e-9 || std::abs(mant - 2) < 1e-9 || std::abs(mant - 5) < 1e-9) << step;
  }
  EXPECT_EQ(format_tick(0.5, 0.1), "0.5");
  EXPECT_EQ(format_tick(1.0, 0.5), "1.0");
  EXPECT_EQ(format_tick(0.25, 0.05), "0.25");
  EXPECT_EQ(format_tick(1500, 500), "1500");
  EXPECT_EQ(format_tick(0.0, 0.2), "0");
  EXPECT_EQ(format_tick(-2, 2), "-2");
  EXPECT_EQ(format_tick(2e7, 1e7), "2e+07");
}

LossCurve falling_curve() {
  LossCurve c;
  for (int s = 0; s <= 100; s += 5) c.train.push_back({static_cast<double>(s), 3.0 - 2.0 * s / 100.0});  // 3 -> 1
  for (int s = 25; s <= 100; s += 25) c.validation.push_back({static_cast<double>(s), 2.5 - 1.0 * s / 100.0});
  return c;
}

// A PNG read back with cairo's own decoder (libpng underneath), as a third party would.
struct Decoded {
  int width = 0, height = 0;
  cairo_format_t format = CAIRO_FORMAT_INVALID;
  std::vector<uint32_t> px;  // 0xRRGGBB, row-major
  uint32_t at(int x, int y) const { return px[static_cast<size_t>(y) * width + x]; }
};

bool decode_png(const fs::path& file, Decoded& d) {
  cairo_surface_t* s = cairo_image_surface_create_from_png(file.c_str());
  const bool ok = cairo_surface_status(s) == CAIRO_STATUS_SUCCESS;
  if (ok) {
    d.width = cairo_image_surface_get_width(s);
    d.height = cairo_image_surface_get_height(s);
    d.format = cairo_image_surface_get_format(s);
    const int stride = cairo_image_surface_get_stride(s);
    const unsigned char* data = cairo_image_surface_get_data(s);
    for (int y = 0; y < d.height; ++y)
      for (int x = 0; x < d.width; ++x) {
        uint32_t v;
        std::memcpy(&v, data + static_cast<size_t>(y) * stride + 4 * x, 4);  // native-endian xRGB
        d.px.push_back(v & 0xffffff);
      }
  }
  cairo_surface_destroy(s);
  return ok;
}

int channel(uint32_t c, int shift) { return static_cast<int>((c >> shift) & 0xff); }
bool near_color(uint32_t a, uint32_t b, int tol) {
  for (int sh : {0, 8, 16})
    if (std::abs(channel(a, sh) - channel(b, sh)) > tol) return false;
  return true;
}
bool neutral(uint32_t c) { return channel(c, 16) == channel(c, 8) && channel(c, 8) == channel(c, 0); }

TEST(LossCurvePng, DecodesWithSizeAntialiasingAndBothCurves) {
  TempDir dir;
  const fs::path file = dir / "loss.png";
  write_file(file, "old contents");  // replaced whole
  write_loss_curve_png(file, falling_curve());
  EXPECT_EQ(read_file(file).substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);  // no temp file left

  Decoded d;
  ASSERT_TRUE(decode_png(file, d));
  EXPECT_EQ(d.width, 800);
  EXPECT_EQ(d.height, 480);
  EXPECT_EQ(d.format, CAIRO_FORMAT_RGB24);  // opaque RGB

  std::set<uint32_t> grey_levels;
  size_t dark = 0, train = 0, validation = 0, blended_train = 0;
  int min_x = d.width, max_x = -1;
  double y_at_min_x = 0, y_at_max_x = 0;
  for (int y = 0; y < d.height; ++y)
    for (int x = 0; x < d.width; ++x) {
      const uint32_t c = d.at(x, y);
      if (neutral(c)) grey_levels.insert(c);
      dark += channel(c, 16) < 80 && channel(c, 8) < 80 && channel(c, 0) < 80;
      validation += near_color(c, kValidationColor, 24);
      // Antialiased train-curve edges: blue mixed with white, between the two.
      blended_train += !near_color(c, kTrainColor, 24) && channel(c, 0) > channel(c, 16) + 40 && channel(c, 16) > 60;
      if (!near_color(c, kTrainColor, 24)) continue;
      ++train;
      if (x < min_x) min_x = x, y_at_min_x = y;
      if (x > max_x) max_x = x, y_at_max_x = y;
    }
  // Antialiased dark-grey text on white shades its edges through many grey levels; without
  // antialiasing only the few greys drawn on purpose (text, frame, grid) would appear.
  EXPECT_GT(grey_levels.size(), 30u);
  EXPECT_GT(blended_train, 100u);  // antialiased curve
  EXPECT_GT(dark, 300u);           // axes, ticks, labels
  EXPECT_GT(validation, 50u);
  EXPECT_GT(train, 300u);
  // The train loss falls from 3 to 1 as steps go 0 -> 100: its pixels near the left edge of the
  // plot are higher up (smaller y) than those near the right edge, and the curve spans most of
  // the width, inside the image's margins (axes and labels around it).
  ASSERT_LT(min_x, max_x);
  EXPECT_LT(y_at_min_x + 100, y_at_max_x);
  EXPECT_GT(max_x - min_x, d.width / 2);
  EXPECT_GT(min_x, 20);
  EXPECT_LT(max_x, d.width - 5);

  // Text: the title in the top band, centred; tick labels left of the plot.
  auto dark_in = [&](int x0, int y0, int x1, int y1) {
    size_t n = 0;
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) n += channel(d.at(x, y), 8) < 128 && channel(d.at(x, y), 0) < 128;
    return n;
  };
  EXPECT_GT(dark_in(d.width / 2 - 60, 0, d.width / 2 + 60, 30), 20u);  // "Loss"
  EXPECT_GT(dark_in(0, 40, min_x, d.height - 60), 50u);                // y ticks and label
}

PlotOptions sized(int w, int h) {
  PlotOptions o;
  o.width = w;
  o.height = h;
  return o;
}

TEST(LossCurvePng, EmptyAndOnePointCurvesAndErrors) {
  TempDir dir;
  write_loss_curve_png(dir / "empty.png", LossCurve{}, sized(320, 200));
  Decoded d;
  ASSERT_TRUE(decode_png(dir / "empty.png", d));
  EXPECT_EQ(d.width, 320);
  EXPECT_EQ(d.height, 200);
  EXPECT_FALSE(std::any_of(d.px.begin(), d.px.end(), [](uint32_t c) { return near_color(c, kTrainColor, 24); }));

  LossCurve one;
  one.validation.push_back({7, 2.0});
  write_loss_curve_png(dir / "one.png", one);
  ASSERT_TRUE(decode_png(dir / "one.png", d));
  // The lone point is drawn as a marker (a line through one point would be invisible).
  EXPECT_GT(std::count_if(d.px.begin(), d.px.end(), [](uint32_t c) { return near_color(c, kValidationColor, 24); }), 10);

  EXPECT_TRUE(ThrowsError([] { loss_curve_png(LossCurve{}, sized(10, 10)); }, {"plot size", "10x10"}));
  EXPECT_TRUE(ThrowsError([] { loss_curve_svg(LossCurve{}, sized(70000, 480)); }, {"plot size"}));
  const fs::path bad = dir / "no" / "such" / "x.png";
  try {
    write_loss_curve_png(bad, one);
    ADD_FAILURE() << "no error for " << bad;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(bad.string()), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  EXPECT_FALSE(fs::exists(dir / "no"));
}

// Percent colours "rgb(12.156863%,46.666667%,70.588235%)" as cairo writes them -> 0xRRGGBB.
std::vector<uint32_t> svg_colors(const std::string& svg) {
  static const std::regex rgb(R"(rgb\(\s*([0-9.]+)%\s*,\s*([0-9.]+)%\s*,\s*([0-9.]+)%\s*\))");
  std::vector<uint32_t> out;
  for (std::sregex_iterator it(svg.begin(), svg.end(), rgb), end; it != end; ++it) {
    uint32_t c = 0;
    for (int i = 1; i <= 3; ++i) c = (c << 8) | static_cast<uint32_t>(std::lround(std::stod((*it)[i]) * 2.55));
    out.push_back(c);
  }
  return out;
}

TEST(LossCurveSvg, SameDrawingAsVectorDocument) {
  TempDir dir;
  write_loss_curve_svg(dir / "loss.svg", falling_curve());
  const std::string svg = read_file(dir / "loss.svg");
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  EXPECT_NE(svg.find("width=\"800px\" height=\"480px\""), std::string::npos) << svg.substr(0, 300);
  EXPECT_EQ(svg.substr(svg.find_last_not_of("\n") - 5, 6), "</svg>");
  const auto colors = svg_colors(svg);
  auto has = [&](uint32_t want) {
    return std::any_of(colors.begin(), colors.end(), [&](uint32_t c) { return near_color(c, want, 1); });
  };
  EXPECT_TRUE(has(kTrainColor));
  EXPECT_TRUE(has(kValidationColor));
  // Text is drawn as glyph outlines: the title, labels and ticks need dozens of glyphs.
  size_t glyphs = 0;
  for (size_t p = 0; (p = svg.find("<use xlink:href=\"#glyph", p)) != std::string::npos; ++p) ++glyphs;
  EXPECT_GT(glyphs, 40u);

  const std::string only_train = loss_curve_svg(LossCurve{falling_curve().train, {}});
  const auto c2 = svg_colors(only_train);
  EXPECT_FALSE(std::any_of(c2.begin(), c2.end(), [](uint32_t c) { return near_color(c, kValidationColor, 1); }));
}

TEST(Progress, FormatsEveryField) {
  ProgressInfo p;
  p.step = 400;
  p.total_steps = 1000;
  p.epoch = 1.2;
  p.num_epochs = 3;
  p.loss = 2.34567;
  p.lr = 5e-5;
  p.tokens_per_s = 1234.4;
  p.elapsed_s = 100;  // 400 steps in 100 s: 0.25 s/step, 600 steps left -> 150 s
  EXPECT_EQ(format_progress(p),
            "[########------------]  40% step 400/1000 | epoch 1.20/3 | loss 2.3457 | lr 5.00e-05 | 1234 tok/s | ETA 02:30");
  p.start_step = 300;  // resumed at 300: 100 steps in 100 s -> 1 s/step x 600
  p.bar_width = 10;
  EXPECT_EQ(format_progress(p),
            "[####------]  40% step 400/1000 | epoch 1.20/3 | loss 2.3457 | lr 5.00e-05 | 1234 tok/s | ETA 10:00");
  p.step = 300;  // nothing done yet in this run
  EXPECT_NE(format_progress(p).find("ETA --:--"), std::string::npos);
  p.step = 1000;
  p.start_step = 0;
  p.loss = NAN;
  const std::string done = format_progress(p);
  EXPECT_EQ(done.rfind("[##########] 100% step 1000/1000", 0), 0u) << done;
  EXPECT_NE(done.find("loss nan"), std::string::npos);
  EXPECT_NE(done.find("ETA 00:00"), std::string::npos);
  p.total_steps = 0;  // unknown total: no bar
  EXPECT_EQ(format_progress(p).rfind("step 1000 | epoch", 0), 0u);
}

TEST(Progress, Durations) {
  EXPECT_EQ(format_duration(0), "00:00");
  EXPECT_EQ(format_duration(59.6), "01:00");
  EXPECT_EQ(format_duration(3599), "59:59");
  EXPECT_EQ(format_duration(3725), "1:02:05");
  EXPECT_EQ(format_duration(100 * 3600), "100:00:00");
  EXPECT_EQ(format_duration(-1), "--:--");
  EXPECT_EQ(format_duration(INFINITY), "--:--");
}

}  // namespace
}  // namespace lmforge
