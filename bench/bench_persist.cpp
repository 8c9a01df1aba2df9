// bench/bench_persist.cpp — kmm on persistent RAM side by side with PMDK's libpmemobj
// (issue 9, "Speed"). Both use a file on the same tmpfs (/dev/shm by default).
//   1. alloc+free throughput, 64 B / 256 B / 4 KB objects, 1 and 2 threads:
//      kmm kmalloc/kfree (owner = a module) vs pmemobj_alloc/pmemobj_free (atomic API);
//   2. attach (recovery) time with 10^4, 10^6 (and with --big 10^7) live 64 B objects:
//      kmm persist_boot(backing=) (rebuild from mem_map and owner bytes) vs pmemobj_open;
//   3. metadata bytes per live 64 B object.
// Run it as PMEM_IS_PMEM_FORCE=1 kmm-bench-persist: libpmemobj then flushes cache lines instead of msync on tmpfs
// PMDK's own advice for benchmarking on DRAM); kmm does no flushes between flush points.
// Usage: kmm-bench-persist [--dir DIR] [--ops N] [--big]
#include <libpmemobj.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "kernel/kernel.h"
#include "persist/heap_file.h"

using namespace kmm;

namespace {

double now_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Args {
  std::string dir = "/dev/shm";
  std::uint64_t ops = 2000000;
  bool big = false;
};

Kernel* kmm_boot(const std::string& path, std::uint64_t ram, bool fresh) {
  if (fresh) std::remove(path.c_str());
  BootConfig cfg;
  cfg.ram_bytes = ram;
  cfg.backing = path.c_str();
  cfg.thread_caches = true;
  cfg.min_free_kbytes = ~std::uint64_t{0};
  BootError e;
  Kernel* k = persist_boot(cfg, &e);
  if (k == nullptr) std::fprintf(stderr, "kmm boot: %s\n", e.what);
  return k;
}

double kmm_throughput(const Args& a, std::size_t size, unsigned threads) {
  std::string path = a.dir + "/kmm-bench-tp.heap";
  Kernel* k = kmm_boot(path, 256ull << 20, true);
  owner_t mod = kOwnerFree;
  k->insmod("bench", 16384, &mod);
  std::uint64_t per = a.ops / threads;
  auto work = [&]() {
    void* keep[16];
    for (unsigned i = 0; i < 16; ++i) keep[i] = k->kmalloc(size, GFP_KERNEL, mod);  // a little live state
    for (std::uint64_t i = 0; i < per; ++i) {
      void* p = k->kmalloc(size, GFP_KERNEL, mod);
      k->kfree(p, mod);
    }
    for (void* p : keep) k->kfree(p, mod);
    k->slab().drain_current_thread();
  };
  double t0 = now_s();
  std::vector<std::thread> ts;
  for (unsigned t = 0; t < threads; ++t) ts.emplace_back(work);
  for (auto& t : ts) t.join();
  double dt = now_s() - t0;
  k->shutdown();
  std::remove(path.c_str());
  return static_cast<double>(per * threads) / dt / 1e6;
}

double pmem_throughput(const Args& a, std::size_t size, unsigned threads) {
  std::string path = a.dir + "/pmem-bench-tp.pool";
  std::remove(path.c_str());
  PMEMobjpool* pop = pmemobj_create(path.c_str(), "bench", 256ull << 20, 0644);
  if (pop == nullptr) {
    std::fprintf(stderr, "pmemobj_create: %s\n", pmemobj_errormsg());
    return 0;
  }
  std::uint64_t per = a.ops / threads;
  auto work = [&]() {
    for (std::uint64_t i = 0; i < per; ++i) {
      PMEMoid oid;
      if (pmemobj_alloc(pop, &oid, size, 0, nullptr, nullptr) != 0) std::abort();
      pmemobj_free(&oid);
    }
  };
  double t0 = now_s();
  std::vector<std::thread> ts;
  for (unsigned t = 0; t < threads; ++t) ts.emplace_back(work);
  for (auto& t : ts) t.join();
  double dt = now_s() - t0;
  pmemobj_close(pop);
  std::remove(path.c_str());
  return static_cast<double>(per * threads) / dt / 1e6;
}

struct AttachResult {
  double kmm_ms, pmem_ms;
  double kmm_meta, pmem_meta;  // bytes of metadata per live 64 B object
};

AttachResult attach_time(const Args& a, std::uint64_t n) {
  AttachResult r{};
  std::uint64_t ram = (n * 80 + (64ull << 20)) & ~std::uint64_t{kPageSize - 1};
  std::string path = a.dir + "/kmm-bench-attach.heap";
  {
    Kernel* k = kmm_boot(path, ram, true);
    std::uint64_t free0 = k->zone().free_pages();
    for (std::uint64_t i = 0; i < n; ++i)
      if (k->kmalloc(64, GFP_KERNEL, kOwnerKernel) == nullptr) std::abort();
    k->slab().drain_current_thread();
    std::uint64_t used = (free0 - k->zone().free_pages()) * kPageSize;
    // Per object: what the slabs took beyond the payload (owner byte, slab tail) + mem_map's
    // share of those frames (32 B descriptor per 4 KiB frame).
    r.kmm_meta = (static_cast<double>(used) - 64.0 * static_cast<double>(n) +
                  static_cast<double>(used / kPageSize * sizeof(Page))) /
                 static_cast<double>(n);
    k->shutdown();
    double t0 = now_s();
    k = kmm_boot(path, ram, false);
    r.kmm_ms = (now_s() - t0) * 1e3;
    if (k->attach_report().objects != n)
      std::fprintf(stderr, "kmm: attach found %llu objects, want %llu\n",
                   static_cast<unsigned long long>(k->attach_report().objects), static_cast<unsigned long long>(n));
    k->shutdown();
    std::remove(path.c_str());
  }
  {
    std::string pp = a.dir + "/pmem-bench-attach.pool";
    std::remove(pp.c_str());
    std::uint64_t pool = n * 160 + (64ull << 20);
    PMEMobjpool* pop = pmemobj_create(pp.c_str(), "bench", pool, 0644);
    if (pop == nullptr) {
      std::fprintf(stderr, "pmemobj_create: %s\n", pmemobj_errormsg());
      return r;
    }
    std::size_t usable = 0;
    for (std::uint64_t i = 0; i < n; ++i) {
      PMEMoid oid;
      if (pmemobj_alloc(pop, &oid, 64, 1, nullptr, nullptr) != 0) std::abort();
      usable = pmemobj_alloc_usable_size(oid);
    }
    // libpmemobj's per-object cost: its allocation header (16 B, "compact" header for small
    // objects) plus rounding to the size class; the chunk bitmaps and run headers are shared.
    r.pmem_meta = static_cast<double>(usable - 64 + 16);
    pmemobj_close(pop);
    double t0 = now_s();
    pop = pmemobj_open(pp.c_str(), "bench");
    // The first allocation after open is where libpmemobj rebuilds its volatile heap state
    // lazily; count it, or the comparison favours it.
    PMEMoid oid;
    pmemobj_alloc(pop, &oid, 64, 1, nullptr, nullptr);
    r.pmem_ms = (now_s() - t0) * 1e3;
    pmemobj_close(pop);
    std::remove(pp.c_str());
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "--dir" && i + 1 < argc)
      a.dir = argv[++i];
    else if (s == "--ops" && i + 1 < argc)
      a.ops = std::strtoull(argv[++i], nullptr, 10);
    else if (s == "--big")
      a.big = true;
    else {
      std::fprintf(stderr, "usage: %s [--dir DIR] [--ops N] [--big]\n", argv[0]);
      return 2;
    }
  }
  // libpmem reads PMEM_IS_PMEM_FORCE when it loads: run as PMEM_IS_PMEM_FORCE=1 kmm-bench-persist.
  const char* force = std::getenv("PMEM_IS_PMEM_FORCE");
  std::printf("# kmm vs libpmemobj on %s (PMEM_IS_PMEM_FORCE=%s), %llu alloc+free pairs per row\n", a.dir.c_str(),
              force ? force : "unset", static_cast<unsigned long long>(a.ops));
  std::printf("| object | threads | kmm Mops/s | pmemobj Mops/s | kmm / pmemobj |\n|---|---|---|---|---|\n");
  for (std::size_t size : {std::size_t{64}, std::size_t{256}, std::size_t{4096}}) {
    for (unsigned t : {1u, 2u}) {
      double k = kmm_throughput(a, size, t), p = pmem_throughput(a, size, t);
      std::printf("| %zu B | %u | %.2f | %.2f | %.1fx |\n", size, t, k, p, p > 0 ? k / p : 0.0);
      std::fflush(stdout);
    }
  }
  std::printf(
      "\n| live 64 B objects | kmm attach (rebuild) ms | pmemobj_open + first alloc ms | kmm metadata B/object | "
      "pmemobj metadata B/object |\n|---|---|---|---|---|\n");
  std::vector<std::uint64_t> ns = {10000, 1000000};
  if (a.big) ns.push_back(10000000);
  for (std::uint64_t n : ns) {
    AttachResult r = attach_time(a, n);
    std::printf("| %llu | %.2f | %.2f | %.2f | %.0f |\n", static_cast<unsigned long long>(n), r.kmm_ms, r.pmem_ms,
                r.kmm_meta, r.pmem_meta);
    std::fflush(stdout);
  }
  return 0;
}
