// bench/workloads/workloads.cpp — allocation workloads for comparing whole allocators
// (glibc, mimalloc, jemalloc, tcmalloc, kmm) by LD_PRELOAD; driven by bench/run_workloads.sh.
//
//   kmm-workloads WORKLOAD THREADS [SCALE]
//
// Prints one line: "workload=W threads=T seconds=S cpu=C maxrss_kb=R minflt=F majflt=M checksum=X
// ops=N" (wall time; user+system CPU and faults from getrusage at the end, peak RSS from VmHWM
// (see peak_rss_kb); the checksum keeps the work observable; N: the calls of malloc, free and
// realloc made, for throughput). Workloads:
//   larson     server churn in the spirit of larson: each thread owns a table of 4096 slots,
//              frees a random slot and allocates a random size (16..1024) in it; every round
//              the threads pass their tables on, so blocks are freed by other threads.
//              larson:N runs it with tables of N slots (a power of two): 256 keeps every line it
//              touches in the first-level cache, 65536 none (BENCHMARKS.md: what the table's
//              size does to each allocator). Not in run_workloads.sh's default set.
//   xmalloc    producer/consumer in the spirit of xmalloc-test: THREADS producers allocate
//              (16..512) and hand batches to THREADS consumers that free them.
//   small      small-object churn: linked lists of 16..128-byte nodes built and torn down
//              in LIFO and FIFO order, plus short-lived temporaries.
//   realloc    mixed sizes with realloc: string builders growing by realloc up to 64 KiB,
//              alongside malloc/free of 8..8192-byte blocks.
//   fragment   a long-lived fragmenting heap: fill with mixed sizes, free a random half,
//              refill with other sizes, repeat; the survivors live to the end (peak RSS).
//   huge       blocks over 4 MiB (each allocator's direct-mapping path): a pool of 4 blocks of
//              4..32 MiB replaced at random, one in four grown by realloc to 1.5x; 16 pages of
//              each block touched (not all: the point is the mapping's cost, not faulting
//              32 MiB in). Not in run_workloads.sh's default set (WORKLOADS=huge).
//   tight      one size in a tight loop (glibc's bench-malloc-thread): each thread mallocs,
//              writes and frees one block, 16, 64, 256, 1024 and 4096 bytes in turn.
//   bigchurn   blocks of 256 KiB..32 MiB (page runs and direct mappings alike) in a pool of 8
//              per thread, replaced at random, every page of each new block written once: what
//              a freed big block costs when it is wanted again (reuse vs. unmap + fault in).
//   pool       a thread pool: THREADS workers run tasks from one queue; every task is a block
//              (16..2048 bytes) allocated by the thread that submitted it and freed by the one
//              that runs it, which submits the next one: almost every free is remote.
//   threads    many threads, more than cores: 4 x THREADS threads started in waves, each
//              churning small blocks and exiting (thread caches made and given back).
//   idle       a burst, then idle threads: THREADS threads each allocate and write 20,000 x
//              SCALE blocks of 16..1016 bytes and free them all, then stay alive and idle while
//              the main thread churns a few 64-byte blocks a millisecond for 3 s; adds
//              rss_idle_kb= (VmRSS then, before the threads exit: what idle threads keep) and
//              rss_exit_kb= (VmRSS 2 s after they exited). Not in run_workloads.sh's default set.
// Depends on: the C++ standard library only (it measures whichever malloc is loaded).
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Rng {
  std::uint64_t s;
  explicit Rng(std::uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  std::uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  std::size_t range(std::size_t lo, std::size_t hi) { return lo + next() % (hi - lo + 1); }
};

std::atomic<std::uint64_t> g_sum{0};
// Calls of malloc, free and realloc made (free(nullptr) included): ops= in the output, for
// throughput (bench/run_scaling.py). Each thread adds its own count once, at its end.
std::atomic<std::uint64_t> g_ops{0};

inline void touch(void* p, std::size_t n) {
  auto* c = static_cast<unsigned char*>(p);
  c[0] = static_cast<unsigned char>(n);
  c[n - 1] = static_cast<unsigned char>(n >> 3);
}

// --- larson -----------------------------------------------------------------------------------
void larson(int threads, int scale, std::size_t slots) {
  const std::size_t slot_mask = slots - 1;  // slots is a power of two (main)
  const int rounds = 8;
  const long per_round = 250000L * scale / threads;
  std::vector<std::vector<void*>> tables(static_cast<std::size_t>(threads), std::vector<void*>(slots, nullptr));
  for (int r = 0; r < rounds; ++r) {
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
      // Round r: thread t works on the table thread t-r left behind.
      auto& table = tables[static_cast<std::size_t>((t + r) % threads)];
      ts.emplace_back([&table, t, r, per_round, slot_mask] {
        Rng rng(static_cast<std::uint64_t>(t * 131 + r + 7));
        std::uint64_t sum = 0;
        for (long i = 0; i < per_round; ++i) {
          std::size_t k = rng.next() & slot_mask;
          std::free(table[k]);
          std::size_t n = rng.range(16, 1024);
          table[k] = std::malloc(n);
          touch(table[k], n);
          sum += reinterpret_cast<std::uintptr_t>(table[k]) & 0xff;
        }
        g_sum += sum;
        g_ops += 2 * static_cast<std::uint64_t>(per_round);
      });
    }
    for (auto& th : ts) th.join();
  }
  for (auto& tb : tables)
    for (void* p : tb) std::free(p);
  g_ops += static_cast<std::uint64_t>(threads) * slots;
}

// --- xmalloc ----------------------------------------------------------------------------------
struct Queue {
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::vector<void*>> batches;
  bool done = false;
};

void xmalloc(int threads, int scale) {
  const long per_producer = 2000000L * scale / threads;
  constexpr std::size_t kBatch = 256;
  std::vector<Queue> queues(static_cast<std::size_t>(threads));
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&queues, t, per_producer] {
      Rng rng(static_cast<std::uint64_t>(t + 1));
      Queue& q = queues[static_cast<std::size_t>(t)];
      std::vector<void*> batch;
      batch.reserve(kBatch);
      for (long i = 0; i < per_producer; ++i) {
        std::size_t n = rng.range(16, 512);
        void* p = std::malloc(n);
        touch(p, n);
        batch.push_back(p);
        if (batch.size() == kBatch) {
          std::unique_lock<std::mutex> l(q.m);
          q.cv.wait(l, [&] { return q.batches.size() < 64; });
          q.batches.push_back(std::move(batch));
          q.cv.notify_all();
          batch = std::vector<void*>();
          batch.reserve(kBatch);
        }
      }
      g_ops += static_cast<std::uint64_t>(per_producer);
      std::lock_guard<std::mutex> l(q.m);
      if (!batch.empty()) q.batches.push_back(std::move(batch));
      q.done = true;
      q.cv.notify_all();
    });
    ts.emplace_back([&queues, t] {
      Queue& q = queues[static_cast<std::size_t>(t)];
      std::uint64_t sum = 0;
      for (;;) {
        std::vector<void*> batch;
        {
          std::unique_lock<std::mutex> l(q.m);
          q.cv.wait(l, [&] { return !q.batches.empty() || q.done; });
          if (q.batches.empty()) break;
          batch = std::move(q.batches.back());
          q.batches.pop_back();
          q.cv.notify_all();
        }
        for (void* p : batch) {
          sum += *static_cast<unsigned char*>(p);
          std::free(p);
        }
        g_ops += batch.size();
      }
      g_sum += sum;
    });
  }
  for (auto& th : ts) th.join();
}

// --- small ------------------------------------------------------------------------------------
struct Node {
  Node* next;
  std::uint64_t payload[1];
};

void small(int threads, int scale) {
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([t, scale, threads] {
      Rng rng(static_cast<std::uint64_t>(t + 11));
      std::uint64_t sum = 0;
      const int iters = 60 * scale / threads;
      for (int it = 0; it < iters; ++it) {
        Node* head = nullptr;
        Node* tail = nullptr;
        for (int i = 0; i < 50000; ++i) {
          std::size_t n = rng.range(16, 128);
          auto* nd = static_cast<Node*>(std::malloc(n));
          nd->next = nullptr;
          nd->payload[0] = n;
          if (it & 1) {  // FIFO
            if (tail)
              tail->next = nd;
            else
              head = nd;
            tail = nd;
          } else {  // LIFO
            nd->next = head;
            head = nd;
          }
          void* tmp = std::malloc(rng.range(8, 64));  // a short-lived temporary
          sum += reinterpret_cast<std::uintptr_t>(tmp) & 1;
          std::free(tmp);
        }
        while (head) {
          Node* n = head->next;
          sum += head->payload[0];
          std::free(head);
          head = n;
        }
        g_ops += 4 * 50000;  // per node: its malloc and free, the temporary's malloc and free
      }
      g_sum += sum;
    });
  }
  for (auto& th : ts) th.join();
}

// --- realloc ----------------------------------------------------------------------------------
void realloc_mix(int threads, int scale) {
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([t, scale, threads] {
      Rng rng(static_cast<std::uint64_t>(t + 21));
      std::uint64_t sum = 0;
      std::vector<void*> pool(512, nullptr);
      std::uint64_t ops = 0;
      const int iters = 6000 * scale / threads;
      for (int it = 0; it < iters; ++it) {
        // A string builder: grows by 16..256 bytes a step up to 1..64 KiB.
        std::size_t target = rng.range(1024, 65536);
        std::size_t len = 0, cap = 0;
        char* s = nullptr;
        while (len < target) {
          std::size_t add = rng.range(16, 256);
          if (len + add > cap) {
            cap = (len + add) + (len + add) / 8;
            s = static_cast<char*>(std::realloc(s, cap));
            ++ops;
          }
          std::memset(s + len, 'a' + static_cast<int>(len % 26), add);
          len += add;
        }
        sum += static_cast<unsigned char>(s[len / 2]);
        // Shrink to fit, as many programs do when done.
        s = static_cast<char*>(std::realloc(s, len));
        std::size_t k = rng.next() % pool.size();
        std::free(pool[k]);
        pool[k] = s;
        ops += 2 + 2 * 20;  // the shrink and the free; each mixed block's free and malloc
        // Mixed sizes alongside.
        for (int j = 0; j < 20; ++j) {
          std::size_t kk = rng.next() % pool.size();
          std::free(pool[kk]);
          std::size_t n = rng.range(8, 8192);
          pool[kk] = std::malloc(n);
          touch(pool[kk], n);
        }
      }
      for (void* p : pool) std::free(p);
      g_sum += sum;
      g_ops += ops + pool.size();
    });
  }
  for (auto& th : ts) th.join();
}

// --- fragment ---------------------------------------------------------------------------------
void fragment(int threads, int scale) {
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([t, scale, threads] {
      Rng rng(static_cast<std::uint64_t>(t + 31));
      const std::size_t live = 200000 / static_cast<std::size_t>(threads);
      std::vector<void*> objs(live, nullptr);
      std::vector<std::size_t> sizes(live, 0);
      std::uint64_t sum = 0, ops = 0;
      const int phases = 12 * scale;
      for (int ph = 0; ph < phases; ++ph) {
        // Each phase favours another size band, so freed holes do not fit the new requests.
        std::size_t lo = (ph % 4 == 0) ? 16 : (ph % 4 == 1) ? 200 : (ph % 4 == 2) ? 48 : 700;
        std::size_t hi = lo * 3;
        for (std::size_t i = 0; i < live; ++i) {
          if (objs[i] != nullptr && (rng.next() & 1)) continue;  // a random half survives
          std::free(objs[i]);
          std::size_t n = rng.range(lo, hi);
          objs[i] = std::malloc(n);
          ops += 2;
          sizes[i] = n;
          touch(objs[i], n);
        }
        for (std::size_t i = 0; i < live; i += 97) sum += static_cast<unsigned char*>(objs[i])[0];
      }
      for (void* p : objs) std::free(p);
      g_sum += sum;
      g_ops += ops + objs.size();
    });
  }
  for (auto& th : ts) th.join();
}

// --- huge -------------------------------------------------------------------------------------
void touch_spread(void* p, std::size_t n) {
  auto* c = static_cast<unsigned char*>(p);
  for (std::size_t i = 0; i < 16; ++i) c[n / 16 * i] = static_cast<unsigned char>(i);
  c[n - 1] = 1;
}

void huge(int threads, int scale) {
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([t, scale, threads] {
      Rng rng(static_cast<std::uint64_t>(t + 41));
      void* pool[4] = {};
      std::size_t sizes[4] = {};
      std::uint64_t sum = 0, ops = 0;
      const int iters = 1000 * scale / threads;
      for (int it = 0; it < iters; ++it) {
        std::size_t k = rng.next() % 4;
        if (pool[k] != nullptr && rng.next() % 4 == 0) {
          std::size_t n = sizes[k] + sizes[k] / 2;
          void* q = std::realloc(pool[k], n);
          ++ops;
          if (q == nullptr) continue;
          pool[k] = q;
          sizes[k] = n;
        } else {
          std::free(pool[k]);
          sizes[k] = rng.range(std::size_t{4} << 20, std::size_t{32} << 20) | 1;
          pool[k] = std::malloc(sizes[k]);
          ops += 2;
          if (pool[k] == nullptr) continue;
        }
        touch_spread(pool[k], sizes[k]);
        sum += static_cast<unsigned char*>(pool[k])[0];
      }
      for (void* p : pool) std::free(p);
      g_sum += sum;
      g_ops += ops + 4;
    });
  }
  for (auto& th : ts) th.join();
}

// --- tight ----------------------------------------------------------------------------------
void tight(int threads, int scale) {
  const long per_size = 2000000L * scale;
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([per_size] {
      std::uint64_t sum = 0;
      for (std::size_t n : {16u, 64u, 256u, 1024u, 4096u}) {
        for (long i = 0; i < per_size; ++i) {
          auto* p = static_cast<unsigned char*>(std::malloc(n));
          asm volatile("" : "+r"(p) : : "memory");  // no malloc/free pair folded away
          p[0] = static_cast<unsigned char>(i);
          sum += p[0];
          std::free(p);
        }
      }
      g_sum += sum;
      g_ops += 2 * 5 * static_cast<std::uint64_t>(per_size);
    });
  }
  for (auto& th : ts) th.join();
}

// --- bigchurn -------------------------------------------------------------------------------
void bigchurn(int threads, int scale) {
  const long steps = 600L * scale;
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([t, steps] {
      Rng rng(static_cast<std::uint64_t>(t + 77));
      void* pool[8] = {};
      std::uint64_t sum = 0;
      for (long i = 0; i < steps; ++i) {
        std::size_t k = rng.next() % 8;
        std::free(pool[k]);
        // Log-uniform over 256 KiB..32 MiB: as many blocks under 4 MiB as over.
        std::size_t n = (std::size_t{256} << 10) << rng.range(0, 6);
        n += rng.next() % n;
        pool[k] = std::malloc(n);
        if (pool[k] == nullptr) continue;
        auto* c = static_cast<unsigned char*>(pool[k]);
        for (std::size_t off = 0; off < n; off += 4096) c[off] = static_cast<unsigned char>(off >> 12);
        sum += c[(n / 2) & ~std::size_t{4095}];
      }
      for (void* p : pool) std::free(p);
      g_sum += sum;
      g_ops += 2 * static_cast<std::uint64_t>(steps) + 8;
    });
  }
  for (auto& th : ts) th.join();
}

// --- pool ------------------------------------------------------------------------------------
struct Task {
  std::uint64_t seed;
  std::uint32_t size;
};

void pool(int threads, int scale) {
  const long total = 3000000L * scale;
  std::mutex m;
  std::condition_variable cv;
  std::vector<Task*> queue;
  long submitted = 0, finished = 0;
  auto make = [](std::uint64_t seed) {
    Rng r(seed);
    auto n = static_cast<std::uint32_t>(r.range(sizeof(Task), 2048));
    auto* task = static_cast<Task*>(std::malloc(n));
    task->seed = seed;
    task->size = n;
    static_cast<unsigned char*>(static_cast<void*>(task))[n - 1] = 1;
    return task;
  };
  {
    std::lock_guard<std::mutex> l(m);
    for (int i = 0; i < 64 * threads; ++i) queue.push_back(make(static_cast<std::uint64_t>(i + 1)));
    submitted = 64 * threads;
  }
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&] {
      std::uint64_t sum = 0;
      std::vector<Task*> mine, children;
      for (;;) {
        {
          std::unique_lock<std::mutex> l(m);
          for (Task* c : children) queue.push_back(c);
          submitted += static_cast<long>(children.size());
          finished += static_cast<long>(mine.size());
          children.clear();
          mine.clear();
          if (!queue.empty()) cv.notify_all();
          cv.wait(l, [&] { return !queue.empty() || finished == submitted; });
          if (queue.empty()) {
            cv.notify_all();
            break;
          }
          // Take up to 16 tasks, from the back (another thread's, mostly).
          for (int i = 0; i < 16 && !queue.empty(); ++i) {
            mine.push_back(queue.back());
            queue.pop_back();
          }
        }
        for (Task* task : mine) {
          Rng r(task->seed);
          sum += static_cast<unsigned char*>(static_cast<void*>(task))[task->size - 1];
          // One child each keeps 64 tasks a thread in flight until `total` were submitted.
          std::size_t kids = submitted < total ? 1 : 0;
          for (std::size_t i = 0; i < kids; ++i) children.push_back(make(r.next() | 1));
          std::free(task);
        }
      }
      g_sum += sum;
    });
  }
  for (auto& th : ts) th.join();
  for (Task* task : queue) std::free(task);
  g_ops += 2 * static_cast<std::uint64_t>(submitted);
}

// --- threads ---------------------------------------------------------------------------------
void many_threads(int threads, int scale) {
  const int waves = 8 * scale;
  for (int w = 0; w < waves; ++w) {
    std::vector<std::thread> ts;
    for (int t = 0; t < 4 * threads; ++t) {
      ts.emplace_back([t, w] {
        Rng rng(static_cast<std::uint64_t>(w * 1000 + t + 3));
        std::vector<void*> live(512, nullptr);
        std::uint64_t sum = 0;
        for (int i = 0; i < 60000; ++i) {
          std::size_t k = rng.next() % live.size();
          std::free(live[k]);
          std::size_t n = rng.range(16, 512);
          live[k] = std::malloc(n);
          touch(live[k], n);
          sum += static_cast<unsigned char*>(live[k])[0];
        }
        for (void* p : live) std::free(p);
        g_sum += sum;
        g_ops += 2 * 60000 + live.size();
      });
    }
    for (auto& th : ts) th.join();
  }
}

// --- idle -------------------------------------------------------------------------------------
long rss_now_kb();
long g_rss_idle_kb = -1, g_rss_exit_kb = -1;

// The main thread's light work while the others idle: frees keep coming (an allocator that
// gives memory back on its own calls gets them), the burst's memory is not wanted again.
void churn_for(std::chrono::milliseconds how_long) {
  auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < how_long) {
    for (int i = 0; i < 200; ++i) {
      void* p = std::malloc(64);
      touch(p, 64);
      asm volatile("" : : "r"(p) : "memory");  // the pair is not elided: the pointer escapes
      std::free(p);
    }
    g_ops += 400;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void idle_after_burst(int threads, int scale) {
  std::atomic<int> done{0};
  std::atomic<bool> quit{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([t, scale, &done, &quit] {
      Rng rng(static_cast<std::uint64_t>(t + 71));
      std::vector<void*> burst(static_cast<std::size_t>(20000) * static_cast<std::size_t>(scale));
      for (void*& p : burst) {
        std::size_t n = rng.range(16, 1016);
        p = std::malloc(n);
        touch(p, n);
      }
      for (void* p : burst) std::free(p);
      g_ops += 2 * burst.size();
      done.fetch_add(1);
      while (!quit.load()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    });
  }
  while (done.load() < threads) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  churn_for(std::chrono::milliseconds(3000));
  g_rss_idle_kb = rss_now_kb();
  quit.store(true);
  for (auto& th : ts) th.join();
  churn_for(std::chrono::milliseconds(2000));
  g_rss_exit_kb = rss_now_kb();
}

// This process's peak resident set in KB: VmHWM of /proc/self/status, the high-water mark of
// its own address space. Not getrusage's ru_maxrss, which Linux carries across execve: a run
// inherits the resident set of the process that exec'd it when that is the larger — 0.3 MB
// from the fork of an interactive shell, 1.7 MB from `bash -c`, 13 MB from Python's
// subprocess — a floor under every allocator's figure that pulled the small workloads' ratios
// toward 1. Read with open/read into a stack buffer: stdio's first fopen faulted in 300 KB of
// libc that the measurement then counted. ru_maxrss only where /proc cannot be read.
long peak_rss_kb(long fallback) {
  char buf[4096];
  int fd = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fallback;
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return fallback;
  buf[n] = '\0';
  const char* hwm = std::strstr(buf, "VmHWM:");
  return hwm != nullptr ? std::strtol(hwm + 6, nullptr, 10) : fallback;
}

// VmRSS now, in KB (read as peak_rss_kb reads VmHWM); -1 when /proc cannot be read.
long rss_now_kb() {
  char buf[4096];
  int fd = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char* rss = std::strstr(buf, "VmRSS:");
  return rss != nullptr ? std::strtol(rss + 6, nullptr, 10) : -1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(
        stderr,
        "usage: %s larson[:SLOTS]|xmalloc|small|realloc|fragment|huge|tight|bigchurn|pool|threads|idle THREADS "
        "[SCALE]\n",
        argv[0]);
    return 2;
  }
  std::string w = argv[1];
  int threads = std::atoi(argv[2]);
  int scale = argc > 3 ? std::atoi(argv[3]) : 1;
  if (threads < 1 || scale < 1) return 2;
  auto t0 = std::chrono::steady_clock::now();
  if (w == "larson") {
    larson(threads, scale, 4096);
  } else if (w.rfind("larson:", 0) == 0) {
    long slots = std::atol(w.c_str() + 7);
    if (slots < 1 || slots > (1L << 24) || (slots & (slots - 1)) != 0) {
      std::fprintf(stderr, "larson:SLOTS wants a power of two from 1 to 2^24, not %s\n", w.c_str() + 7);
      return 2;
    }
    larson(threads, scale, static_cast<std::size_t>(slots));
  } else if (w == "xmalloc")
    xmalloc(threads, scale);
  else if (w == "small")
    small(threads, scale);
  else if (w == "realloc")
    realloc_mix(threads, scale);
  else if (w == "fragment")
    fragment(threads, scale);
  else if (w == "huge")
    huge(threads, scale);
  else if (w == "tight")
    tight(threads, scale);
  else if (w == "bigchurn")
    bigchurn(threads, scale);
  else if (w == "pool")
    pool(threads, scale);
  else if (w == "threads")
    many_threads(threads, scale);
  else if (w == "idle")
    idle_after_burst(threads, scale);
  else {
    std::fprintf(stderr, "unknown workload %s\n", argv[1]);
    return 2;
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
               static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
  std::printf("workload=%s threads=%d seconds=%.4f cpu=%.4f maxrss_kb=%ld minflt=%ld majflt=%ld checksum=%llu ops=%llu",
              w.c_str(), threads, secs, cpu, peak_rss_kb(ru.ru_maxrss), ru.ru_minflt, ru.ru_majflt,
              static_cast<unsigned long long>(g_sum.load()), static_cast<unsigned long long>(g_ops.load()));
  if (g_rss_idle_kb >= 0) std::printf(" rss_idle_kb=%ld rss_exit_kb=%ld", g_rss_idle_kb, g_rss_exit_kb);
  std::printf("\n");
  return 0;
}
