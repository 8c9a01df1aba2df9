// kmm/report/run_report.cpp — the HTML report of a scenario run or a replay (run_report.h).
// Depends on: proc/, scenario/scenario.h, replay/ (trace, replay), fmt. Invariants: those of
// run_report.h (every number read from the machine as its line ran; the page stands alone).
#include "report/run_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ostream>
#include <sstream>

#include "proc/proc.h"
#include "replay/replay.h"
#include "replay/trace.h"

namespace kmm::scenario {

namespace {

constexpr const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

// Names and lines come from files (a trace's name is bytes): replay.h's markup_text.
std::string esc(const std::string& s) {
  return markup_text(s);
}

std::string ms(std::uint64_t ns) {
  return fmt::format("{:.1f} ms", static_cast<double>(ns) / 1e6);
}

struct Series {
  std::string name;
  std::vector<double> y;
};

// A line chart over the run's lines: x is the line's index (machine time often stands still
// for many lines and jumps at a sleep), each point's tooltip says which line and when.
void line_chart(std::ostream& out, const std::string& title, const std::string& unit, const std::vector<Series>& series,
                const std::vector<RunRecorder::Sample>& samples, const std::vector<std::size_t>& marks) {
  const double W = 960, H = 300, L = 70, R = 170, T = 30, B = 40;
  std::size_t n = samples.size();
  // The y range fits the data (MemFree moves by a few hundred kB on a 192 MB machine): from 0
  // when the smallest value is under a third of the largest, else from just below it.
  double lo = 0, hi = 0;
  bool any = false;
  for (const auto& s : series)
    for (double v : s.y) {
      lo = any ? std::min(lo, v) : v;
      hi = any ? std::max(hi, v) : v;
      any = true;
    }
  if (lo < hi / 3) lo = 0;
  double pad = (hi - lo) * 0.08 + (hi == lo ? std::max(1.0, hi * 0.01) : 0.0);
  double ymin = std::max(0.0, lo - pad), ymax = hi + pad;
  auto X = [&](std::size_t i) {
    return L + (n <= 1 ? 0.0 : (W - L - R) * static_cast<double>(i) / static_cast<double>(n - 1));
  };
  auto Y = [&](double v) { return T + (H - T - B) * (1.0 - (v - ymin) / (ymax - ymin)); };
  out << fmt::format(
      "<svg class=\"chart line\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "viewBox=\"0 0 {} {}\" role=\"img\">\n",
      W, H, W, H);
  out << fmt::format("<title>{}</title>\n<text x=\"{}\" y=\"18\" class=\"ct\">{}</text>\n", esc(title), L, esc(title));
  // Axes, grid and y labels.
  for (int g = 0; g <= 4; ++g) {
    double v = ymin + (ymax - ymin) * g / 4.0;
    out << fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" class=\"grid\"/>", L, Y(v), W - R,
                       Y(v));
    out << fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" class=\"yl\">{:.{}f}</text>\n", L - 6, Y(v) + 4, v,
                       ymax - ymin < 10 ? 1 : 0);
  }
  out << fmt::format("<text x=\"12\" y=\"{:.1f}\" class=\"unit\" transform=\"rotate(-90 12 {:.1f})\">{}</text>\n",
                     H / 2, H / 2, esc(unit));
  // x labels: the machine clock at a few lines.
  for (int g = 0; g <= 4 && n > 0; ++g) {
    std::size_t i = (n - 1) * static_cast<std::size_t>(g) / 4;
    out << fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" class=\"xl\">{}</text>\n", X(i), H - B + 16,
                       ms(samples[i].t_ns));
  }
  out << fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" class=\"xl\">machine time (one step per line)</text>\n",
                     (L + W - R) / 2, H - 6);
  for (std::size_t m : marks) {
    out << fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" class=\"pass\"><title>collector "
        "pass after {3}: {4}</title></line>\n",
        X(m), T, H - B, esc(samples[m].where), esc(samples[m].line));
  }
  for (std::size_t k = 0; k < series.size(); ++k) {
    const char* color = kPalette[k % (sizeof kPalette / sizeof kPalette[0])];
    std::string pts;
    for (std::size_t i = 0; i < n; ++i) pts += fmt::format("{:.1f},{:.1f} ", X(i), Y(series[k].y[i]));
    out << fmt::format(
        "<polyline class=\"series\" data-name=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\" "
        "points=\"{}\"/>\n",
        esc(series[k].name), color, pts);
    for (std::size_t i = 0; i < n; ++i) {
      out << fmt::format(
          "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"><title>{} {} = {:.0f} {} at {} ({})"
          "</title></circle>",
          X(i), Y(series[k].y[i]), color, esc(samples[i].where), esc(series[k].name), series[k].y[i], esc(unit),
          ms(samples[i].t_ns), esc(samples[i].line));
    }
    double ly = T + 16.0 * static_cast<double>(k);
    out << fmt::format(
        "\n<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"12\" height=\"4\" fill=\"{}\"/><text x=\"{:.1f}\" "
        "y=\"{:.1f}\" class=\"lg\">{}</text>\n",
        W - R + 10, ly, color, W - R + 28, ly + 6, esc(series[k].name));
  }
  if (!marks.empty()) {
    double ly = T + 16.0 * static_cast<double>(series.size());
    out << fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{2:.1f}\" y2=\"{1:.1f}\" class=\"pass\"/><text "
        "x=\"{3:.1f}\" y=\"{4:.1f}\" class=\"lg\">collector pass</text>\n",
        W - R + 10, ly + 2, W - R + 22, W - R + 28, ly + 6);
  }
  out << "</svg>\n";
}

// The buddy free lists over the run: a row an order, a column a line, darker = more blocks.
void order_heatmap(std::ostream& out, const std::vector<RunRecorder::Sample>& samples) {
  const double W = 960, L = 70, R = 170, T = 30, row = 16;
  const double H = T + row * kNrOrders + 30;
  std::size_t n = samples.size();
  double cw = n == 0 ? 0 : (W - L - R) / static_cast<double>(n);
  std::uint64_t maxc = 1;
  for (const auto& s : samples)
    for (auto c : s.free_blocks) maxc = std::max(maxc, c);
  out << fmt::format(
      "<svg class=\"chart heat\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "viewBox=\"0 0 {} {}\" role=\"img\">\n<title>Free blocks by order</title>\n",
      W, H, W, H);
  out << fmt::format(
      "<text x=\"{}\" y=\"18\" class=\"ct\">Buddy free lists (/proc/buddyinfo) by order over the "
      "run</text>\n",
      L);
  for (unsigned o = 0; o < kNrOrders; ++o) {
    double y = T + row * (kNrOrders - 1 - o);
    out << fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" class=\"yl\">order {}</text>", L - 6, y + 12, o);
    for (std::size_t i = 0; i < n; ++i) {
      std::uint64_t c = samples[i].free_blocks[o];
      double a =
          c == 0 ? 0.0 : 0.15 + 0.85 * std::log1p(static_cast<double>(c)) / std::log1p(static_cast<double>(maxc));
      out << fmt::format(
          "<rect class=\"cell\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.2f}\" height=\"{}\" "
          "fill=\"#1f4e9a\" fill-opacity=\"{:.2f}\"><title>{}: {} free blocks of order {}</title></rect>",
          L + cw * static_cast<double>(i), y, std::max(cw, 0.5), row - 1, a, esc(samples[i].where), c, o);
    }
    out << "\n";
  }
  out << "</svg>\n";
}

// The seed's memory map (X used, - free) as a strip of cells.
void map_strip(std::ostream& out, const RunRecorder::Failure& f) {
  const double W = 960, H = 34, L = 70;
  std::size_t n = f.map.size();
  double cw = n == 0 ? 0 : (W - L - 20) / static_cast<double>(n);
  out << fmt::format(
      "<svg class=\"chart map\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "viewBox=\"0 0 {} {}\" role=\"img\"><title>Physical memory at the failure</title>",
      W, H, W, H);
  out << fmt::format("<text x=\"{:.1f}\" y=\"20\" class=\"yl\">RAM</text>", L - 6);
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i;
    while (j < n && f.map[j] == f.map[i]) ++j;
    out << fmt::format("<rect x=\"{:.2f}\" y=\"6\" width=\"{:.2f}\" height=\"20\" class=\"{}\"/>",
                       L + cw * static_cast<double>(i), cw * static_cast<double>(j - i),
                       f.map[i] == 'X' ? "used" : "free");
    i = j;
  }
  out << "</svg>\n";
}

const char kStyle[] = R"(<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc}
svg.chart{display:block;margin:12px 0;background:#fcfcfc;border:1px solid #e4e4e4}
.ct{font-weight:600;font-size:13px}.yl{font-size:11px;text-anchor:end}.xl{font-size:11px;text-anchor:middle}
.lg{font-size:12px}.unit{font-size:11px;text-anchor:middle}.grid{stroke:#e6e6e6}
.pass{stroke:#c0392b;stroke-dasharray:4 3;stroke-width:1.5}
rect.used{fill:#c0392b}rect.free{fill:#d5e8d4}
pre{background:#f4f4f4;padding:8px;overflow-x:auto;font-size:12px}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
td.l,th.l{text-align:left}
</style>
)";

// Checks the page in the browser that shows it: each chart has drawn something. The result
// is written into the page (body data-charts, data-empty) for a headless browser to read.
const char kCheckScript[] = R"(<script>
(function () {
  var charts = document.querySelectorAll('svg.chart'), empty = 0;
  charts.forEach(function (c) {
    var drawn = c.querySelectorAll('polyline, rect.cell, rect.used, rect.free, path, circle').length;
    if (drawn === 0) empty++;
  });
  document.body.setAttribute('data-charts', String(charts.length));
  document.body.setAttribute('data-empty', String(empty));
})();
</script>
)";

void page_head(std::ostream& out, const std::string& title) {
  out << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>" << esc(title) << "</title>\n"
      << kStyle << "</head>\n<body>\n";
}

void page_tail(std::ostream& out) {
  out << kCheckScript << "</body></html>\n";
}

}  // namespace

void RunRecorder::after_line(Kernel* k, const std::string& where, const std::string& line, LineStatus status) {
  if (k == nullptr) return;
  // A machine begins at a boot or reboot that ran (one that failed left the old machine
  // running: "boot ram=zzz" was a "Machine 2" holding machine 1's samples), or where the
  // Kernel changed (a reboot may place the new one where the old one was: not enough alone).
  auto starts = [&line](const char* word) {
    std::size_t n = std::strlen(word);
    return line.rfind(word, 0) == 0 && (line.size() == n || line[n] == ' ');
  };
  bool new_machine = (starts("boot") || starts("reboot")) && status != LineStatus::kScriptError;
  if (machines_.empty() || k != last_kernel_ || new_machine) {
    machines_.push_back(Machine{where, line, {}, {}});
    last_kernel_ = k;
  }
  Machine& m = machines_.back();
  Sample s;
  s.t_ns = k->now_ns();
  s.where = where;
  s.line = line;
  meminfo_value(*k, "MemFree", &s.memfree_kb);
  meminfo_value(*k, "Slab", &s.slab_kb);
  std::vector<OwnerTally> tally(kMaxOwners);
  k->usage(tally.data());
  for (unsigned o = kOwnerFirstModule; o < kOwnerUntracked; ++o) {
    const Module* mod = k->modules().module(static_cast<owner_t>(o));
    if ((mod == nullptr || mod->state == ModuleState::kFree) && tally[o].bytes == 0) continue;
    s.module_bytes.emplace_back(k->modules().owner_name(static_cast<owner_t>(o)), tally[o].bytes);
  }
  k->zone().free_blocks(s.free_blocks.data());
  s.passes = k->collector().stats().passes;
  s.failures = k->failed_allocations();
  bool failed = !m.samples.empty() ? s.failures > m.samples.back().failures : s.failures != 0;
  if (failed) {
    Failure f;
    f.t_ns = s.t_ns;
    f.where = where;
    f.line = line;
    f.largest_free_pages = k->zone().largest_free_block();
    f.free_kb = s.memfree_kb;
    std::uint64_t ram = k->phys().size();
    std::uint64_t cells = std::min<std::uint64_t>(ram / kPageSize, 240);
    f.cell_bytes = (ram / cells + kPageSize - 1) / kPageSize * kPageSize;
    for (std::uint64_t c = 0; c * f.cell_bytes < ram; ++c) {
      pfn_t first = k->phys().base_pfn() + static_cast<pfn_t>(c * f.cell_bytes / kPageSize);
      pfn_t last = k->phys().base_pfn() + static_cast<pfn_t>(std::min(ram, (c + 1) * f.cell_bytes) / kPageSize);
      bool used = false;
      for (pfn_t pfn = first; pfn < last && !used; ++pfn) used = !k->zone().frame_is_free(pfn);
      f.map += used ? 'X' : '-';
    }
    m.failures.push_back(std::move(f));
  }
  m.samples.push_back(std::move(s));
}

void RunRecorder::write_html(std::ostream& out, const std::string& title) const {
  page_head(out, "kmm run: " + title);
  out << "<h1>kmm run " << esc(title) << "</h1>\n<p>" << machines_.size()
      << " machine(s) booted. Every point is one line of the script, read from the machine right after the line "
         "ran: MemFree and Slab as /proc/meminfo shows them, each module's bytes, the buddy free lists, the "
         "collector's passes and failed allocations.</p>\n";
  for (std::size_t mi = 0; mi < machines_.size(); ++mi) {
    const Machine& m = machines_[mi];
    out << "<h2>Machine " << mi + 1 << ": <code>" << esc(m.boot_line) << "</code> (" << esc(m.boot_where) << ")</h2>\n";
    // Two charts: MemFree alone (its scale is the machine's), then Slab and each module's
    // memory (their scale is the workload's).
    std::vector<Series> free_series(1), use_series(1);
    free_series[0].name = "MemFree";
    use_series[0].name = "Slab";
    std::vector<std::string> modules;
    for (const auto& s : m.samples)
      for (const auto& mb : s.module_bytes)
        if (std::find(modules.begin(), modules.end(), mb.first) == modules.end()) modules.push_back(mb.first);
    for (const auto& name : modules) use_series.push_back(Series{"module " + name, {}});
    std::vector<std::size_t> marks;
    for (std::size_t i = 0; i < m.samples.size(); ++i) {
      const Sample& s = m.samples[i];
      free_series[0].y.push_back(static_cast<double>(s.memfree_kb));
      use_series[0].y.push_back(static_cast<double>(s.slab_kb));
      for (std::size_t j = 0; j < modules.size(); ++j) {
        double kb = 0;
        for (const auto& mb : s.module_bytes)  // every instance of the name: a gone one's leak too
          if (mb.first == modules[j]) kb += static_cast<double>(mb.second) / 1024.0;
        use_series[1 + j].y.push_back(kb);
      }
      if (i > 0 && s.passes > m.samples[i - 1].passes) marks.push_back(i);
    }
    line_chart(out, "MemFree (/proc/meminfo)", "kB", free_series, m.samples, marks);
    line_chart(out, "Slab and each module's memory", "kB", use_series, m.samples, marks);
    order_heatmap(out, m.samples);
    if (m.failures.empty()) {
      out << "<p>No allocation failed on this machine.</p>\n";
    } else {
      out << "<h3>Failed allocations</h3>\n";
      for (const Failure& f : m.failures) {
        out << fmt::format(
            "<p><b>{}</b> <code>{}</code> at {}: largest free block {} KiB, MemFree {} kB; one cell "
            "= {} KiB (X used, - free):</p>\n",
            esc(f.where), esc(f.line), ms(f.t_ns), f.largest_free_pages * kPageSize / 1024, f.free_kb,
            f.cell_bytes / 1024);
        map_strip(out, f);
        out << "<pre>" << f.map << "</pre>\n";
      }
    }
    out << "<details><summary>Every line</summary><table><tr><th class=\"l\">line</th><th class=\"l\">command</th>"
           "<th>time</th><th>MemFree kB</th><th>Slab kB</th><th>passes</th><th>failed</th></tr>\n";
    for (const Sample& s : m.samples) {
      out << fmt::format(
          "<tr><td class=\"l\">{}</td><td class=\"l\"><code>{}</code></td><td>{}</td><td>{}</td>"
          "<td>{}</td><td>{}</td><td>{}</td></tr>\n",
          esc(s.where), esc(s.line), ms(s.t_ns), s.memfree_kb, s.slab_kb, s.passes, s.failures);
    }
    out << "</table></details>\n";
  }
  page_tail(out);
}

void write_replay_report(std::ostream& out, const Trace& t, const ReplayConfig& cfg,
                         const std::vector<ReplayResult>& results) {
  page_head(out, "kmm replay");
  out << "<h1>kmm replay</h1>\n<p>Each policy replayed the same trace on its own machine. The table is "
         "<code>kmm replay</code>'s own; the charts are its timelines (footprint, live bytes and the largest free "
         "block over the trace, a line per policy).</p>\n";
  std::ostringstream table;
  print_replay_table(table, t, cfg, results);
  out << "<pre>" << esc(table.str()) << "</pre>\n";
  std::ostringstream svg;
  write_timeline_svg(svg, t, results);
  std::string s = svg.str();
  if (s.rfind("<?xml", 0) == 0) s = s.substr(s.find("?>") + 2);
  // The timeline SVG is one figure with a chart per measure; mark it as a chart for the check.
  std::size_t at = s.find("<svg");
  if (at != std::string::npos) s.insert(at + 4, " class=\"chart replay\"");
  out << s << "\n";
  page_tail(out);
}

}  // namespace kmm::scenario
