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
    std::vector<std::vector<void*>> rescued(kThreads);
    for (auto& v : rescued) v.reserve(kPerThread);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        while (go.load() == 0) {
        }
        for (void* p : blocks[t])
          if (kmm_transfer(p, nullptr) == 0) rescued[t].push_back(p);
        done.fetch_add(1);
      });
    }
    go = 1;
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

}  // namespace
