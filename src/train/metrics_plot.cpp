// Loss-curve plots drawn with cairo: one drawing routine, rendered onto an image surface (PNG) or
// an SVG surface, so both files show the same picture with real fonts and antialiasing.
#include <cairo-svg.h>
#include <cairo.h>
#include <fontconfig/fontconfig.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

#include "lmforge/error.h"
#include "lmforge/train/metrics.h"
#include "lmforge/train/train_state.h"

namespace lmforge {

namespace fs = std::filesystem;

namespace {

constexpr uint32_t kBlack = 0x000000, kGrid = 0xe0e0e0, kFrame = 0x808080, kText = 0x222222;
constexpr const char* kFont = "sans-serif";  // fontconfig picks the system's sans face

using Surface = std::unique_ptr<cairo_surface_t, decltype(&cairo_surface_destroy)>;
using Context = std::unique_ptr<cairo_t, decltype(&cairo_destroy)>;

void set_color(cairo_t* cr, uint32_t c, double alpha = 1.0) {
  cairo_set_source_rgba(cr, ((c >> 16) & 0xff) / 255.0, ((c >> 8) & 0xff) / 255.0, (c & 0xff) / 255.0, alpha);
}

// Data range -> axis ticks; a degenerate range is widened so the axes are never empty.
struct Axes {
  std::vector<double> xt, yt;
  double xstep = 1, ystep = 1;
};

Axes make_axes(const LossCurve& c) {
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  for (const auto* pts : {&c.train, &c.validation})
    for (const auto& p : *pts) {
      xlo = std::min(xlo, p.step), xhi = std::max(xhi, p.step);
      ylo = std::min(ylo, p.value), yhi = std::max(yhi, p.value);
    }
  if (!(xlo <= xhi)) xlo = 0, xhi = 1;
  if (!(ylo <= yhi)) ylo = 0, yhi = 1;
  if (xlo == xhi) xlo -= 1, xhi += 1;
  if (ylo == yhi) {
    const double d = std::max(std::abs(ylo) * 0.1, 0.5);
    ylo -= d, yhi += d;
  }
  Axes a;
  a.xt = nice_ticks(xlo, xhi, 6);
  a.yt = nice_ticks(ylo, yhi, 5);
  a.xstep = a.xt[1] - a.xt[0];
  a.ystep = a.yt[1] - a.yt[0];
  return a;
}

double text_width(cairo_t* cr, const std::string& s) {
  cairo_text_extents_t e;
  cairo_text_extents(cr, s.c_str(), &e);
  return e.x_advance;
}

// Plot rectangle in device units, from the font's real metrics and the widest tick label.
struct Frame {
  double left, right, top, bottom;
  double x0, x1, y0, y1;  // data values at the edges
  double px(double x) const { return left + (x - x0) / (x1 - x0) * (right - left); }
  double py(double y) const { return bottom - (y - y0) / (y1 - y0) * (bottom - top); }
};

struct Style {
  double font, title_font, pad, tick, line;
};

Style style_for(const PlotOptions& opt) {
  const double s = std::min(opt.width, opt.height) / 480.0;  // 1 at the default 800x480
  return {std::max(8.0, 13 * s), std::max(9.0, 16 * s), std::max(3.0, 8 * s), std::max(2.0, 5 * s), std::max(1.0, 2 * s)};
}

Frame make_frame(cairo_t* cr, const Axes& a, const Style& st, const PlotOptions& opt) {
  cairo_set_font_size(cr, st.font);
  cairo_font_extents_t fe;
  cairo_font_extents(cr, &fe);
  double ytick_w = 0;
  for (double y : a.yt) ytick_w = std::max(ytick_w, text_width(cr, format_tick(y, a.ystep)));
  const double last_x_half = text_width(cr, format_tick(a.xt.back(), a.xstep)) / 2;
  Frame f;
  // Left: the rotated y label, then the tick labels and ticks.
  f.left = st.pad + fe.height + st.pad + ytick_w + st.tick + st.pad / 2;
  f.right = opt.width - std::max(2 * st.pad, last_x_half + st.pad);
  f.top = st.pad + st.title_font * 1.3 + st.pad;
  f.bottom = opt.height - (st.pad / 2 + st.tick + fe.height + st.pad / 2 + fe.height + st.pad);
  if (f.right - f.left < 16 || f.bottom - f.top < 16)
    throw Error("plot size " + std::to_string(opt.width) + "x" + std::to_string(opt.height) + " is too small for its labels");
  f.x0 = a.xt.front(), f.x1 = a.xt.back(), f.y0 = a.yt.front(), f.y1 = a.yt.back();
  return f;
}

// Text with its anchor at (x, y): ax/ay = 0 left/top, 0.5 centre, 1 right/bottom of the ink box
// horizontally and of the font's line box vertically.
void draw_text(cairo_t* cr, const std::string& s, double x, double y, double ax, double ay) {
  cairo_font_extents_t fe;
  cairo_font_extents(cr, &fe);
  const double w = text_width(cr, s), h = fe.ascent + fe.descent;
  cairo_move_to(cr, x - ax * w, y - ay * h + fe.ascent);
  cairo_show_text(cr, s.c_str());
}

// 1-pixel lines on pixel centres stay crisp instead of smearing over two rows.
double crisp(double v) { return std::floor(v) + 0.5; }

void draw_grid_and_ticks(cairo_t* cr, const Axes& a, const Frame& f, const Style& st) {
  cairo_set_line_width(cr, 1);
  set_color(cr, kGrid);
  for (double x : a.xt) cairo_move_to(cr, crisp(f.px(x)), f.top), cairo_line_to(cr, crisp(f.px(x)), f.bottom);
  for (double y : a.yt) cairo_move_to(cr, f.left, crisp(f.py(y))), cairo_line_to(cr, f.right, crisp(f.py(y)));
  cairo_stroke(cr);
  set_color(cr, kFrame);
  cairo_rectangle(cr, crisp(f.left), crisp(f.top), crisp(f.right) - crisp(f.left), crisp(f.bottom) - crisp(f.top));
  cairo_stroke(cr);
  set_color(cr, kBlack);
  for (double x : a.xt) cairo_move_to(cr, crisp(f.px(x)), crisp(f.bottom)), cairo_rel_line_to(cr, 0, st.tick);
  for (double y : a.yt) cairo_move_to(cr, crisp(f.left), crisp(f.py(y))), cairo_rel_line_to(cr, -st.tick, 0);
  cairo_move_to(cr, crisp(f.left), f.top), cairo_line_to(cr, crisp(f.left), crisp(f.bottom));
  cairo_line_to(cr, f.right, crisp(f.bottom));
  cairo_stroke(cr);
  cairo_set_font_size(cr, st.font);
  set_color(cr, kText);
  for (double x : a.xt) draw_text(cr, format_tick(x, a.xstep), f.px(x), f.bottom + st.tick + st.pad / 2, 0.5, 0);
  for (double y : a.yt) draw_text(cr, format_tick(y, a.ystep), f.left - st.tick - st.pad / 2, f.py(y), 1, 0.5);
}

void draw_labels(cairo_t* cr, const Frame& f, const Style& st, const PlotOptions& opt) {
  set_color(cr, kText);
  cairo_set_font_size(cr, st.font);
  draw_text(cr, opt.x_label, (f.left + f.right) / 2, opt.height - st.pad, 0.5, 1);
  cairo_save(cr);  // the y label reads bottom to top along the axis
  cairo_translate(cr, st.pad, (f.top + f.bottom) / 2);
  cairo_rotate(cr, -M_PI / 2);
  draw_text(cr, opt.y_label, 0, 0, 0.5, 0);
  cairo_restore(cr);
  cairo_select_font_face(cr, kFont, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
  cairo_set_font_size(cr, st.title_font);
  draw_text(cr, opt.title, opt.width / 2.0, st.pad, 0.5, 0);
  cairo_select_font_face(cr, kFont, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
}

void marker(cairo_t* cr, double x, double y, double r) {
  cairo_new_sub_path(cr);
  cairo_arc(cr, x, y, r, 0, 2 * M_PI);
}

void draw_curve(cairo_t* cr, std::vector<CurvePoint> pts, uint32_t color, bool markers, const Frame& f, const Style& st) {
  if (pts.empty()) return;
  std::stable_sort(pts.begin(), pts.end(), [](const CurvePoint& a, const CurvePoint& b) { return a.step < b.step; });
  set_color(cr, color);
  cairo_set_line_width(cr, st.line);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  for (const auto& p : pts) cairo_line_to(cr, f.px(p.step), f.py(p.value));
  cairo_stroke(cr);
  if (!markers && pts.size() > 1) return;  // a lone point would be invisible without its marker
  for (const auto& p : pts) marker(cr, f.px(p.step), f.py(p.value), 2 * st.line);
  cairo_fill(cr);
}

void draw_legend(cairo_t* cr, const LossCurve& c, const Frame& f, const Style& st) {
  struct Entry {
    const char* label;
    uint32_t color;
    bool marker;
  };
  std::vector<Entry> entries;
  if (!c.train.empty()) entries.push_back({"train loss", kTrainColor, false});
  if (!c.validation.empty()) entries.push_back({"validation loss", kValidationColor, true});
  if (entries.empty()) return;
  cairo_set_font_size(cr, st.font);
  cairo_font_extents_t fe;
  cairo_font_extents(cr, &fe);
  double text_w = 0;
  for (const auto& e : entries) text_w = std::max(text_w, text_width(cr, e.label));
  const double sample_w = 2.5 * st.font, row_h = fe.height + st.pad / 2;
  const double w = st.pad + sample_w + st.pad + text_w + st.pad, h = st.pad + entries.size() * row_h;
  const double x0 = f.right - st.pad - w, y0 = f.top + st.pad;
  cairo_rectangle(cr, crisp(x0), crisp(y0), std::round(w), std::round(h));
  set_color(cr, 0xffffff, 0.9);  // the curves stay faintly visible under the box
  cairo_fill_preserve(cr);
  set_color(cr, kFrame);
  cairo_set_line_width(cr, 1);
  cairo_stroke(cr);
  for (size_t i = 0; i < entries.size(); ++i) {
    const double cy = y0 + st.pad / 2 + (i + 0.5) * row_h;
    set_color(cr, entries[i].color);
    cairo_set_line_width(cr, st.line);
    cairo_move_to(cr, x0 + st.pad, cy), cairo_rel_line_to(cr, sample_w, 0);
    cairo_stroke(cr);
    if (entries[i].marker) marker(cr, x0 + st.pad + sample_w / 2, cy, 2 * st.line), cairo_fill(cr);
    set_color(cr, kText);
    draw_text(cr, entries[i].label, x0 + 2 * st.pad + sample_w, cy, 0, 0.5);
  }
}

void draw_plot(cairo_t* cr, const LossCurve& c, const PlotOptions& opt) {
  const Style st = style_for(opt);
  const Axes a = make_axes(c);
  cairo_select_font_face(cr, kFont, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  const Frame f = make_frame(cr, a, st, opt);
  set_color(cr, 0xffffff);
  cairo_paint(cr);
  draw_grid_and_ticks(cr, a, f, st);
  draw_labels(cr, f, st, opt);
  cairo_save(cr);  // curves outside the axes' range (none today) would not spill over the labels
  cairo_rectangle(cr, f.left, f.top, f.right - f.left, f.bottom - f.top);
  cairo_clip(cr);
  draw_curve(cr, c.train, kTrainColor, false, f, st);
  draw_curve(cr, c.validation, kValidationColor, true, f, st);
  cairo_restore(cr);
  draw_legend(cr, c, f, st);
}

void check_size(const PlotOptions& opt) {
  if (opt.width < 64 || opt.height < 48 || opt.width > 16384 || opt.height > 16384)
    throw Error("plot size " + std::to_string(opt.width) + "x" + std::to_string(opt.height) +
                " is outside 64x48 .. 16384x16384");
}

void check_cairo(cairo_status_t s, const char* what) {
  if (s != CAIRO_STATUS_SUCCESS) throw Error(std::string("cannot draw the loss-curve ") + what + ": " + cairo_status_to_string(s));
}

// Frees cairo's and fontconfig's process-wide font caches once a plot is done (the next plot
// loads them again, a few milliseconds). Left alone they are never freed, and LeakSanitizer
// reports them in every test and CLI run that draws a plot. Declared before any cairo object, so
// it runs after they are all destroyed, as cairo_debug_reset_static_data requires; nothing else
// in lmforge uses cairo or fontconfig, and plots are drawn from one thread.
struct FontCacheRelease {
  FontCacheRelease() = default;
  FontCacheRelease(const FontCacheRelease&) = delete;
  FontCacheRelease& operator=(const FontCacheRelease&) = delete;
  ~FontCacheRelease() {
    cairo_debug_reset_static_data();
    FcFini();
  }
};

cairo_status_t append_bytes(void* closure, const unsigned char* data, unsigned int length) {
  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
  return CAIRO_STATUS_SUCCESS;
}

// Draws onto `surface`, checking every step (cairo records errors instead of throwing).
void render(cairo_surface_t* surface, const LossCurve& c, const PlotOptions& opt, const char* what) {
  check_cairo(cairo_surface_status(surface), what);
  Context cr(cairo_create(surface), cairo_destroy);
  draw_plot(cr.get(), c, opt);
  check_cairo(cairo_status(cr.get()), what);
  cairo_surface_flush(surface);
  check_cairo(cairo_surface_status(surface), what);
}

}  // namespace

// ---- ticks -----------------------------------------------------------------------------------

std::vector<double> nice_ticks(double lo, double hi, int max_ticks) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) return {0.0, 1.0};
  if (hi < lo) std::swap(lo, hi);
  if (hi == lo) {
    lo -= 0.5;
    hi += 0.5;
  }
  max_ticks = std::max(max_ticks, 1);
  const double raw = (hi - lo) / max_ticks;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  const double step = (norm <= 1.0 + 1e-9 ? 1.0 : norm <= 2.0 + 1e-9 ? 2.0 : norm <= 5.0 + 1e-9 ? 5.0 : 10.0) * mag;
  const double first = std::floor(lo / step + 1e-9);
  const double last = std::ceil(hi / step - 1e-9);
  std::vector<double> t;
  for (double k = first; k <= last + 0.5; k += 1.0) {
    double v = k * step;
    if (std::abs(v) < step * 1e-9) v = 0.0;  // no "-0"
    t.push_back(v);
  }
  if (t.size() < 2) t.push_back(t.back() + step);
  return t;
}

std::string format_tick(double v, double step) {
  char buf[64];
  if (v == 0.0) return "0";
  const double a = std::abs(v);
  if (a >= 1e6 || step < 1e-4) {
    std::snprintf(buf, sizeof buf, "%.3g", v);
    return buf;
  }
  int decimals = 0;
  if (step < 1.0) decimals = static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
  std::snprintf(buf, sizeof buf, "%.*f", std::clamp(decimals, 0, 10), v);
  return buf;
}

// ---- files -----------------------------------------------------------------------------------

std::string loss_curve_png(const LossCurve& curve, const PlotOptions& opt) {
  check_size(opt);
  const FontCacheRelease release;
  Surface surface(cairo_image_surface_create(CAIRO_FORMAT_RGB24, opt.width, opt.height), cairo_surface_destroy);
  render(surface.get(), curve, opt, "PNG");
  std::string bytes;
  check_cairo(cairo_surface_write_to_png_stream(surface.get(), append_bytes, &bytes), "PNG");
  return bytes;
}

std::string loss_curve_svg(const LossCurve& curve, const PlotOptions& opt) {
  check_size(opt);
  std::string bytes;  // before `release`: the SVG surface writes into it until destroyed
  const FontCacheRelease release;
  Surface surface(cairo_svg_surface_create_for_stream(append_bytes, &bytes, opt.width, opt.height), cairo_surface_destroy);
  cairo_svg_surface_set_document_unit(surface.get(), CAIRO_SVG_UNIT_PX);  // 800x480 pixels, as the PNG
  render(surface.get(), curve, opt, "SVG");
  cairo_surface_finish(surface.get());  // the SVG document is written out here
  check_cairo(cairo_surface_status(surface.get()), "SVG");
  return bytes;
}

// Encoded in memory first, so a drawing error never leaves a file behind, then written to a
// temporary name and renamed: a reader never sees half a plot.
void write_loss_curve_png(const fs::path& file, const LossCurve& curve, const PlotOptions& opt) {
  write_file_atomic(file, loss_curve_png(curve, opt));
}

void write_loss_curve_svg(const fs::path& file, const LossCurve& curve, const PlotOptions& opt) {
  write_file_atomic(file, loss_curve_svg(curve, opt));
}

}  // namespace lmforge
