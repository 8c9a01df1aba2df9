// tests/shim/test_protector_races.cpp — the protector's claims against a program's own calls,
// in a real process (the preload is this program's malloc, protect=reclaim from the
// environment: CMakeLists.txt). A plug-in's memory is reclaimed by collector passes while the
// host's threads still call into kmm with its blocks; each block ends up either the host's or
// reclaimed, never both, and nothing the host keeps is freed twice (a double free stops the
// process: on_error=abort, the default). The model's versions: tests/protect,
// CollectorStress.*RacingTheReclaimOfAGoneModule.
#include <gtest/gtest.h>
#include <kmm/kmm.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "../common/opaque.h"

namespace {

using kmm::test::opaque;

std::uint64_t reclaimed_objects() {
  kmm_leak_stats s{};
  EXPECT_EQ(kmm_leaks(&s), 0);
  return s.reclaimed_objects;
}

// A host rescuing an unloaded plug-in's blocks (kmm_transfer to itself) on two threads while
// the main thread runs passes: a transfer replaces the owner by compare-and-swap against the
// pass's claim (slab.cpp, SlabAllocator::set_owner; Kmalloc::set_owner). Every rescued block
// is then written and freed by the host.
TEST(ProtectorRaces, TransfersRacingTheReclaimOfAnUnloadedPlugin) {
  ASSERT_EQ(kmm_active(), 1);
  std::uint64_t rescued_total = 0, reclaimed_total = 0;
  for (int round = 0; round < 10 || (round < 40 && (rescued_total == 0 || reclaimed_total == 0)); ++round) {
    ASSERT_GE(kmm_module_load("departing"), 2);
    constexpr int kThreads = 2, kPerThread = 4000;
    std::vector<std::vector<void*>> blocks(kThreads);
    for (auto& v : blocks) v.reserve(kPerThread);  // the host's: only the blocks are the plug-in's
    {
      int token = kmm_module_scope_enter("departing");
      ASSERT_GE(token, 0);
      for (auto& v : blocks)
        for (int i = 0; i < kPerThread; ++i)
          v.push_back(malloc(opaque(i % 40 == 0 ? std::size_t{12288} : std::size_t{16} + i % 700)));
      kmm_module_scope_leave(token);
    }
    const std::uint64_t reclaimed0 = reclaimed_objects();
    ASSERT_EQ(kmm_module_unload("departing"), 0);
    std::atomic<int> go{0}, done{0};
    std::atomic<long> tried{0};
    std::vector<std::vector<void*>> rescued(kThreads);
    for (auto& v : rescued) v.reserve(kPerThread);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        while (go.load() == 0) {
        }
        for (void* p : blocks[t]) {
          // Now and then the CPU for the passes: on a loaded machine the rescuers otherwise
          // took every block within one time slice, round after round.
          if (tried.fetch_add(1, std::memory_order_relaxed) % 32 == 31) std::this_thread::yield();
          if (kmm_transfer(p, nullptr) == 0) rescued[t].push_back(p);
        }
        done.fetch_add(1);
      });
    }
    go = 1;
    // Passes once the rescue is under way: on a loaded machine a pass begun first took every
    // block before either thread ran, round after round.
    while (tried.load() < kThreads * kPerThread / 16) {
    }
    while (done.load() < kThreads) kmm_collect();
    for (auto& th : threads) th.join();
    kmm_collect();
    std::uint64_t n_rescued = 0;
    for (auto& v : rescued) {
      for (void* p : v) {
        std::memset(p, 0x5A, malloc_usable_size(p));  // the host's now: writable, then freed once
        free(p);
      }
      n_rescued += v.size();
    }
    const std::uint64_t reclaimed = reclaimed_objects() - reclaimed0;
    EXPECT_EQ(n_rescued + reclaimed, std::uint64_t{kThreads} * kPerThread) << "round " << round;
    rescued_total += n_rescued;
    reclaimed_total += reclaimed;
  }
  // Both sides won blocks, or the race was not run.
  EXPECT_GT(rescued_total, 0u);
  EXPECT_GT(reclaimed_total, 0u);
}

// The host keeps growing an unloaded plug-in's buffers with realloc (each grow moves them)
// while passes of reclaim-unreachable run: every buffer is referenced (the host's table, the
// thread's registers) and must survive, its bytes intact. A pass marks what is reachable at
// one moment (a fork's snapshot); a buffer moved after that moment into a new block of the
// dead owner was swept while the host held it. A buffer moved once its owner is gone is the
// host's (ModuleWindow::gone, slab.h).
TEST(ProtectorRacesUnreachable, ReallocOfAnUnloadedPluginsBuffersDuringPasses) {
  ASSERT_EQ(kmm_active(), 1);
  constexpr int kBuffers = 64, kPasses = 8;
  std::vector<unsigned char*> buffers(kBuffers);
  std::vector<std::size_t> sizes(kBuffers, 32);
  ASSERT_GE(kmm_module_load("plugin"), 2);
  {
    int token = kmm_module_scope_enter("plugin");
    ASSERT_GE(token, 0);
    for (int i = 0; i < kBuffers; ++i) {
      buffers[i] = static_cast<unsigned char*>(malloc(opaque(32)));
      std::memset(buffers[i], i, 32);
    }
    kmm_module_scope_leave(token);
  }
  ASSERT_EQ(kmm_module_unload("plugin"), 0);
  std::atomic<int> stop{0};
  std::atomic<int> bad{0};
  std::thread grower([&] {
    while (stop.load() == 0) {
      for (int i = 0; i < kBuffers; ++i) {
        // Grown (moved) step by step; past 6000 bytes cut back to 40 (moved too: far shrink).
        std::size_t n = sizes[i] > 6000 ? 40 : sizes[i] + 48;
        std::size_t kept = n < sizes[i] ? n : sizes[i];
        auto* q = static_cast<unsigned char*>(realloc(buffers[i], opaque(n)));
        if (q == nullptr) {
          bad++;
          continue;
        }
        for (std::size_t j = 0; j < kept; ++j)
          if (q[j] != static_cast<unsigned char>(i)) {
            bad++;
            break;
          }
        std::memset(q + kept, i, n - kept);
        buffers[i] = q;
        sizes[i] = n;
      }
    }
  });
  for (int pass = 0; pass < kPasses; ++pass) kmm_collect();
  stop = 1;
  grower.join();
  kmm_collect();
  EXPECT_EQ(bad.load(), 0) << "a buffer's bytes changed under the host";
  for (int i = 0; i < kBuffers; ++i) {
    for (std::size_t j = 0; j < sizes[i]; ++j) ASSERT_EQ(buffers[i][j], static_cast<unsigned char>(i)) << i;
    free(buffers[i]);  // a buffer swept under the host: a double free stops the process here
  }
  kmm_leak_stats s{};
  ASSERT_EQ(kmm_leaks(&s), 0);
  EXPECT_EQ(s.reclaimed_objects, 0u) << "everything the plug-in left was the host's to keep";
}

// The same with a huge block (over 4 MiB: its own mapping, huge.cpp) that the host's realloc
// moves (mremap) while passes run: a snapshot pass marks huge blocks by address, so a block
// that moved after the copy was made was found unmarked and unmapped under the host (the
// review's host died within two passes, 3 runs of 3). A page mapped right after the block
// makes each growth move it.
TEST(ProtectorRacesUnreachable, ReallocMovingAnUnloadedPluginsHugeBlockDuringPasses) {
  ASSERT_EQ(kmm_active(), 1);
  constexpr std::size_t kSmall = std::size_t{8} << 20, kBig = std::size_t{12} << 20;
  ASSERT_GE(kmm_module_load("huge-plugin"), 2);
  unsigned char* block;
  {
    int token = kmm_module_scope_enter("huge-plugin");
    ASSERT_GE(token, 0);
    block = static_cast<unsigned char*>(malloc(opaque(kSmall)));
    kmm_module_scope_leave(token);
  }
  ASSERT_NE(block, nullptr);
  std::memset(block, 0xab, kSmall);
  ASSERT_EQ(kmm_module_unload("huge-plugin"), 0);
  std::atomic<int> stop{0};
  std::atomic<int> bad{0};
  std::atomic<unsigned long> moves{0};
  std::thread resizer([&] {
    void* blocker = nullptr;
    for (unsigned long i = 0; stop.load() == 0; ++i) {
      const std::size_t n = (i & 1) != 0 ? kSmall : kBig;
      auto* q = static_cast<unsigned char*>(realloc(block, opaque(n)));
      if (q == nullptr) {
        bad++;
        break;
      }
      if (q != block) moves++;
      block = q;
      if (blocker != nullptr) munmap(blocker, 4096);
      blocker = mmap(q + n, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
      if (blocker == MAP_FAILED) blocker = nullptr;
      if (q[0] != 0xab || q[kSmall - 1] != 0xab) bad++;
      usleep(100);
    }
    if (blocker != nullptr) munmap(blocker, 4096);
  });
  for (int pass = 0; pass < 10; ++pass) {
    kmm_collect();
    usleep(20000);
  }
  stop = 1;
  resizer.join();
  EXPECT_EQ(bad.load(), 0) << "the block failed to move or lost its bytes";
  EXPECT_GT(moves.load(), 0u) << "the block never moved: the race was not run";
  for (std::size_t j = 0; j < kSmall; j += 4096) ASSERT_EQ(block[j], 0xab) << j;
  free(block);  // a block swept under the host: a double free stops the process here
  kmm_leak_stats st{};
  ASSERT_EQ(kmm_leaks(&st), 0);
  EXPECT_EQ(st.reclaimed_objects, 0u) << "the block was the host's to keep";
}

// A plug-in's worker thread, inside the plug-in's scope (kmm_module_scope_enter), still
// building and walking a list of its blocks while the host unloads the plug-in and passes run:
// the scope holds the module (ModuleRegistry::hold), so no pass takes its blocks — not those
// from before the unload, nor those allocated after a reclaim-unreachable pass has marked —
// until the worker leaves the scope. Then they are leaks like any other and are reclaimed.
// Run under protect=reclaim (ProtectorRaces) and protect=reclaim-unreachable.
struct Node {
  Node* next;
  std::uint64_t magic;
  std::size_t bytes;
};

Node* new_node(Node* next, std::size_t bytes) {
  auto* n = static_cast<Node*>(malloc(opaque(bytes)));
  if (n == nullptr) return next;
  n->next = next;
  n->magic = 0x6b6d6d2d6e6f6465ull ^ bytes;
  n->bytes = bytes;
  std::memset(n + 1, 0x3C, bytes - sizeof(Node));
  return n;
}

// Walks the list, checking every node; the count, or -1 at the first damaged node.
long check_list(const Node* n) {
  long count = 0;
  for (; n != nullptr; n = n->next, ++count) {
    if (n->magic != (0x6b6d6d2d6e6f6465ull ^ n->bytes)) return -1;
    const auto* tail = reinterpret_cast<const unsigned char*>(n + 1);
    for (std::size_t j = 0; j < n->bytes - sizeof(Node); j += 61)
      if (tail[j] != 0x3C) return -1;
  }
  return count;
}

std::uint64_t objects_of(const char* module) {
  kmm_usage u{};
  // -1: no module of that name holds anything (a gone one is forgotten once emptied).
  return kmm_module_usage(module, &u) == 0 ? u.objects : 0;
}

// `all_reclaimed`: under protect=reclaim every block left behind is reclaimed once the worker
// is gone; reclaim-unreachable spares any that a stale word still points to (a conservative
// scan), so there they are at most reclaimed.
void worker_in_scope_across_the_unload(const char* module, bool all_reclaimed) {
  ASSERT_EQ(kmm_active(), 1);
  ASSERT_GE(kmm_module_load(module), 2);
  // 1: list built; 2: unloaded, passes run; 3: passes done; 4: worker stopped; 5: free half
  std::atomic<int> phase{0};
  std::atomic<long> bad{0}, built{0}, left_behind{0}, progress{0};
  std::thread worker([&] {
    kmm::ModuleScope scope(module);
    ASSERT_TRUE(scope.entered());
    Node* list = nullptr;
    for (int i = 0; i < 400; ++i) list = new_node(list, sizeof(Node) + 8 + (i * 37) % 3000);
    phase = 1;
    while (phase.load() < 2) {
    }
    // Unloaded: the worker keeps allocating as the module, and walking, while passes run.
    long n = 400;
    while (phase.load() < 3) {
      list = new_node(list, sizeof(Node) + 8 + (n * 53) % 5000);
      progress = ++n;
      if (n % 64 == 0 && check_list(list) < 0) bad++;
    }
    if (check_list(list) != n) bad++;
    built = n;
    phase = 4;
    while (phase.load() < 5) {
    }
    // Free every other node (its own blocks: a block swept under it would be a double free,
    // which stops the process); the rest is left behind as the plug-in's leak.
    long kept = 0;
    Node** link = &list;
    for (long i = 0; *link != nullptr; ++i) {
      Node* cur = *link;
      if (i % 2 == 0) {
        *link = cur->next;
        free(cur);
      } else {
        link = &cur->next;
        ++kept;
      }
    }
    if (check_list(list) != kept) bad++;
    left_behind = kept;
    // The scope is left here, as the thread ends.
  });
  while (phase.load() < 1) {
  }
  ASSERT_EQ(kmm_module_unload(module), 0);
  phase = 2;
  for (int pass = 0; pass < 6 || progress.load() < 2000; ++pass) kmm_collect();
  phase = 3;
  while (phase.load() < 4) {
  }
  kmm_collect();
  EXPECT_EQ(objects_of(module), static_cast<std::uint64_t>(built.load()))
      << "a pass took blocks of a module whose thread still works for it";
  const std::uint64_t reclaimed0 = reclaimed_objects();
  phase = 5;
  worker.join();
  EXPECT_EQ(bad.load(), 0) << "a node changed under the worker";
  EXPECT_GT(built.load(), 400);
  kmm_collect();
  const std::uint64_t left = static_cast<std::uint64_t>(left_behind.load());
  if (all_reclaimed) {
    EXPECT_EQ(reclaimed_objects() - reclaimed0, left);
    EXPECT_EQ(objects_of(module), 0u);
  } else {
    EXPECT_LE(objects_of(module), left);
  }
}

TEST(ProtectorRaces, AWorkerInsideAnUnloadedPluginsScopeKeepsItsMemory) {
  worker_in_scope_across_the_unload("worker-r", true);
}

TEST(ProtectorRacesUnreachable, AWorkerInsideAnUnloadedPluginsScopeKeepsItsMemory) {
  worker_in_scope_across_the_unload("worker-u", false);
}

// A thread that ends inside a plug-in's scope (never leaves it) does not keep the plug-in's
// memory from the collector forever: its scopes' holds go at its exit.
TEST(ProtectorRaces, AThreadEndingInsideAScopeReleasesItsHold) {
  ASSERT_EQ(kmm_active(), 1);
  ASSERT_GE(kmm_module_load("abandoned"), 2);
  std::thread t([] {
    ASSERT_GE(kmm_module_scope_enter("abandoned"), 0);
    for (int i = 0; i < 50; ++i) std::memset(malloc(opaque(std::size_t{24} + i * 40)), 1, 24);
  });
  t.join();
  EXPECT_EQ(objects_of("abandoned"), 50u);
  ASSERT_EQ(kmm_module_unload("abandoned"), 0);
  kmm_collect();
  EXPECT_EQ(objects_of("abandoned"), 0u) << "the ended thread's scope still held the plug-in";
}

// fork() while another thread works inside an unloaded plug-in's scope: that thread is not in
// the child, so its hold is not either (modules_fork_child), and the child's collector takes
// the plug-in's memory; the parent still waits for the thread.
TEST(ProtectorRaces, AForksChildDropsTheHoldsOfThreadsItDoesNotHave) {
  ASSERT_EQ(kmm_active(), 1);
  ASSERT_GE(kmm_module_load("forked"), 2);
  std::atomic<int> phase{0};
  std::thread t([&] {
    kmm::ModuleScope scope("forked");
    ASSERT_TRUE(scope.entered());
    for (int i = 0; i < 30; ++i) std::memset(malloc(opaque(std::size_t{40} + i * 8)), 2, 40);
    phase = 1;
    while (phase.load() < 2) {
    }
  });
  while (phase.load() < 1) {
  }
  ASSERT_EQ(kmm_module_unload("forked"), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    kmm_collect();
    _exit(objects_of("forked") == 0 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child kept the plug-in's memory";
  kmm_collect();
  EXPECT_EQ(objects_of("forked"), 30u) << "the parent's thread still works for it";
  phase = 2;
  t.join();
  kmm_collect();
  EXPECT_EQ(objects_of("forked"), 0u);
}

}  // namespace
