// kmm/tools/kmm/demo.cpp — `kmm demo`, the paper's table (demo.h). A subcommand of the kmm
// program, not part of the scenario language: it boots its two machines directly.
// Depends on: kernel/, proc/, fmt. Invariant: both machines are booted alike but for the
// protector, and shut down before it returns.
#include "demo.h"

#include <fmt/format.h>

#include <ostream>
#include <string>
#include <vector>

#include "kernel/kernel.h"
#include "proc/proc.h"

namespace kmm::scenario {
namespace {

struct Reading {
  std::uint64_t total, free, avail, slab;
};

Reading read(Kernel& k) {
  Reading r{};
  meminfo_value(k, "MemTotal", &r.total);
  meminfo_value(k, "MemFree", &r.free);
  meminfo_value(k, "MemAvailable", &r.avail);
  meminfo_value(k, "Slab", &r.slab);
  return r;
}

// m_test's init: what it kmallocs at insmod (and its exit forgets to kfree).
constexpr unsigned kPages = 64, kSmall = 100;
constexpr std::size_t kBig = 64 * 1024;

void m_test_init(Kernel& k, owner_t self) {
  OwnerScope scope(self);
  for (unsigned i = 0; i < kPages; ++i) k.kmalloc(4096);
  for (unsigned i = 0; i < kSmall; ++i) k.kmalloc(128);
  k.kmalloc(kBig);
}

void capture_log(void* arg, const char* line, std::size_t len) {
  static_cast<std::string*>(arg)->append(line, len);
}

}  // namespace

int run_paper_demo(std::ostream& out) {
  BootConfig cfg;
  cfg.ram_bytes = 192ull << 20;
  cfg.reserved_bytes = 4932ull << 10;  // the paper's MemTotal: 196608 kB - 4932 kB = 191676 kB
  cfg.gc_delay_ns = 5'000'000'000ull;  // the paper's 5 s (printed below), not the default that may change
  BootConfig stock_cfg = cfg, prot_cfg = cfg;
  stock_cfg.protector = ProtectorMode::kOff;
  prot_cfg.protector = ProtectorMode::kReclaim;
  BootError e1, e2;
  Kernel* stock = Kernel::boot(stock_cfg, &e1);
  Kernel* prot = Kernel::boot(prot_cfg, &e2);
  if (stock == nullptr || prot == nullptr) {
    out << "kmm demo: boot failed: " << (stock ? e2.what : e1.what) << "\n";
    if (stock) stock->shutdown();
    if (prot) prot->shutdown();
    return 1;
  }
  std::string log_stock, log_prot;
  stock->set_log_listener(capture_log, &log_stock);
  prot->set_log_listener(capture_log, &log_prot);

  std::vector<std::string> steps;
  std::vector<Reading> rs, rp;
  auto snap = [&](const std::string& step) {
    steps.push_back(step);
    rs.push_back(read(*stock));
    rp.push_back(read(*prot));
  };
  snap("boot");
  owner_t os = kOwnerFree, op = kOwnerFree;
  stock->insmod("m_test", 16384, &os);
  prot->insmod("m_test", 16384, &op);
  m_test_init(*stock, os);
  m_test_init(*prot, op);
  snap("insmod m_test");
  stock->rmmod("m_test");
  prot->rmmod("m_test");
  snap("rmmod m_test");
  stock->idle(2'000'000'000ull);
  prot->idle(2'000'000'000ull);
  snap("idle 2s (before gc_delay)");
  stock->idle(4'000'000'000ull);
  prot->idle(4'000'000'000ull);
  snap("idle 4s more (gc pass due)");

  out << "kmm demo — the kernel memory protector of Baek, Park and Choi (2004), reproduced\n\n";
  out << fmt::format("Machine: 192 MB RAM, MemTotal {} kB (the paper's: 191676 kB), kmalloc=pow2, gc_delay=5s.\n",
                     rs[0].total);
  out << fmt::format(
      "Module m_test kmallocs at insmod and never kfrees at rmmod: {} x kmalloc(4096), {} x kmalloc(128),\n"
      "1 x kmalloc({}).\n\n",
      kPages, kSmall, kBig);
  out << fmt::format("{:<28} | {:^30} | {:^30}\n", "", "stock kernel (protector=off)", "protected (protector=reclaim)");
  out << fmt::format("{:<28} | {:>10} {:>8} {:>10} | {:>10} {:>8} {:>10}\n", "/proc/meminfo after", "MemFree", "Slab",
                     "vs boot", "MemFree", "Slab", "vs boot");
  out << std::string(28, '-') << "-+-" << std::string(30, '-') << "-+-" << std::string(30, '-') << "\n";
  for (std::size_t i = 0; i < steps.size(); ++i) {
    auto delta = [](std::uint64_t now, std::uint64_t then) {
      long long d = static_cast<long long>(now) - static_cast<long long>(then);
      return d == 0 ? std::string("0") : fmt::format("{:+d}", d);
    };
    out << fmt::format("{:<28} | {:>10} {:>8} {:>10} | {:>10} {:>8} {:>10}\n", steps[i], rs[i].free, rs[i].slab,
                       delta(rs[i].free, rs[0].free), rp[i].free, rp[i].slab, delta(rp[i].free, rp[0].free));
  }
  out << "(kB; \"vs boot\" is MemFree minus MemFree before insmod)\n\n";
  std::uint64_t drop = rp[0].free - rp[1].free;
  std::uint64_t stock_lost = rs[0].free - rs.back().free;
  bool recovered = rp.back().free == rp[0].free;
  bool stock_stuck = rs.back().free == rs[1].free && stock_lost > 0;
  out << "Kernel log of the protected machine:\n" << (log_prot.empty() ? "(nothing)\n" : log_prot) << "\n";
  out << fmt::format("Stock kernel: {} kB stay lost after rmmod, until reboot (a \"memory lock\").\n", stock_lost);
  out << fmt::format(
      "Protected kernel: insmod took {} kB; after rmmod and the collector's delay MemFree is {} kB, {} its value "
      "before insmod.\n",
      drop, rp.back().free, recovered ? "exactly" : "NOT");
  const CollectorStats& st = prot->collector().stats();
  out << fmt::format(
      "Collector: {} pass(es), {} objects ({} bytes) reclaimed; tracking cost: 1 owner byte per object.\n", st.passes,
      st.reclaimed_objects, st.reclaimed_bytes);
  stock->shutdown();
  prot->shutdown();
  return recovered && stock_stuck ? 0 : 1;
}

}  // namespace kmm::scenario
