// Loss-curve plots: one layout, rendered to an RGB raster (-> PNG via libpng) or to SVG.
#include <png.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "lmforge/error.h"
#include "lmforge/train/metrics.h"
#include "lmforge/train/train_state.h"

namespace lmforge {

namespace fs = std::filesystem;

namespace {

constexpr uint32_t kWhite = 0xffffff, kBlack = 0x000000, kGrid = 0xe0e0e0, kFrame = 0x808080;

struct Layout {
  int W = 0, H = 0, s = 1;
  int left = 0, right = 0, top = 0, bottom = 0;  // plot rectangle, inclusive pixel bounds
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  std::vector<double> xt, yt;
  double xstep = 1, ystep = 1;
  int pad = 6, char_h = 7, tick = 4;

  double px(double x) const { return left + (x - x0) / (x1 - x0) * (right - left); }
  double py(double y) const { return bottom - (y - y0) / (y1 - y0) * (bottom - top); }
};

void span_of(const std::vector<CurvePoint>& pts, double& lo, double& hi, bool x) {
  for (const auto& p : pts) {
    const double v = x ? p.step : p.value;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
}

Layout make_layout(const LossCurve& c, const PlotOptions& opt) {
  if (opt.width < 64 || opt.height < 48 || opt.width > 16384 || opt.height > 16384)
    throw Error("plot size " + std::to_string(opt.width) + "x" + std::to_string(opt.height) + " is outside 64x48 .. 16384x16384");
  Layout L;
  L.W = opt.width;
  L.H = opt.height;
  L.s = std::max(1, std::min(L.W, L.H) / 240);
  L.pad = 6 * L.s;
  L.char_h = 7 * L.s;
  L.tick = 4 * L.s;

  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  span_of(c.train, xlo, xhi, true);
  span_of(c.validation, xlo, xhi, true);
  span_of(c.train, ylo, yhi, false);
  span_of(c.validation, ylo, yhi, false);
  if (!(xlo <= xhi)) xlo = 0, xhi = 1;
  if (!(ylo <= yhi)) ylo = 0, yhi = 1;
  if (xlo == xhi) xlo -= 1, xhi += 1;
  if (ylo == yhi) {
    const double d = std::max(std::abs(ylo) * 0.1, 0.5);
    ylo -= d;
    yhi += d;
  }
  L.xt = nice_ticks(xlo, xhi, 6);
  L.yt = nice_ticks(ylo, yhi, 5);
  L.x0 = L.xt.front();
  L.x1 = L.xt.back();
  L.y0 = L.yt.front();
  L.y1 = L.yt.back();
  L.xstep = L.xt.size() > 1 ? L.xt[1] - L.xt[0] : 1;
  L.ystep = L.yt.size() > 1 ? L.yt[1] - L.yt[0] : 1;

  int ylabel_w = 0;
  for (double y : L.yt) ylabel_w = std::max(ylabel_w, text_width(format_tick(y, L.ystep), L.s));
  const int last_x_half = text_width(format_tick(L.xt.back(), L.xstep), L.s) / 2;
  L.left = L.pad + ylabel_w + L.tick + L.pad / 2;
  L.right = L.W - 1 - std::max(2 * L.pad, last_x_half + L.pad / 2);
  L.top = L.pad + L.char_h + L.pad + L.char_h + L.pad;  // title, then the y label above the axis
  L.bottom = L.H - 1 - (L.pad + L.char_h + L.pad + L.char_h + L.tick + L.pad / 2);
  if (L.right - L.left < 16 || L.bottom - L.top < 16)
    throw Error("plot size " + std::to_string(opt.width) + "x" + std::to_string(opt.height) + " is too small for its labels");
  return L;
}

std::vector<CurvePoint> sorted(std::vector<CurvePoint> v) {
  std::stable_sort(v.begin(), v.end(), [](const CurvePoint& a, const CurvePoint& b) { return a.step < b.step; });
  return v;
}

void fill_rect(Image& img, int x0, int y0, int x1, int y1, uint32_t color) {
  for (int y = y0; y <= y1; ++y)
    for (int x = x0; x <= x1; ++x) img.set(x, y, color);
}

// Bresenham with a square brush of side `w`.
void draw_line(Image& img, int x0, int y0, int x1, int y1, uint32_t color, int w) {
  const int dx = std::abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
  const int dy = -std::abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
  int err = dx + dy;
  const int lo = -(w - 1) / 2, hi = w / 2;
  for (;;) {
    fill_rect(img, x0 + lo, y0 + lo, x0 + hi, y0 + hi, color);
    if (x0 == x1 && y0 == y1) break;
    const int e2 = 2 * err;
    if (e2 >= dy) {
      err += dy;
      x0 += sx;
    }
    if (e2 <= dx) {
      err += dx;
      y0 += sy;
    }
  }
}

int iround(double v) { return static_cast<int>(std::lround(v)); }

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&apos;"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t') o += ' ';
        else o += c;
    }
  }
  return o;
}

std::string hex_color(uint32_t c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%06x", c & 0xffffffu);
  return buf;
}

struct LegendEntry {
  std::string label;
  uint32_t color;
  bool marker;
};

std::vector<LegendEntry> legend_entries(const LossCurve& c) {
  std::vector<LegendEntry> e;
  if (!c.train.empty()) e.push_back({"train loss", kTrainColor, false});
  if (!c.validation.empty()) e.push_back({"validation loss", kValidationColor, true});
  return e;
}

// libpng's error path longjmps: keep it in a function whose locals are all trivially destructible.
const char* png_write_rows(std::FILE* fp, int w, int h, const uint8_t* rgb) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  if (png == nullptr) return "cannot create the PNG writer";
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    return "cannot create the PNG info";
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return "libpng failed while writing";
  }
  png_init_io(png, fp);
  png_set_IHDR(png, info, static_cast<png_uint_32>(w), static_cast<png_uint_32>(h), 8, PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < h; ++y) png_write_row(png, const_cast<png_bytep>(rgb + static_cast<size_t>(y) * w * 3));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return nullptr;
}

}  // namespace

// ---- Image -----------------------------------------------------------------------------------

void Image::set(int x, int y, uint32_t color) {
  if (x < 0 || y < 0 || x >= width || y >= height) return;
  uint8_t* p = rgb.data() + (static_cast<size_t>(y) * width + x) * 3;
  p[0] = static_cast<uint8_t>(color >> 16);
  p[1] = static_cast<uint8_t>(color >> 8);
  p[2] = static_cast<uint8_t>(color);
}

uint32_t Image::get(int x, int y) const {
  if (x < 0 || y < 0 || x >= width || y >= height) return 0;
  const uint8_t* p = rgb.data() + (static_cast<size_t>(y) * width + x) * 3;
  return (uint32_t{p[0]} << 16) | (uint32_t{p[1]} << 8) | p[2];
}

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

// ---- raster ----------------------------------------------------------------------------------

Image render_loss_curve(const LossCurve& curve, const PlotOptions& opt) {
  const Layout L = make_layout(curve, opt);
  Image img;
  img.width = L.W;
  img.height = L.H;
  img.rgb.assign(static_cast<size_t>(L.W) * L.H * 3, 0xff);
  const int s = L.s;

  // Grid and ticks.
  for (double x : L.xt) {
    const int X = iround(L.px(x));
    draw_line(img, X, L.top, X, L.bottom, kGrid, 1);
    draw_line(img, X, L.bottom, X, L.bottom + L.tick, kBlack, std::max(1, s / 2));
    const std::string lab = format_tick(x, L.xstep);
    draw_text(img, X - text_width(lab, s) / 2, L.bottom + L.tick + L.pad / 2, lab, kBlack, s);
  }
  for (double y : L.yt) {
    const int Y = iround(L.py(y));
    draw_line(img, L.left, Y, L.right, Y, kGrid, 1);
    draw_line(img, L.left - L.tick, Y, L.left, Y, kBlack, std::max(1, s / 2));
    const std::string lab = format_tick(y, L.ystep);
    draw_text(img, L.left - L.tick - L.pad / 2 - text_width(lab, s), Y - L.char_h / 2, lab, kBlack, s);
  }
  // Frame: black axes (left, bottom), grey top/right.
  draw_line(img, L.left, L.top, L.right, L.top, kFrame, 1);
  draw_line(img, L.right, L.top, L.right, L.bottom, kFrame, 1);
  draw_line(img, L.left, L.top, L.left, L.bottom, kBlack, std::max(1, s / 2));
  draw_line(img, L.left, L.bottom, L.right, L.bottom, kBlack, std::max(1, s / 2));

  // Labels.
  draw_text(img, (L.W - text_width(opt.title, s)) / 2, L.pad, opt.title, kBlack, s);
  draw_text(img, L.pad, L.pad + L.char_h + L.pad, opt.y_label, kBlack, s);
  draw_text(img, L.left + (L.right - L.left - text_width(opt.x_label, s)) / 2, L.H - L.pad - L.char_h, opt.x_label,
            kBlack, s);

  // Curves.
  auto plot = [&](const std::vector<CurvePoint>& pts, uint32_t color, bool markers) {
    const auto p = sorted(pts);
    for (size_t i = 0; i < p.size(); ++i) {
      const int X = iround(L.px(p[i].step)), Y = iround(L.py(p[i].value));
      if (i > 0) draw_line(img, iround(L.px(p[i - 1].step)), iround(L.py(p[i - 1].value)), X, Y, color, s);
      if (markers || p.size() == 1) fill_rect(img, X - 2 * s, Y - 2 * s, X + 2 * s, Y + 2 * s, color);
    }
  };
  plot(curve.train, kTrainColor, false);
  plot(curve.validation, kValidationColor, true);

  // Legend, inside the plot's top-right corner.
  const auto entries = legend_entries(curve);
  if (!entries.empty()) {
    int text_w = 0;
    for (const auto& e : entries) text_w = std::max(text_w, text_width(e.label, s));
    const int sample_w = 16 * s, row_h = L.char_h + L.pad;
    const int box_w = L.pad + sample_w + L.pad + text_w + L.pad;
    const int box_h = L.pad / 2 + static_cast<int>(entries.size()) * row_h + L.pad / 2;
    const int bx1 = L.right - L.pad, bx0 = bx1 - box_w, by0 = L.top + L.pad, by1 = by0 + box_h;
    fill_rect(img, bx0, by0, bx1, by1, kWhite);
    draw_line(img, bx0, by0, bx1, by0, kFrame, 1);
    draw_line(img, bx0, by1, bx1, by1, kFrame, 1);
    draw_line(img, bx0, by0, bx0, by1, kFrame, 1);
    draw_line(img, bx1, by0, bx1, by1, kFrame, 1);
    for (size_t i = 0; i < entries.size(); ++i) {
      const int ty = by0 + L.pad / 2 + static_cast<int>(i) * row_h + L.pad / 2;
      const int cy = ty + L.char_h / 2;
      draw_line(img, bx0 + L.pad, cy, bx0 + L.pad + sample_w, cy, entries[i].color, s);
      if (entries[i].marker) {
        const int mx = bx0 + L.pad + sample_w / 2;
        fill_rect(img, mx - 2 * s, cy - 2 * s, mx + 2 * s, cy + 2 * s, entries[i].color);
      }
      draw_text(img, bx0 + L.pad + sample_w + L.pad, ty, entries[i].label, kBlack, s);
    }
  }
  return img;
}

void write_png(const fs::path& file, const Image& img) {
  if (img.width <= 0 || img.height <= 0 || img.rgb.size() != static_cast<size_t>(img.width) * img.height * 3)
    throw Error("cannot write '" + file.string() + "': malformed image");
  const fs::path tmp = file.string() + ".tmp";
  std::FILE* fp = std::fopen(tmp.c_str(), "wb");
  if (fp == nullptr) throw Error("cannot write '" + tmp.string() + "': " + std::strerror(errno));
  const char* err = png_write_rows(fp, img.width, img.height, img.rgb.data());
  const bool closed = std::fclose(fp) == 0;
  if (err != nullptr || !closed) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw Error("cannot write '" + file.string() + "': " + (err != nullptr ? err : "write error"));
  }
  std::error_code ec;
  fs::rename(tmp, file, ec);
  if (ec) throw Error("cannot rename '" + tmp.string() + "' to '" + file.string() + "': " + ec.message());
}

void write_loss_curve_png(const fs::path& file, const LossCurve& curve, const PlotOptions& opt) {
  write_png(file, render_loss_curve(curve, opt));
}

// ---- SVG -------------------------------------------------------------------------------------

std::string loss_curve_svg(const LossCurve& curve, const PlotOptions& opt) {
  const Layout L = make_layout(curve, opt);
  const int s = L.s;
  const int fs_px = 10 * s;  // font size whose capitals are about the bitmap font's 7*s
  std::ostringstream o;
  o.precision(6);
  o << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << L.W << "\" height=\"" << L.H << "\" viewBox=\"0 0 " << L.W
    << ' ' << L.H << "\" font-family=\"monospace\" font-size=\"" << fs_px << "\">\n"
    << "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";
  o << "<g stroke=\"" << hex_color(kGrid) << "\" stroke-width=\"1\">\n";
  for (double x : L.xt) o << "<line x1=\"" << L.px(x) << "\" y1=\"" << L.top << "\" x2=\"" << L.px(x) << "\" y2=\"" << L.bottom << "\"/>\n";
  for (double y : L.yt) o << "<line x1=\"" << L.left << "\" y1=\"" << L.py(y) << "\" x2=\"" << L.right << "\" y2=\"" << L.py(y) << "\"/>\n";
  o << "</g>\n";
  o << "<rect x=\"" << L.left << "\" y=\"" << L.top << "\" width=\"" << L.right - L.left << "\" height=\"" << L.bottom - L.top
    << "\" fill=\"none\" stroke=\"" << hex_color(kFrame) << "\"/>\n";
  o << "<g stroke=\"#000000\" stroke-width=\"" << std::max(1, s / 2) << "\">\n"
    << "<line x1=\"" << L.left << "\" y1=\"" << L.top << "\" x2=\"" << L.left << "\" y2=\"" << L.bottom << "\"/>\n"
    << "<line x1=\"" << L.left << "\" y1=\"" << L.bottom << "\" x2=\"" << L.right << "\" y2=\"" << L.bottom << "\"/>\n";
  for (double x : L.xt) o << "<line x1=\"" << L.px(x) << "\" y1=\"" << L.bottom << "\" x2=\"" << L.px(x) << "\" y2=\"" << L.bottom + L.tick << "\"/>\n";
  for (double y : L.yt) o << "<line x1=\"" << L.left - L.tick << "\" y1=\"" << L.py(y) << "\" x2=\"" << L.left << "\" y2=\"" << L.py(y) << "\"/>\n";
  o << "</g>\n";
  o << "<g fill=\"#000000\">\n";
  for (double x : L.xt)
    o << "<text class=\"xtick\" x=\"" << L.px(x) << "\" y=\"" << L.bottom + L.tick + L.pad / 2 + L.char_h
      << "\" text-anchor=\"middle\">" << xml_escape(format_tick(x, L.xstep)) << "</text>\n";
  for (double y : L.yt)
    o << "<text class=\"ytick\" x=\"" << L.left - L.tick - L.pad / 2 << "\" y=\"" << L.py(y) + L.char_h / 2.0
      << "\" text-anchor=\"end\">" << xml_escape(format_tick(y, L.ystep)) << "</text>\n";
  o << "<text class=\"title\" x=\"" << L.W / 2.0 << "\" y=\"" << L.pad + L.char_h << "\" text-anchor=\"middle\">"
    << xml_escape(opt.title) << "</text>\n";
  o << "<text class=\"ylabel\" x=\"" << L.pad << "\" y=\"" << L.pad + L.char_h + L.pad + L.char_h << "\">"
    << xml_escape(opt.y_label) << "</text>\n";
  o << "<text class=\"xlabel\" x=\"" << (L.left + L.right) / 2.0 << "\" y=\"" << L.H - L.pad << "\" text-anchor=\"middle\">"
    << xml_escape(opt.x_label) << "</text>\n";
  o << "</g>\n";

  auto plot = [&](const std::vector<CurvePoint>& pts, uint32_t color, const char* cls, bool markers) {
    if (pts.empty()) return;
    const auto p = sorted(pts);
    o << "<polyline class=\"" << cls << "\" fill=\"none\" stroke=\"" << hex_color(color) << "\" stroke-width=\"" << s
      << "\" stroke-linejoin=\"round\" points=\"";
    for (size_t i = 0; i < p.size(); ++i) o << (i ? " " : "") << L.px(p[i].step) << ',' << L.py(p[i].value);
    o << "\"/>\n";
    if (markers || p.size() == 1)
      for (const auto& q : p)
        o << "<rect class=\"" << cls << "-marker\" x=\"" << L.px(q.step) - 2 * s << "\" y=\"" << L.py(q.value) - 2 * s
          << "\" width=\"" << 4 * s << "\" height=\"" << 4 * s << "\" fill=\"" << hex_color(color) << "\"/>\n";
  };
  plot(curve.train, kTrainColor, "train", false);
  plot(curve.validation, kValidationColor, "validation", true);

  const auto entries = legend_entries(curve);
  if (!entries.empty()) {
    int text_w = 0;
    for (const auto& e : entries) text_w = std::max(text_w, text_width(e.label, s));
    const int sample_w = 16 * s, row_h = L.char_h + L.pad;
    const int box_w = L.pad + sample_w + L.pad + text_w + L.pad;
    const int box_h = L.pad / 2 + static_cast<int>(entries.size()) * row_h + L.pad / 2;
    const int bx1 = L.right - L.pad, bx0 = bx1 - box_w, by0 = L.top + L.pad;
    o << "<g class=\"legend\">\n<rect x=\"" << bx0 << "\" y=\"" << by0 << "\" width=\"" << box_w << "\" height=\"" << box_h
      << "\" fill=\"#ffffff\" stroke=\"" << hex_color(kFrame) << "\"/>\n";
    for (size_t i = 0; i < entries.size(); ++i) {
      const int ty = by0 + L.pad / 2 + static_cast<int>(i) * row_h + L.pad / 2;
      const int cy = ty + L.char_h / 2;
      o << "<line x1=\"" << bx0 + L.pad << "\" y1=\"" << cy << "\" x2=\"" << bx0 + L.pad + sample_w << "\" y2=\"" << cy
        << "\" stroke=\"" << hex_color(entries[i].color) << "\" stroke-width=\"" << s << "\"/>\n";
      o << "<text x=\"" << bx0 + L.pad + sample_w + L.pad << "\" y=\"" << ty + L.char_h << "\">"
        << xml_escape(entries[i].label) << "</text>\n";
    }
    o << "</g>\n";
  }
  o << "</svg>\n";
  return o.str();
}

void write_loss_curve_svg(const fs::path& file, const LossCurve& curve, const PlotOptions& opt) {
  write_file_atomic(file, loss_curve_svg(curve, opt));
}

}  // namespace lmforge
