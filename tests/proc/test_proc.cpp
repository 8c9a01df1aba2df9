// tests/proc/test_proc.cpp — the /proc views in Linux's layouts: meminfo (per-line format,
// field order, consistent values), buddyinfo, slabinfo 2.1, modules, allocinfo, kmemleak
// entries after a report pass, extfrag indices, and every JSON view parsed by nlohmann-json.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "../kernel/kernel_fixture.h"
#include "proc/proc.h"

namespace kmm {
namespace {

using test::boot_kernel;
using test::KernelPtr;
using test::kSecond;

std::string view(Kernel& k, const std::string& path) {
  std::vector<char> buf(1 << 16);
  for (;;) {
    TextSink sink(buf.data(), buf.size());
    if (!proc_read(k, path.c_str(), sink)) return "(no such view)";
    if (!sink.truncated()) return std::string(sink.data(), sink.size());
    buf.resize(sink.wanted() + 1);
  }
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::uint64_t mi(Kernel& k, const char* field) {
  std::uint64_t v = ~std::uint64_t{0};
  EXPECT_TRUE(meminfo_value(k, field, &v)) << field;
  return v;
}

KernelPtr paper_machine() {
  BootConfig cfg;
  cfg.ram_bytes = std::uint64_t{192} << 20;
  cfg.reserved_bytes = 4932 * 1024;
  return boot_kernel(cfg);
}

TEST(Meminfo, LayoutByteExact) {
  KernelPtr k = paper_machine();
  ASSERT_TRUE(k);
  std::string text = view(*k, "/proc/meminfo");
  std::vector<std::string> ls = lines(text);
  ASSERT_GE(ls.size(), 40u);
  EXPECT_EQ(ls[0], "MemTotal:         191676 kB");
  EXPECT_EQ(ls[1].substr(0, 16), "MemFree:        ");
  EXPECT_EQ(ls[2].substr(0, 16), "MemAvailable:   ");
  EXPECT_EQ(ls[3], "Buffers:               0 kB");
  EXPECT_NE(text.find("\nHardwareCorrupted:     0 kB\n"), std::string::npos) << "Linux: \"HardwareCorrupted: %5lu kB\"";
  EXPECT_NE(text.find("\nHugePages_Total:       0\n"), std::string::npos);
  std::regex kb_line(R"(^([A-Za-z_()]+):( *)(\d+) kB$)");
  std::regex count_line(R"(^(HugePages_[A-Za-z]+):( *)(\d+)$)");
  for (const std::string& l : ls) {
    std::smatch m;
    if (l.rfind("HugePages_", 0) == 0) {
      ASSERT_TRUE(std::regex_match(l, m, count_line)) << l;
      EXPECT_EQ(l.size(), 24u) << "label padded to 16, value width 8, no kB: '" << l << "'";
    } else {
      ASSERT_TRUE(std::regex_match(l, m, kb_line)) << l;
      EXPECT_EQ(m[1].length() + 1 + m[2].length() + m[3].length(), 24) << "'" << l << "'";
      EXPECT_EQ(l.size(), 27u) << "'" << l << "'";
    }
  }
  EXPECT_EQ(text.back(), '\n');
  // Fields in Linux's order.
  const char* const order[] = {
      "MemTotal",  "MemFree",      "MemAvailable",   "Buffers",      "Cached",         "SwapCached",  "Active",
      "Inactive",  "Active(anon)", "Inactive(anon)", "Active(file)", "Inactive(file)", "Unevictable", "Mlocked",
      "SwapTotal", "SwapFree",     "Dirty",          "Writeback",    "AnonPages",      "Mapped",      "Shmem",
      "Slab",      "SReclaimable", "SUnreclaim",     "KernelStack",  "PageTables"};
  for (std::size_t i = 0; i < std::size(order); ++i) EXPECT_EQ(ls[i].substr(0, ls[i].find(':')), order[i]) << i;
  std::size_t vt = text.find("\nVmallocTotal:"), vu = text.find("\nVmallocUsed:"), ht = text.find("\nHugePages_Total:"),
              hs = text.find("\nHugepagesize:");
  EXPECT_TRUE(vt < vu && vu < ht && ht < hs);
  // 4.19's order after the vmalloc lines: Percpu (since 4.16), then HardwareCorrupted.
  std::size_t vc = text.find("\nVmallocChunk:"), pc = text.find("\nPercpu:"), hc = text.find("\nHardwareCorrupted:");
  EXPECT_TRUE(vu < vc && vc < pc && pc < hc) << text;
  EXPECT_NE(text.find("\nHugepagesize:       2048 kB\n"), std::string::npos);
}

TEST(Meminfo, ValuesConsistent) {
  KernelPtr k = boot_kernel(test::small_config());
  ASSERT_TRUE(k);
  EXPECT_EQ(mi(*k, "MemTotal"), k->zone().managed_pages() * 4);
  EXPECT_EQ(mi(*k, "MemFree"), k->zone().free_pages() * 4);
  EXPECT_EQ(mi(*k, "Slab"), mi(*k, "SReclaimable") + mi(*k, "SUnreclaim"));
  EXPECT_LE(mi(*k, "MemAvailable"), mi(*k, "MemFree") + mi(*k, "SReclaimable"));
  std::uint64_t vused = mi(*k, "VmallocUsed");
  std::uint64_t slab = mi(*k, "Slab");
  std::uint64_t va = k->vmalloc(10000);
  ASSERT_NE(va, 0u);
  EXPECT_EQ(mi(*k, "VmallocUsed"), vused + 12);
  EXPECT_EQ(mi(*k, "VmallocTotal"), (k->vmalloc_space().end() - k->vmalloc_space().start()) / 1024);
  std::vector<void*> ps;
  for (int i = 0; i < 200; ++i) ps.push_back(k->kmalloc(512));
  EXPECT_GT(mi(*k, "Slab"), slab);
  EXPECT_EQ(mi(*k, "Slab"), mi(*k, "SReclaimable") + mi(*k, "SUnreclaim"));
  EXPECT_EQ(mi(*k, "MemFree"), k->zone().free_pages() * 4);
  for (void* p : ps) k->kfree(p);
  EXPECT_TRUE(k->vfree(va));
  EXPECT_EQ(mi(*k, "VmallocUsed"), vused);
  std::uint64_t v;
  EXPECT_FALSE(meminfo_value(*k, "NoSuchField", &v));
}

TEST(Meminfo, NommuHasNoVmallocSpace) {
  // Linux's NOMMU VMALLOC_TOTAL is 0; kmm printed its MMU layout's 240 MiB.
  BootConfig cfg = test::small_config();
  cfg.mmu = false;
  KernelPtr k = boot_kernel(cfg);
  ASSERT_TRUE(k);
  EXPECT_EQ(mi(*k, "VmallocTotal"), 0u);
  KernelPtr m = boot_kernel(test::small_config());
  ASSERT_TRUE(m);
  EXPECT_GT(mi(*m, "VmallocTotal"), 0u);
}

TEST(Meminfo, MemAvailableAddsReclaimableSlabBeforeItClamps) {
  // si_mem_available sums free - high watermark + reclaimable slab (less its part up to the
  // low watermark) signed, and clamps after: with free below the high watermark, reclaimable
  // slab still counts. kmm clamped the free part at 0 first and so read high.
  BootConfig cfg;
  cfg.ram_bytes = std::uint64_t{16} << 20;  // Linux's watermarks (min_free_kbytes from RAM)
  KernelPtr k = boot_kernel(cfg);
  ASSERT_TRUE(k);
  const std::uint64_t high = k->zone().watermarks().high * 4, low = k->zone().watermarks().low * 4;
  KmemCache* c = k->kmem_cache_create("reclaimable-test", 1024, 0, SLAB_RECLAIM_ACCOUNT);
  ASSERT_NE(c, nullptr);
  std::vector<void*> ps;
  while (mi(*k, "MemFree") >= high) {
    void* p = k->kmem_cache_alloc(c);
    if (p == nullptr) break;
    ps.push_back(p);
  }
  const std::uint64_t free = mi(*k, "MemFree"), srec = mi(*k, "SReclaimable");
  ASSERT_LT(free, high);
  ASSERT_GT(srec, 0u);
  auto want = static_cast<std::int64_t>(free) - static_cast<std::int64_t>(high) +
              static_cast<std::int64_t>(srec - std::min(srec / 2, low));
  EXPECT_EQ(mi(*k, "MemAvailable"), static_cast<std::uint64_t>(std::max<std::int64_t>(want, 0)))
      << "free " << free << " high " << high << " low " << low << " srec " << srec;
  for (void* p : ps) k->kmem_cache_free(c, p);
}

TEST(Buddyinfo, FreshMachineLine) {
  KernelPtr k = boot_kernel(test::small_config());
  ASSERT_TRUE(k);
  std::uint64_t nr[kNrOrders];
  k->zone().free_blocks(nr);
  char expect[256];
  int n = std::snprintf(expect, sizeof expect, "Node %d, zone %8s ", 0, "Normal");
  std::uint64_t pages = 0;
  for (unsigned o = 0; o < kNrOrders; ++o) {
    n += std::snprintf(expect + n, sizeof expect - static_cast<std::size_t>(n), "%6lu ",
                       static_cast<unsigned long>(nr[o]));
    pages += nr[o] << o;
  }
  std::snprintf(expect + n, sizeof expect - static_cast<std::size_t>(n), "\n");
  EXPECT_EQ(view(*k, "/proc/buddyinfo"), expect);
  EXPECT_EQ(pages, k->zone().free_pages());
  EXPECT_GE(nr[kMaxOrder], 3u) << "16M fresh: most of it in order-10 (4M) blocks";
  EXPECT_EQ(view(*k, "/proc/buddyinfo").rfind("Node 0, zone   Normal ", 0), 0u);
}

TEST(Slabinfo, HeaderAndKmalloc64Line) {
  KernelPtr k = boot_kernel(test::small_config());
  ASSERT_TRUE(k);
  KmemCache* c = k->kmalloc_layer().cache_for(64);
  ASSERT_STREQ(c->name, "kmalloc-64");
  std::uint64_t before = c->active_objects();
  std::vector<void*> ps;
  for (int i = 0; i < 100; ++i) ps.push_back(k->kmalloc(50));
  ASSERT_EQ(c->active_objects(), before + 100);
  std::vector<std::string> ls = lines(view(*k, "/proc/slabinfo"));
  ASSERT_GE(ls.size(), 3u);
  EXPECT_EQ(ls[0], "slabinfo - version: 2.1");
  EXPECT_EQ(ls[1],
            "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> "
            "<batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>");
  std::string line;
  for (const std::string& l : ls)
    if (l.rfind("kmalloc-64 ", 0) == 0) line = l;
  ASSERT_FALSE(line.empty());
  std::uint64_t slabs = c->nr_slabs.load();
  char expect[256];
  std::snprintf(expect, sizeof expect, "%-17s %6lu %6lu %6u %4u %4d : tunables %4u %4u %4u : slabdata %6lu %6lu %6lu",
                "kmalloc-64", static_cast<unsigned long>(before + 100), static_cast<unsigned long>(slabs * c->objects),
                64u, c->objects, 1 << c->order, 0u, 0u, 0u, static_cast<unsigned long>(slabs),
                static_cast<unsigned long>(slabs), 0ul);
  EXPECT_EQ(line, expect);
  EXPECT_LE(c->objects * 64u, 4096u << c->order);
  for (void* p : ps) k->kfree(p);
  EXPECT_EQ(c->active_objects(), before);
}

TEST(Modules, LinuxLine) {
  KernelPtr k = boot_kernel(test::small_config());
  ASSERT_TRUE(k);
  EXPECT_EQ(view(*k, "/proc/modules"), "");
  ASSERT_EQ(k->insmod("m_test"), ModuleError::kOk);
  ASSERT_EQ(k->insmod("second", 5000), ModuleError::kOk);
  EXPECT_EQ(view(*k, "/proc/modules"), "m_test 16384 0 - Live 0xbf000000\nsecond 5000 0 - Live 0xbf004000\n");
  ASSERT_EQ(k->rmmod("m_test"), ModuleError::kOk);
  EXPECT_EQ(view(*k, "/proc/modules"), "second 5000 0 - Live 0xbf004000\n");
}

// The use count is the threads inside the module's scopes (the preload's
// kmm_module_scope_enter); unloaded while some are, the module is listed as Unloading.
TEST(Modules, UseCountIsTheThreadsInsideItsScopes) {
  KernelPtr k = boot_kernel(test::small_config());
  ASSERT_TRUE(k);
  owner_t o;
  ASSERT_EQ(k->insmod("worker", 16384, &o), ModuleError::kOk);
  ASSERT_TRUE(k->modules().hold(o));
  ASSERT_TRUE(k->modules().hold(o));
  EXPECT_EQ(view(*k, "/proc/modules"), "worker 16384 2 - Live 0xbf000000\n");
  ASSERT_EQ(k->rmmod("worker"), ModuleError::kOk);
  EXPECT_EQ(view(*k, "/proc/modules"), "worker 16384 2 - Unloading 0xbf000000\n");
  k->modules().unhold(o);
  k->modules().unhold(o);
  EXPECT_EQ(view(*k, "/proc/modules"), "");
}

TEST(Allocinfo, HeaderAndModuleLines) {
  KernelPtr k = boot_kernel(test::small_config());
  ASSERT_TRUE(k);
  owner_t m;
  ASSERT_EQ(k->insmod("m_test", 16384, &m), ModuleError::kOk);
  for (int i = 0; i < 3; ++i) k->kmalloc(60, GFP_KERNEL, m);
  k->kmalloc(20000, GFP_KERNEL, m);
  k->vmalloc(5000, m);
  std::string text = view(*k, "/proc/allocinfo");
  EXPECT_EQ(text.rfind("allocinfo - version: 1.0\n#     <size>  <calls> <tag info>\n", 0), 0u) << text;
  EXPECT_NE(text.find("\n         192        3 mm/slub.c:0 [m_test] func:kmalloc kmalloc-64\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("\n       32768        1 mm/page_alloc.c:0 [m_test] func:alloc_pages\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("\n        8192        1 mm/vmalloc.c:0 [m_test] func:vmalloc\n"), std::string::npos) << text;
}

TEST(Kmemleak, EntryFormatAfterReportPass) {
  BootConfig cfg = test::small_config();
  cfg.protector = ProtectorMode::kReport;
  KernelPtr k = boot_kernel(cfg);
  ASSERT_TRUE(k);
  owner_t m;
  k->idle(2 * kSecond);
  ASSERT_EQ(k->insmod("m_leak", 16384, &m), ModuleError::kOk);
  auto* p = static_cast<char*>(k->kmalloc(128, GFP_KERNEL, m));
  for (int i = 0; i < 128; ++i) p[i] = static_cast<char>('A' + i % 26);
  std::uint64_t va = k->vmalloc(64, m);
  ASSERT_NE(va, 0u);
  k->idle(kSecond / 2);
  ASSERT_EQ(k->rmmod("m_leak"), ModuleError::kOk);
  EXPECT_EQ(view(*k, "/sys/kernel/debug/kmemleak"), "") << "nothing reported before a pass";
  k->idle(kSecond);
  std::string text = view(*k, "/sys/kernel/debug/kmemleak");
  char addr[32];
  std::snprintf(addr, sizeof addr, "0x%08llx", static_cast<unsigned long long>(k->kva(p)));
  std::string expect_head =
      std::string("unreferenced object ") + addr +
      " (size 128):\n  comm \"m_leak\", pid 0, jiffies 200 (age 1.500s)\n  hex dump (first 32 bytes):\n"
      "    41 42 43 44 45 46 47 48 49 4a 4b 4c 4d 4e 4f 50  ABCDEFGHIJKLMNOP\n"
      "    51 52 53 54 55 56 57 58 59 5a 41 42 43 44 45 46  QRSTUVWXYZABCDEF\n"
      "  backtrace:\n    [<" +
      std::string(addr + 2) + ">] kmalloc-128 [m_leak]\n";
  EXPECT_NE(text.find(expect_head), std::string::npos) << text;
  char vaddr[32];
  std::snprintf(vaddr, sizeof vaddr, "0x%08llx", static_cast<unsigned long long>(va));
  EXPECT_NE(text.find(std::string("unreferenced object ") + vaddr + " (size 64):\n"), std::string::npos) << text;
  EXPECT_NE(text.find("] vmalloc [m_leak]\n"), std::string::npos);
  std::regex entry(R"(unreferenced object 0x[0-9a-f]{8,} \(size \d+\):)");
  auto n = std::distance(std::sregex_iterator(text.begin(), text.end(), entry), std::sregex_iterator());
  EXPECT_EQ(n, 2);
}

TEST(Extfrag, IndexValues) {
  KernelPtr k = boot_kernel(test::small_config());
  ASSERT_TRUE(k);
  std::string fresh = view(*k, "/sys/kernel/debug/extfrag/extfrag_index");
  std::string expect = "Node 0, zone   Normal ";
  for (unsigned o = 0; o < kNrOrders; ++o) expect += "-1.000 ";
  EXPECT_EQ(fresh, expect + "\n") << "every order can be served: -1";
  std::string unusable = view(*k, "/sys/kernel/debug/extfrag/unusable_index");
  EXPECT_EQ(unusable.rfind("Node 0, zone   Normal 0.000 ", 0), 0u) << unusable;
  // Take every page, give back every other one: only order-0 blocks stay free.
  std::vector<void*> pages;
  while (void* p = k->alloc_pages(0, GFP_KERNEL | __GFP_NOWARN)) pages.push_back(p);
  for (std::size_t i = 0; i < pages.size(); i += 2) k->free_pages(pages[i]);
  std::uint64_t nr[kNrOrders];
  k->zone().free_blocks(nr);
  ASSERT_GT(nr[0], 100u);
  for (unsigned o = 1; o < kNrOrders; ++o) ASSERT_EQ(nr[o], 0u);
  std::string frag = view(*k, "/sys/kernel/debug/extfrag/extfrag_index");
  std::istringstream in(frag.substr(std::string("Node 0, zone   Normal ").size()));
  std::vector<double> v;
  for (double x; in >> x;) v.push_back(x);
  ASSERT_EQ(v.size(), kNrOrders) << frag;
  EXPECT_DOUBLE_EQ(v[0], -1.0);
  // Linux: 1 - (1 + free_pages / 2^order) / free_blocks, to 3 decimals.
  double blocks = static_cast<double>(nr[0]);
  for (unsigned o = 1; o < kNrOrders; ++o) {
    double want = 1.0 - (1.0 + blocks / static_cast<double>(1u << o)) / blocks;
    EXPECT_NEAR(v[o], want, 0.0011) << "order " << o;
    EXPECT_NEAR(v[o], fragmentation_index(nr, o) / 1000.0, 1e-9);
  }
  EXPECT_NEAR(v[1], 0.5, 0.01);
  EXPECT_GT(v[10], 0.99);
  std::string un = view(*k, "/sys/kernel/debug/extfrag/unusable_index");
  EXPECT_EQ(un, "Node 0, zone   Normal 0.000 1.000 1.000 1.000 1.000 1.000 1.000 1.000 1.000 1.000 1.000 \n");
  for (std::size_t i = 1; i < pages.size(); i += 2) k->free_pages(pages[i]);
  EXPECT_EQ(view(*k, "/sys/kernel/debug/extfrag/extfrag_index"), expect + "\n");
}

TEST(Json, EveryViewParses) {
  BootConfig cfg = test::small_config();
  cfg.protector = ProtectorMode::kReport;
  KernelPtr k = boot_kernel(cfg);
  ASSERT_TRUE(k);
  owner_t m;
  ASSERT_EQ(k->insmod("json\"mod", 16384, &m), ModuleError::kOk);  // a quote to escape
  k->kmalloc(100, GFP_KERNEL, m);
  ASSERT_EQ(k->insmod("live_mod", 16384), ModuleError::kOk);
  ASSERT_EQ(k->rmmod("json\"mod"), ModuleError::kOk);
  k->idle(kSecond);

  auto meminfo = nlohmann::json::parse(view(*k, "/proc/meminfo.json"));
  EXPECT_EQ(meminfo["MemTotal"].get<std::uint64_t>(), mi(*k, "MemTotal"));
  EXPECT_EQ(meminfo["MemFree"].get<std::uint64_t>(), mi(*k, "MemFree"));
  EXPECT_EQ(meminfo["HugePages_Total"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(meminfo.begin().key() == "MemTotal" || meminfo.contains("MemTotal"), true);

  auto buddy = nlohmann::json::parse(view(*k, "/proc/buddyinfo.json"));
  EXPECT_EQ(buddy["zone"], "Normal");
  ASSERT_EQ(buddy["free"].size(), kNrOrders);
  std::uint64_t pages = 0;
  for (unsigned o = 0; o < kNrOrders; ++o) pages += buddy["free"][o].get<std::uint64_t>() << o;
  EXPECT_EQ(pages, buddy["free_pages"].get<std::uint64_t>());
  EXPECT_EQ(pages, k->zone().free_pages());

  auto slab = nlohmann::json::parse(view(*k, "/proc/slabinfo.json"));
  ASSERT_TRUE(slab.is_array());
  bool seen128 = false;
  for (const auto& c : slab) {
    if (c["name"] == "kmalloc-128") {
      seen128 = true;
      EXPECT_GE(c["active_objs"].get<std::uint64_t>(), 1u);
      EXPECT_EQ(c["objsize"].get<std::uint64_t>(), 128u);
    }
  }
  EXPECT_TRUE(seen128);

  auto mods = nlohmann::json::parse(view(*k, "/proc/modules.json"));
  ASSERT_TRUE(mods.is_array());
  bool gone_seen = false, live_seen = false;
  for (const auto& o : mods) {
    if (o["owner"] == "json\"mod") {
      gone_seen = true;
      EXPECT_EQ(o["state"], "gone");
      EXPECT_EQ(o["objects"].get<std::uint64_t>(), 1u);
      EXPECT_EQ(o["bytes"].get<std::uint64_t>(), 128u);
    }
    if (o["owner"] == "live_mod") live_seen = true;
  }
  EXPECT_TRUE(gone_seen && live_seen);
  auto alloc = nlohmann::json::parse(view(*k, "/proc/allocinfo.json"));
  ASSERT_TRUE(alloc.is_array());
  for (const auto& o : alloc) EXPECT_GT(o["objects"].get<std::uint64_t>(), 0u);

  auto leak = nlohmann::json::parse(view(*k, "/sys/kernel/debug/kmemleak.json"));
  EXPECT_EQ(leak["mode"], "report");
  EXPECT_EQ(leak["passes"].get<std::uint64_t>(), 1u);
  EXPECT_EQ(leak["leak_objects"].get<std::uint64_t>(), 1u);
  EXPECT_EQ(leak["leak_bytes"].get<std::uint64_t>(), 128u);
  EXPECT_EQ(leak["reclaimed_objects"].get<std::uint64_t>(), 0u);

  StackText<64> out;
  EXPECT_FALSE(proc_read(*k, "/proc/nothing", out));
  EXPECT_FALSE(proc_read(*k, "/proc/nothing.json", out));
  for (const char* const* p = proc_paths(); *p != nullptr; ++p) EXPECT_NE(view(*k, *p), "(no such view)") << *p;
  // Every view has its JSON twin, and it parses (vmallocinfo, the extfrag indices and dmesg
  // had none, though proc.h and SCENARIOS.md promised "each + .json").
  for (const char* const* p = proc_paths(); *p != nullptr; ++p) {
    std::string j = view(*k, std::string(*p) + ".json");
    ASSERT_NE(j, "(no such view)") << *p;
    EXPECT_TRUE(nlohmann::json::accept(j)) << *p << ": " << j;
  }
}

TEST(Json, VmallocExtfragAndDmesgCarryTheTextViewsNumbers) {
  KernelPtr k = boot_kernel(test::small_config());
  ASSERT_TRUE(k);
  owner_t m;
  ASSERT_EQ(k->insmod("v\x01mod", 16384, &m), ModuleError::kOk);  // a control character to escape
  std::uint64_t va = k->vmalloc(10000, m);
  ASSERT_NE(va, 0u);
  auto areas = nlohmann::json::parse(view(*k, "/proc/vmallocinfo.json"));
  ASSERT_TRUE(areas.is_array());
  bool seen = false;
  for (const auto& a : areas) {
    if (a["start"].get<std::uint64_t>() != va) continue;
    seen = true;
    EXPECT_EQ(a["pages"].get<std::uint64_t>(), 3u);
    EXPECT_EQ(a["size"].get<std::uint64_t>(), 4u * 4096);  // with its guard page
    EXPECT_EQ(a["end"].get<std::uint64_t>(), va + 4 * 4096);
    EXPECT_EQ(a["requested"].get<std::uint64_t>(), 10000u);
    EXPECT_EQ(a["owner"], "v\x01mod");
  }
  EXPECT_TRUE(seen) << view(*k, "/proc/vmallocinfo.json");
  for (const char* which : {"extfrag_index", "unusable_index"}) {
    std::string base = std::string("/sys/kernel/debug/extfrag/") + which;
    auto j = nlohmann::json::parse(view(*k, base + ".json"));
    ASSERT_EQ(j["index"].size(), kNrOrders);
    std::string text = view(*k, base);  // "Node 0, zone   Normal 0.000 ... \n"
    std::istringstream in(text.substr(std::string("Node 0, zone   Normal ").size()));
    for (unsigned o = 0; o < kNrOrders; ++o) {
      double v;
      in >> v;
      EXPECT_DOUBLE_EQ(j["index"][o].get<double>(), v) << which << " order " << o;
    }
  }
  const char line[] = "a \"quoted\" line\twith a tab\n";
  k->log(line, sizeof line - 1);
  auto log = nlohmann::json::parse(view(*k, "/proc/dmesg.json"));
  ASSERT_TRUE(log["lines"].is_array());
  std::string joined;
  for (const auto& l : log["lines"]) joined += l.get<std::string>() + "\n";
  EXPECT_EQ(joined, view(*k, "/proc/dmesg"));
  EXPECT_TRUE(k->vfree(va));
}

}  // namespace
}  // namespace kmm
