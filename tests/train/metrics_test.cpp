// Metrics: the JSONL log, the loss-curve PNG (decoded back with libpng) and SVG, ticks, the
// bitmap font, and the progress line.
#include <gtest/gtest.h>
#include <png.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
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

TEST(Font, GlyphsAreDistinctAndBlankSpace) {
  const uint8_t* sp = glyph_rows(' ');
  for (int r = 0; r < 7; ++r) EXPECT_EQ(sp[r], 0);
  std::set<std::vector<uint8_t>> seen;
  for (char c = '!'; c <= '~'; ++c) {
    const uint8_t* g = glyph_rows(c);
    std::vector<uint8_t> rows(g, g + 7);
    int ink = 0;
    for (uint8_t b : rows) {
      EXPECT_EQ(b & ~0x1f, 0) << c;  // 5 pixels wide
      ink += __builtin_popcount(b);
    }
    EXPECT_GT(ink, 0) << c;
    EXPECT_TRUE(seen.insert(rows).second) << "glyph of '" << c << "' duplicates another";
  }
  // '1' has a vertical stem in the middle column; '-' is one full middle row.
  for (int r = 0; r < 7; ++r) EXPECT_TRUE(glyph_rows('1')[r] & 0x04) << r;
  EXPECT_EQ(glyph_rows('-')[3], 0x1f);
  EXPECT_EQ(glyph_rows('\x01'), glyph_rows('\x7f'));  // both the fallback box
  EXPECT_EQ(text_width("ab", 2), 22);
  EXPECT_EQ(text_width("", 3), 0);

  Image img;
  img.width = 20;
  img.height = 10;
  img.rgb.assign(20 * 10 * 3, 0xff);
  EXPECT_EQ(draw_text(img, 1, 1, "-", 0x000000, 1), 5);
  for (int x = 0; x < 20; ++x) EXPECT_EQ(img.get(x, 4), (x >= 1 && x <= 5) ? 0x000000u : 0xffffffu) << x;
  draw_text(img, 15, 8, "WWW", 0x000000, 2);  // clipped at the edges, no crash
}

LossCurve falling_curve() {
  LossCurve c;
  for (int s = 0; s <= 100; s += 5) c.train.push_back({static_cast<double>(s), 3.0 - 2.0 * s / 100.0});  // 3 -> 1
  for (int s = 25; s <= 100; s += 25) c.validation.push_back({static_cast<double>(s), 2.5 - 1.0 * s / 100.0});
  return c;
}

struct Decoded {
  int width = 0, height = 0, color_type = -1, bit_depth = 0;
  std::vector<uint8_t> rgb;
};

// Reads a PNG back with libpng's classic API, as a third party would.
bool decode_png(const fs::path& file, Decoded& d) {
  std::FILE* fp = std::fopen(file.c_str(), "rb");
  if (fp == nullptr) return false;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  std::vector<png_bytep> rows;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    std::fclose(fp);
    return false;
  }
  png_init_io(png, fp);
  png_read_info(png, info);
  d.width = static_cast<int>(png_get_image_width(png, info));
  d.height = static_cast<int>(png_get_image_height(png, info));
  d.color_type = png_get_color_type(png, info);
  d.bit_depth = png_get_bit_depth(png, info);
  d.rgb.resize(static_cast<size_t>(d.width) * d.height * 3);
  rows.resize(static_cast<size_t>(d.height));
  for (int y = 0; y < d.height; ++y) rows[static_cast<size_t>(y)] = d.rgb.data() + static_cast<size_t>(y) * d.width * 3;
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  std::fclose(fp);
  return true;
}

TEST(LossCurvePng, ValidFileWithDimensionsAndBothCurves) {
  TempDir dir;
  const fs::path file = dir / "loss.png";
  write_loss_curve_png(file, falling_curve());
  const std::string bytes = read_file(file);
  ASSERT_GE(bytes.size(), 8u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_FALSE(fs::exists(dir / "loss.png.tmp"));

  Decoded d;
  ASSERT_TRUE(decode_png(file, d));
  EXPECT_EQ(d.width, 800);
  EXPECT_EQ(d.height, 480);
  EXPECT_EQ(d.color_type, PNG_COLOR_TYPE_RGB);
  EXPECT_EQ(d.bit_depth, 8);
  EXPECT_EQ(d.rgb, render_loss_curve(falling_curve()).rgb);  // the pixels we drew, losslessly

  // Where the curve colours appear: the train loss falls from 3 to 1 as steps go 0 -> 100, so its
  // pixels near the left edge are higher up (smaller y) than those near the right edge.
  auto px = [&](int x, int y) {
    const uint8_t* p = d.rgb.data() + (static_cast<size_t>(y) * d.width + x) * 3;
    return (uint32_t{p[0]} << 16) | (uint32_t{p[1]} << 8) | p[2];
  };
  int min_x = d.width, max_x = -1;
  double y_at_min_x = 0, y_at_max_x = 0;
  size_t validation_pixels = 0, black = 0;
  for (int y = 0; y < d.height; ++y)
    for (int x = 0; x < d.width; ++x) {
      const uint32_t c = px(x, y);
      if (c == kTrainColor) {
        if (x < min_x) min_x = x, y_at_min_x = y;
        if (x > max_x) max_x = x, y_at_max_x = y;
      }
      validation_pixels += c == kValidationColor;
      black += c == 0;
    }
  ASSERT_LT(min_x, max_x);
  EXPECT_LT(y_at_min_x, y_at_max_x);
  EXPECT_GT(max_x - min_x, d.width / 2);  // spans most of the width
  EXPECT_GT(validation_pixels, 50u);
  EXPECT_GT(black, 500u);  // axes, ticks and labels
}

PlotOptions sized(int w, int h) {
  PlotOptions o;
  o.width = w;
  o.height = h;
  return o;
}

TEST(LossCurvePng, EmptyCurvesAndSizes) {
  TempDir dir;
  write_loss_curve_png(dir / "empty.png", LossCurve{}, sized(320, 200));
  Decoded d;
  ASSERT_TRUE(decode_png(dir / "empty.png", d));
  EXPECT_EQ(d.width, 320);
  EXPECT_EQ(d.height, 200);
  LossCurve one;
  one.validation.push_back({7, 2.0});
  EXPECT_NO_THROW(render_loss_curve(one));
  EXPECT_TRUE(ThrowsError([] { render_loss_curve(LossCurve{}, sized(10, 10)); }, {"plot size"}));
  EXPECT_TRUE(ThrowsError([&] { write_png(dir / "no" / "such" / "x.png", render_loss_curve(one)); }, {"x.png"}));
}

TEST(LossCurveSvg, AxesTicksLegendAndEscaping) {
  TempDir dir;
  PlotOptions o;
  o.title = "loss <gpt2> & co";
  write_loss_curve_svg(dir / "loss.svg", falling_curve(), o);
  const std::string svg = read_file(dir / "loss.svg");
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"800\" height=\"480\""), std::string::npos);
  EXPECT_NE(svg.find("<polyline class=\"train\""), std::string::npos);
  EXPECT_NE(svg.find("<polyline class=\"validation\""), std::string::npos);
  EXPECT_NE(svg.find(">train loss</text>"), std::string::npos);
  EXPECT_NE(svg.find(">validation loss</text>"), std::string::npos);
  EXPECT_NE(svg.find(">loss &lt;gpt2&gt; &amp; co</text>"), std::string::npos);
  // Losses span [1, 3]: y ticks 1.0 .. 3.0 by 0.5. Steps span [0, 100]: x ticks 0 .. 100 by 20.
  for (const char* lab : {">1.0</text>", ">1.5</text>", ">2.0</text>", ">2.5</text>", ">3.0</text>"})
    EXPECT_NE(svg.find(lab), std::string::npos) << lab;
  for (const char* lab : {">0</text>", ">20</text>", ">40</text>", ">60</text>", ">80</text>", ">100</text>"})
    EXPECT_NE(svg.find(lab), std::string::npos) << lab;
  EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");
  // 21 train points in the polyline.
  const size_t a = svg.find("points=\"", svg.find("<polyline class=\"train\"")) + 8;
  const std::string pts = svg.substr(a, svg.find('"', a) - a);
  EXPECT_EQ(std::count(pts.begin(), pts.end(), ','), 21);
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
