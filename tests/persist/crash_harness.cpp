// tests/persist/crash_harness.cpp — kill a machine on persistent RAM at random moments and
// check that every attach recovers it (issue 9; docs/PERSISTENCE.md).
//
// Each round forks a child that attaches to (or formats) the heap file and runs a random
// workload over it forever: kmalloc/kfree of many sizes (slab classes and page-level blocks),
// kmem_cache alloc/free, alloc_pages/free_pages, vmalloc/vfree, insmod/rmmod, collector
// passes, flush points. The child publishes what it holds in a table found through a named
// persistent root ("table"): a block is written, then its slot; a slot is cleared, then the
// block freed. The parent kills the child with SIGKILL — after a random number of
// microseconds, or the child arms a CPU-time timer that sends it SIGKILL (a random point of
// its own work) — then:
//   1. runs kmm fsck on the file (must be clean: 0 inconsistencies);
//   2. attaches, runs check_invariants, and checks the table: every published block is live,
//      big enough, holds its pattern, and no two overlap;
//   3. detaches; the next child attaches to what is left.
// It prints the number of crash points and where (which operation) they landed.
//
// --power=prefix|pages: power-loss mode. The child snapshots the file at every flush point;
// after the kill the parent drops writes made since the last flush: all of them (prefix), or
// a random subset of the 4K pages that changed (pages, in the spirit of PMDK's pmreorder).
// Documented in docs/PERSISTENCE.md; not run in CI.
//
// Usage: kmm-crash-harness [--rounds N] [--seed S] [--file PATH] [--ram MiB] [--power MODE] [-v]
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/report.h"
#include "base/text.h"
#include "kernel/kernel.h"
#include "pal/pal_file.h"
#include "persist/fsck.h"
#include "persist/heap_file.h"

using namespace kmm;

namespace {

enum Op : std::uint32_t {
  kOpAttach,
  kOpKmalloc,
  kOpKfree,
  kOpLarge,
  kOpCacheAlloc,
  kOpCacheFree,
  kOpPages,
  kOpFreePages,
  kOpVmalloc,
  kOpVfree,
  kOpInsmod,
  kOpRmmod,
  kOpCollect,
  kOpFlush,
  kOpBootComplete,
  kOpGrow,
  kNrOps
};
const char* kOpNames[kNrOps] = {"attach/rebuild", "kmalloc",    "kfree",         "kmalloc-large",
                                "cache_alloc",    "cache_free", "alloc_pages",   "free_pages",
                                "vmalloc",        "vfree",      "insmod",        "rmmod",
                                "collector",      "flush",      "boot-complete", "krealloc-grow"};

enum Kind : std::uint8_t { kNone, kKmalloc, kCache, kVmalloc, kPages };
struct Slot {
  std::uintptr_t ptr;  // published last, cleared first
  std::uint64_t va;
  std::uint32_t size;
  std::uint8_t pattern;
  std::uint8_t kind;
  std::uint8_t pad[2];
};
constexpr unsigned kSlots = 1024;
constexpr unsigned kModules = 4;
const char* kModuleNames[kModules] = {"m_net", "m_cam", "m_fs", "m_usb"};

struct Shared {
  volatile std::uint32_t op;
  volatile std::uint64_t ops;
};

struct Options {
  unsigned rounds = 1000;
  std::uint64_t seed = 1;
  std::string file;
  std::uint64_t ram_mib = 8;
  std::string power;  // "", "prefix", "pages"
  bool verbose = false;
};

BootConfig make_cfg(const Options& o) {
  BootConfig cfg;
  cfg.ram_bytes = o.ram_mib << 20;
  cfg.backing = o.file.c_str();
  cfg.protector = ProtectorMode::kReclaim;
  cfg.gc_delay_ns = 1000000;
  cfg.min_free_kbytes = ~std::uint64_t{0};
  cfg.vmalloc_bytes = 64ull << 20;
  return cfg;
}

owner_t owner_of_slot(Kernel& k, const Slot& s) {
  if (s.kind == kVmalloc) {
    const VmArea* a = k.vmalloc_space().find(s.va);
    return a != nullptr ? a->owner : kOwnerFree;
  }
  return k.owner_of(reinterpret_cast<void*>(s.ptr));
}

KmemCache* find_cache(Kernel& k) {
  for (unsigned i = 0; i < k.slab().nr_cache_ids(); ++i) {
    KmemCache* c = k.slab().cache(i);
    if (c != nullptr && std::strcmp(c->name, "harness") == 0) return c;
  }
  return k.kmem_cache_create("harness", 72);
}

// --- power loss: snapshot at flush points -------------------------------------------------
std::string g_snap;
bool g_formatted = false;  // a format completed: power-loss mode has a heap to snapshot
void snapshot_hook(void* arg) {
  auto* fp = static_cast<FilePlatform*>(arg);
  std::string tmp = g_snap + ".tmp";  // written whole, then renamed: a kill never tears it
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return;
  const char* base = fp->ram() - kHeapHeaderBytes;
  std::size_t n = static_cast<std::size_t>(kHeapHeaderBytes + fp->ram_bytes());
  for (std::size_t off = 0; off < n;) {
    ssize_t w = ::write(fd, base + off, n - off);
    if (w <= 0) break;
    off += static_cast<std::size_t>(w);
  }
  ::close(fd);
  ::rename(tmp.c_str(), g_snap.c_str());
}

[[noreturn]] void child(const Options& o, std::uint64_t seed, Shared* sh, std::int64_t cpu_kill_ns) {
  if (cpu_kill_ns > 0) {
    struct sigevent sev;
    std::memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGKILL;
    timer_t t;
    if (timer_create(CLOCK_PROCESS_CPUTIME_ID, &sev, &t) == 0) {
      struct itimerspec its;
      std::memset(&its, 0, sizeof its);
      its.it_value.tv_sec = static_cast<time_t>(cpu_kill_ns / 1000000000);  // 32-bit time_t on armhf
      its.it_value.tv_nsec = static_cast<long>(cpu_kill_ns % 1000000000);
      timer_settime(t, 0, &its, nullptr);
    }
  }
  std::mt19937_64 rng(seed);
  auto rnd = [&](std::uint64_t n) { return n == 0 ? 0 : rng() % n; };
  sh->op = kOpAttach;
  BootConfig cfg = make_cfg(o);
  BootError err;
  Kernel* k = persist_boot(cfg, &err);
  if (k == nullptr) {
    std::fprintf(stderr, "child: boot failed: %s\n", err.what);
    _exit(3);
  }
  if (!o.power.empty()) k->backing_file()->set_flush_hook(snapshot_hook, k->backing_file());
  auto* table = static_cast<Slot*>(k->root_get("table"));
  if (table == nullptr) {
    table = static_cast<Slot*>(k->kzalloc(sizeof(Slot) * kSlots, GFP_KERNEL, kOwnerKernel));
    if (table == nullptr) _exit(4);
    k->root_set("table", table);
  }
  KmemCache* cache = find_cache(*k);
  if (!o.power.empty()) k->flush();
  // Bring back some of the modules that were loaded; forget the others' blocks; boot complete.
  for (unsigned o2 = kOwnerFirstModule; o2 < kOwnerUntracked; ++o2) {
    const Module* m = k->modules().module(static_cast<owner_t>(o2));
    if (m == nullptr || m->state != ModuleState::kDormant) continue;
    std::string name = m->name;
    if (rnd(10) < 7) {
      sh->op = kOpInsmod;
      k->insmod(name.c_str());
    } else {
      for (unsigned i = 0; i < kSlots; ++i)
        if (table[i].ptr != 0 && owner_of_slot(*k, table[i]) == o2)
          __atomic_store_n(&table[i].ptr, 0, __ATOMIC_RELAXED);
    }
  }
  sh->op = kOpBootComplete;
  k->boot_complete();
  auto live_owner = [&]() -> owner_t {
    owner_t cands[kModules + 1];
    unsigned n = 0;
    for (auto* name : kModuleNames) {
      owner_t x = k->module_owner(name);
      if (x != kOwnerFree) cands[n++] = x;
    }
    if (n == 0 || rnd(10) == 0) return kOwnerKernel;
    return cands[rnd(n)];
  };
  auto free_slot = [&]() -> Slot* {
    unsigned start = static_cast<unsigned>(rnd(kSlots));
    for (unsigned i = 0; i < kSlots; ++i) {
      Slot* s = &table[(start + i) % kSlots];
      if (s->ptr == 0) return s;
    }
    return nullptr;
  };
  auto used_slot = [&](std::uint8_t kind) -> Slot* {
    unsigned start = static_cast<unsigned>(rnd(kSlots));
    for (unsigned i = 0; i < kSlots; ++i) {
      Slot* s = &table[(start + i) % kSlots];
      if (s->ptr != 0 && (kind == kNone || s->kind == kind)) return s;
    }
    return nullptr;
  };
  auto publish = [&](Slot* s, void* p, std::uint64_t va, std::uint32_t size, std::uint8_t kind) {
    std::uint8_t pat = static_cast<std::uint8_t>(1 + rnd(250));
    if (kind != kVmalloc) std::memset(p, pat, std::min<std::uint32_t>(size, 64));
    s->va = va;
    s->size = size;
    s->pattern = pat;
    s->kind = kind;
    __atomic_signal_fence(__ATOMIC_RELEASE);
    __atomic_store_n(&s->ptr, kind == kVmalloc ? std::uintptr_t{1} : reinterpret_cast<std::uintptr_t>(p),
                     __ATOMIC_RELAXED);
  };
  auto unpublish = [&](Slot* s) {
    __atomic_store_n(&s->ptr, 0, __ATOMIC_RELAXED);
    __atomic_signal_fence(__ATOMIC_RELEASE);
  };
  static const std::uint32_t kSizes[] = {8,   16,  24,  40,  64,   72,   96,   128,  150, 192,
                                         256, 300, 512, 700, 1024, 2048, 3000, 4096, 8192};
  for (;;) {
    std::uint64_t dice = rnd(100);
    sh->ops = sh->ops + 1;
    Slot* s;
    if (dice < 30) {
      sh->op = kOpKmalloc;
      if ((s = free_slot()) == nullptr) continue;
      std::uint32_t size = kSizes[rnd(sizeof kSizes / sizeof kSizes[0])];
      void* p = k->kmalloc(size, GFP_KERNEL, live_owner());
      if (p != nullptr) publish(s, p, 0, size, kKmalloc);
    } else if (dice < 55) {
      sh->op = kOpKfree;
      if ((s = used_slot(kKmalloc)) == nullptr) continue;
      void* p = reinterpret_cast<void*>(s->ptr);
      unpublish(s);
      k->kfree(p, kOwnerKernel);
    } else if (dice < 58) {
      sh->op = kOpLarge;
      if ((s = free_slot()) == nullptr) continue;
      std::uint32_t size = static_cast<std::uint32_t>((3 + rnd(60)) << 12);
      // Half of them the kernel's, which always grow in place when they can (kOpGrow; a
      // module's run grows only inside the fence's window: Kmalloc::grow_large_in_place, and
      // this machine has no thread caches to open one), the others the modules' to leak.
      void* p = k->kmalloc(size, GFP_KERNEL, rnd(2) == 0 ? kOwnerKernel : live_owner());
      if (p != nullptr) publish(s, p, 0, size, kKmalloc);
    } else if (dice < 60) {
      sh->op = kOpGrow;
      // A page run grown where it is (krealloc's first try): the same pointer, still published;
      // a crash inside leaves it whole at its old length or its new one.
      if ((s = used_slot(kKmalloc)) == nullptr || s->size <= kKmallocMaxCacheSize) continue;
      std::uint32_t size = s->size + static_cast<std::uint32_t>((1 + rnd(8)) << 12);
      if (k->kmalloc_layer().grow_large_in_place(reinterpret_cast<void*>(s->ptr), size, GFP_KERNEL)) s->size = size;
    } else if (dice < 68) {
      sh->op = kOpCacheAlloc;
      if ((s = free_slot()) == nullptr || cache == nullptr) continue;
      void* p = k->kmem_cache_alloc(cache, GFP_KERNEL, live_owner());
      if (p != nullptr) publish(s, p, 0, 72, kCache);
    } else if (dice < 75) {
      sh->op = kOpCacheFree;
      if ((s = used_slot(kCache)) == nullptr) continue;
      void* p = reinterpret_cast<void*>(s->ptr);
      unpublish(s);
      k->kmem_cache_free(cache, p, kOwnerKernel);
    } else if (dice < 78) {
      sh->op = kOpPages;
      if ((s = free_slot()) == nullptr) continue;
      unsigned order = static_cast<unsigned>(rnd(3));
      void* p = k->alloc_pages(order, GFP_KERNEL, live_owner());
      if (p != nullptr) publish(s, p, 0, static_cast<std::uint32_t>(kPageSize << order), kPages);
    } else if (dice < 81) {
      sh->op = kOpFreePages;
      if ((s = used_slot(kPages)) == nullptr) continue;
      void* p = reinterpret_cast<void*>(s->ptr);
      unpublish(s);
      k->free_pages(p, kOwnerKernel);
    } else if (dice < 84) {
      sh->op = kOpVmalloc;
      if ((s = free_slot()) == nullptr) continue;
      std::uint32_t size = static_cast<std::uint32_t>(1 + rnd(5 * kPageSize));
      std::uint64_t va = k->vmalloc(size, live_owner());
      if (va != 0) publish(s, nullptr, va, size, kVmalloc);
    } else if (dice < 87) {
      sh->op = kOpVfree;
      if ((s = used_slot(kVmalloc)) == nullptr) continue;
      std::uint64_t va = s->va;
      unpublish(s);
      k->vfree(va, kOwnerKernel);
    } else if (dice < 90) {
      sh->op = kOpInsmod;
      k->insmod(kModuleNames[rnd(kModules)]);
    } else if (dice < 93) {
      sh->op = kOpRmmod;
      const char* name = kModuleNames[rnd(kModules)];
      owner_t ow = k->module_owner(name);
      if (ow == kOwnerFree) continue;
      for (unsigned i = 0; i < kSlots; ++i)
        if (table[i].ptr != 0 && owner_of_slot(*k, table[i]) == ow) unpublish(&table[i]);
      k->rmmod(name);
    } else if (dice < 99) {
      sh->op = kOpCollect;
      k->idle(2000000);
    } else {
      sh->op = kOpFlush;
      k->flush();
    }
  }
}

struct Checker {
  bool verbose;
  unsigned failures = 0;
  void fail(unsigned round, const std::string& what) {
    ++failures;
    std::fprintf(stderr, "round %u: FAILED: %s\n", round, what.c_str());
  }
};

bool copy_file(const std::string& from, const std::string& to);

bool check_heap(const Options& o, unsigned round, Checker& chk, std::uint64_t* live_blocks) {
  std::vector<char> buf(1 << 16);
  TextSink sink(buf.data(), buf.size());
  FsckResult r = persist_fsck(o.file.c_str(), sink);
  struct stat st;
  if (r.status == 2 &&
      (std::strstr(sink.data(), "unfinished format") != nullptr || ::stat(o.file.c_str(), &st) != 0 || st.st_size == 0))
    return true;  // killed before or while formatting: nothing to recover yet (no snapshot either)
  g_formatted = true;
  if (r.status != 0) {
    chk.fail(round, std::string("fsck:\n") + sink.data());
    return false;
  }
  if (chk.verbose) std::fputs(sink.data(), stdout);
  BootConfig cfg = make_cfg(o);
  BootError err;
  Kernel* k = persist_boot(cfg, &err);
  if (k == nullptr) {
    chk.fail(round, std::string("attach: ") + err.what);
    return false;
  }
  StackText<512> why;
  bool ok = true;
  if (!k->check_invariants(&why)) {
    chk.fail(round, std::string("check_invariants after attach: ") + why.data());
    ok = false;
  }
  auto* table = static_cast<Slot*>(k->root_get("table"));
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> spans;
  if (table != nullptr) {
    for (unsigned i = 0; i < kSlots && ok; ++i) {
      const Slot& s = table[i];
      if (s.ptr == 0) continue;
      char what[200];
      if (s.kind == kVmalloc) {
        const VmArea* a = k->vmalloc_space().find(s.va);
        if (a == nullptr || a->addr != s.va || a->requested < s.size) {
          std::snprintf(what, sizeof what, "slot %u: vmalloc area 0x%llx is not live", i,
                        static_cast<unsigned long long>(s.va));
          chk.fail(round, what);
          ok = false;
        }
        continue;
      }
      auto* p = reinterpret_cast<unsigned char*>(s.ptr);
      std::size_t have = k->ksize(p);
      if (k->owner_of(p) == kOwnerFree || have < s.size) {
        std::snprintf(what, sizeof what, "slot %u: block %p (%u bytes, kind %u) is not live (ksize %zu)", i,
                      static_cast<void*>(p), s.size, s.kind, have);
        chk.fail(round, what);
        ok = false;
        continue;
      }
      for (std::uint32_t b = 0; b < std::min<std::uint32_t>(s.size, 64); ++b) {
        if (p[b] != s.pattern) {
          std::snprintf(what, sizeof what, "slot %u: block %p lost its contents at byte %u", i, static_cast<void*>(p),
                        b);
          chk.fail(round, what);
          ok = false;
          break;
        }
      }
      spans.emplace_back(s.ptr, s.ptr + have);
    }
  }
  std::sort(spans.begin(), spans.end());
  for (std::size_t i = 1; i < spans.size() && ok; ++i) {
    if (spans[i].first < spans[i - 1].second) {
      chk.fail(round, "two published blocks overlap");
      ok = false;
    }
  }
  *live_blocks = spans.size();
  k->shutdown();
  return ok;
}

bool copy_file(const std::string& from, const std::string& to) {
  FILE* a = std::fopen(from.c_str(), "rb");
  if (a == nullptr) return false;
  FILE* b = std::fopen(to.c_str(), "wb");
  if (b == nullptr) {
    std::fclose(a);
    return false;
  }
  std::vector<char> buf(1 << 20);
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), a)) > 0) std::fwrite(buf.data(), 1, n, b);
  std::fclose(a);
  std::fclose(b);
  return true;
}

// Drops writes made since the last flush point: all (prefix) or a random subset of pages.
void power_loss(const Options& o, std::mt19937_64& rng, std::uint64_t* dropped_pages) {
  if (o.power == "prefix") {
    copy_file(g_snap, o.file);
    return;
  }
  FILE* snap = std::fopen(g_snap.c_str(), "rb");
  FILE* cur = std::fopen(o.file.c_str(), "r+b");
  if (snap == nullptr || cur == nullptr) {
    if (snap) std::fclose(snap);
    if (cur) std::fclose(cur);
    return;
  }
  std::vector<char> a(4096), b(4096);
  for (long off = 0;; off += 4096) {
    std::fseek(snap, off, SEEK_SET);
    std::fseek(cur, off, SEEK_SET);
    std::size_t na = std::fread(a.data(), 1, 4096, snap), nb = std::fread(b.data(), 1, 4096, cur);
    if (na == 0 || nb == 0) break;
    if (na == nb && std::memcmp(a.data(), b.data(), na) != 0 && (rng() & 1)) {
      std::fseek(cur, off, SEEK_SET);
      std::fwrite(a.data(), 1, na, cur);
      ++*dropped_pages;
    }
  }
  std::fclose(snap);
  std::fclose(cur);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  const char* tmp = std::getenv("TMPDIR");
  struct stat st;
  std::string dir = ::stat("/dev/shm", &st) == 0 ? "/dev/shm" : (tmp ? tmp : "/tmp");
  o.file = dir + "/kmm-crash-" + std::to_string(::getpid()) + ".heap";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--rounds")
      o.rounds = static_cast<unsigned>(std::stoul(next()));
    else if (a == "--seed")
      o.seed = std::stoull(next());
    else if (a == "--file")
      o.file = next();
    else if (a == "--ram")
      o.ram_mib = std::stoull(next());
    else if (a == "--power")
      o.power = next();
    else if (a == "-v")
      o.verbose = true;
    else {
      std::fprintf(stderr, "usage: %s [--rounds N] [--seed S] [--file PATH] [--ram MiB] [--power prefix|pages] [-v]\n",
                   argv[0]);
      return 2;
    }
  }
  if (!o.power.empty() && o.power != "prefix" && o.power != "pages") {
    std::fprintf(stderr, "--power takes prefix or pages\n");
    return 2;
  }
  g_snap = o.file + ".snap";
  std::remove(o.file.c_str());
  std::remove(g_snap.c_str());
  set_on_error(OnError::kReport);
  auto* sh =
      static_cast<Shared*>(::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  std::mt19937_64 rng(o.seed);
  Checker chk{o.verbose};
  std::uint64_t by_op[kNrOps] = {}, timer_kills = 0, sleep_kills = 0, ops = 0, live = 0, dropped_pages = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  unsigned crashes = 0;
  for (unsigned round = 0; round < o.rounds; ++round) {
    sh->op = kOpAttach;
    sh->ops = 0;
    bool by_timer = rng() % 3 == 0;
    std::int64_t cpu_ns = by_timer ? static_cast<std::int64_t>(20000 + rng() % 3000000) : 0;
    std::uint64_t sleep_us = 100 + rng() % 4000;
    std::uint64_t child_seed = rng();
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid == 0) child(o, child_seed, sh, cpu_ns);
    int status = 0;
    if (by_timer) {
      // The child kills itself at a random point of its CPU time; a stuck child is killed anyway.
      for (int i = 0; i < 2000 && ::waitpid(pid, &status, WNOHANG) == 0; ++i) ::usleep(1000);
      if (::waitpid(pid, &status, WNOHANG) == 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
      }
      ++timer_kills;
    } else {
      ::usleep(static_cast<useconds_t>(sleep_us));
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      ++sleep_kills;
    }
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
      chk.fail(round, "the child did not die of SIGKILL (status " + std::to_string(status) + "): it failed on its own");
      break;
    }
    ++crashes;
    by_op[sh->op < kNrOps ? sh->op : 0]++;
    ops += sh->ops;
    if (!o.power.empty() && g_formatted && ::stat(g_snap.c_str(), &st) == 0) power_loss(o, rng, &dropped_pages);
    std::uint64_t blocks = 0;
    if (!check_heap(o, round, chk, &blocks)) break;
    live = blocks;
    if (!o.power.empty() && g_formatted) copy_file(o.file, g_snap);  // the clean detach is a flush point
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = static_cast<double>(t1.tv_sec - t0.tv_sec) + static_cast<double>(t1.tv_nsec - t0.tv_nsec) / 1e9;
  std::printf(
      "crash harness: %u crash points (%llu by wall-clock SIGKILL, %llu by CPU-time SIGKILL), %llu operations, %.1f "
      "s%s\n",
      crashes, static_cast<unsigned long long>(sleep_kills), static_cast<unsigned long long>(timer_kills),
      static_cast<unsigned long long>(ops), secs, o.power.empty() ? "" : (", power loss: " + o.power).c_str());
  std::printf("crash points by operation in flight:");
  for (unsigned i = 0; i < kNrOps; ++i)
    std::printf(" %s %llu%s", kOpNames[i], static_cast<unsigned long long>(by_op[i]), i + 1 < kNrOps ? "," : "\n");
  if (!o.power.empty())
    std::printf("power loss: %llu dropped pages in all\n", static_cast<unsigned long long>(dropped_pages));
  std::printf("published blocks live at the end: %llu; inconsistencies: %u\n", static_cast<unsigned long long>(live),
              chk.failures);
  std::remove(o.file.c_str());
  std::remove(g_snap.c_str());
  return chk.failures == 0 ? 0 : 1;
}
