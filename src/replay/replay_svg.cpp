// kmm/replay/replay_svg.cpp — the replay's picture: plain SVG 1.1 written by hand.
//
// Three stacked charts share the x axis (operation number): footprint, live payload, and the
// largest free block, one coloured polyline per policy, with a legend; below them, each
// policy's final physical map as a row of cells (dark: used, light: free), the picture the
// scenario `map` command prints as X and -. No dependencies; opens in any browser.
//
// Also markup_text (replay.h), the one escape of text for SVG and for the HTML report.
//
// Depends on: replay/replay.h, fmt.
// Invariant: the SVG stands alone (no script, no external reference but the namespace).
#include <fmt/format.h>

#include <algorithm>
#include <ostream>

#include "replay/replay.h"

namespace kmm::scenario {
namespace {

const char* const kColours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string human(double b) {
  if (b >= 1 << 20) return fmt::format("{:.1f} MiB", b / (1 << 20));
  if (b >= 1 << 10) return fmt::format("{:.0f} KiB", b / (1 << 10));
  return fmt::format("{:.0f} B", b);
}

std::string escape(const std::string& s) {
  return markup_text(s);
}

// The length of the valid UTF-8 sequence at s[i], or 0; *bad = bytes of its longest valid
// start (at least 1), which one U+FFFD replaces (as decoders do: "\xe2\x82" is one).
std::size_t utf8_length(std::string_view s, std::size_t i, std::size_t* bad) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  std::size_t need = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // the range of the second byte
  if (c >= 0xc2 && c <= 0xdf) {
    need = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    need = 3;
    if (c == 0xe0) lo = 0xa0;  // overlong
    if (c == 0xed) hi = 0x9f;  // surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    need = 4;
    if (c == 0xf0) lo = 0x90;  // overlong
    if (c == 0xf4) hi = 0x8f;  // above U+10FFFF
  }
  std::size_t j = 1;
  while (need != 0 && j < need && i + j < s.size()) {
    const unsigned char d = b(i + j);
    if (j == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xbf)) break;
    ++j;
  }
  if (need != 0 && j == need) return need;
  *bad = j;
  return 0;
}

}  // namespace

std::string markup_text(std::string_view s) {
  static const char kReplacement[] = "\xef\xbf\xbd";  // U+FFFD
  std::string o;
  o.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80) {
      if (c == '<')
        o += "&lt;";
      else if (c == '>')
        o += "&gt;";
      else if (c == '&')
        o += "&amp;";
      else if (c == '"')
        o += "&quot;";
      else if (c == '\'')
        o += "&#39;";
      else if ((u < 0x20 && c != '\t' && c != '\n' && c != '\r') || u == 0x7f)
        o += kReplacement;  // XML 1.0 holds no control character, not even as &#1;
      else
        o += c;
      ++i;
      continue;
    }
    std::size_t bad = 1;
    std::size_t n = utf8_length(s, i, &bad);
    if (n != 0) {
      o.append(s.substr(i, n));
      i += n;
    } else {
      o += kReplacement;
      i += bad;
    }
  }
  return o;
}

void write_timeline_svg(std::ostream& out, const Trace& t, const std::vector<ReplayResult>& rs) {
  const int width = 900, left = 90, right = 170, chart_h = 180, gap = 50, top = 40;
  const int plot_w = width - left - right;
  struct Measure {
    const char* title;
    std::uint64_t ReplaySample::*field;
  };
  const Measure measures[] = {{"footprint (bytes taken from the free pool)", &ReplaySample::footprint},
                              {"live payload (bytes the program asked for)", &ReplaySample::live},
                              {"largest free block", &ReplaySample::largest_free}};
  std::vector<const ReplayResult*> runs;
  for (const ReplayResult& r : rs)
    if (!r.timeline.empty()) runs.push_back(&r);
  std::uint64_t max_op = 1;
  for (const ReplayResult* r : runs) max_op = std::max(max_op, r->timeline.back().op);
  int maps_top = top + 3 * (chart_h + gap);
  int map_row = 22;
  int height = maps_top + 30 + static_cast<int>(runs.size()) * map_row + 20;

  out << fmt::format(R"(<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{}" height="{}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="20" font-size="15" font-weight="bold">kmm replay: {} ({} operations)</text>
)",
                     width, height, left, escape(t.name), t.ops.size());
  for (int m = 0; m < 3; ++m) {
    int y0 = top + m * (chart_h + gap);
    std::uint64_t ymax = 1;
    for (const ReplayResult* r : runs)
      for (const ReplaySample& s : r->timeline) ymax = std::max(ymax, s.*(measures[m].field));
    out << fmt::format(R"(<text x="{}" y="{}" font-weight="bold">{}</text>
<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#888"/>
)",
                       left, y0 + 12, measures[m].title, left, y0 + 18, plot_w, chart_h - 18);
    int py0 = y0 + 18, ph = chart_h - 18;
    for (int g = 0; g <= 4; ++g) {
      double v = static_cast<double>(ymax) * g / 4;
      int y = py0 + ph - ph * g / 4;
      out << fmt::format(
          R"(<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{}</text>
)",
          left, y, left + plot_w, y, left - 4, y + 4, human(v));
    }
    out << fmt::format(R"(<text x="{}" y="{}" text-anchor="end">op {}</text>
)",
                       left + plot_w, py0 + ph + 14, max_op);
    for (std::size_t i = 0; i < runs.size(); ++i) {
      out << fmt::format(R"(<polyline fill="none" stroke="{}" stroke-width="1.3" points=")", kColours[i % 10]);
      // At most ~200 points a line: enough for 640 pixels, and the file stays small.
      const std::vector<ReplaySample>& tl = runs[i]->timeline;
      std::size_t stride = std::max<std::size_t>(1, (tl.size() + 199) / 200);
      auto point = [&](const ReplaySample& sm) {
        double x = left + plot_w * static_cast<double>(sm.op) / static_cast<double>(max_op);
        double y = py0 + ph - ph * static_cast<double>(sm.*(measures[m].field)) / static_cast<double>(ymax);
        out << fmt::format("{:.0f},{:.1f} ", x, y);
      };
      for (std::size_t j = 0; j < tl.size(); j += stride) point(tl[j]);
      if ((tl.size() - 1) % stride != 0) point(tl.back());
      out << "\"/>\n";
    }
  }
  // Legend.
  for (std::size_t i = 0; i < runs.size(); ++i) {
    int y = top + 30 + static_cast<int>(i) * 18;
    out << fmt::format(R"(<rect x="{}" y="{}" width="14" height="4" fill="{}"/><text x="{}" y="{}">{}</text>
)",
                       left + plot_w + 12, y - 4, kColours[i % 10], left + plot_w + 32, y, escape(runs[i]->policy));
  }
  // Final maps.
  out << fmt::format(R"(<text x="{}" y="{}" font-weight="bold">final physical map (dark: used, light: free)</text>
)",
                     left, maps_top + 12);
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const ReplayResult& r = *runs[i];
    int y = maps_top + 22 + static_cast<int>(i) * map_row;
    out << fmt::format(R"(<text x="{}" y="{}" text-anchor="end">{}</text>
)",
                       left - 4, y + 12, escape(r.policy));
    std::size_t cells = 0;
    for (char c : r.map) cells += c == 'X' || c == '-';
    if (cells == 0) continue;
    double cw = static_cast<double>(plot_w) / static_cast<double>(cells);
    // One rectangle per run of equal cells.
    std::string cells_only;
    for (char c : r.map)
      if (c == 'X' || c == '-') cells_only += c;
    for (std::size_t k = 0; k < cells_only.size();) {
      std::size_t e = k;
      while (e < cells_only.size() && cells_only[e] == cells_only[k]) ++e;
      out << fmt::format(R"(<rect x="{:.1f}" y="{}" width="{:.1f}" height="14" fill="{}"/>)",
                         left + cw * static_cast<double>(k), y, cw * static_cast<double>(e - k),
                         cells_only[k] == 'X' ? "#444" : "#ddd");
      k = e;
    }
    out << fmt::format(R"(<text x="{}" y="{}">{} a cell</text>
)",
                       left + plot_w + 8, y + 12, human(static_cast<double>(r.map_scale)));
  }
  out << "</svg>\n";
}

}  // namespace kmm::scenario
