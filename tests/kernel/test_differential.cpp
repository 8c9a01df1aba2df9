// Differential test (issue 10): a plain reference model built from standard containers and
// the engine run the same random operation sequences — insmod, rmmod, kmalloc by owner,
// kfree, transfer, idle with collector passes — and their accounting must agree exactly after
// every step: objects and bytes per owner, leaks found, objects and bytes reclaimed.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "base/text.h"
#include "kernel/kernel.h"

namespace kmm {
namespace {

// The reference: what a block costs, by the rules written out longhand.
std::uint64_t reference_bytes(std::size_t size) {
  static const std::size_t classes[] = {8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192};
  for (std::size_t c : classes)
    if (size <= c) return c;
  std::uint64_t pages = 1;
  while (pages * 4096 < size) pages *= 2;  // pow2 policy
  return pages * 4096;
}

struct RefBlock {
  int module;  // -1: kernel
  std::uint64_t bytes;
};

struct RefModule {
  std::string name;
  bool live = false;
  int instance = 0;  // bumps at each insmod: a reload is a new owner
};

struct Reference {
  std::map<void*, RefBlock> blocks;
  std::array<RefModule, 4> modules;
  std::uint64_t reclaimed_objects = 0, reclaimed_bytes = 0;
  std::uint64_t leak_objects = 0, leak_bytes = 0;
};

class Differential : public ::testing::TestWithParam<std::tuple<ProtectorMode, unsigned>> {};

TEST_P(Differential, AccountingAgreesAfterEveryStep) {
  auto [mode, seed] = GetParam();
  BootConfig cfg;
  cfg.ram_bytes = 64u << 20;
  cfg.protector = mode;
  cfg.gc_delay_ns = 1'000'000'000ull;
  Kernel* k = Kernel::boot(cfg, nullptr);
  ASSERT_NE(k, nullptr);
  Reference ref;
  // Engine owner id of each reference module's current instance (and of gone instances).
  std::map<std::pair<int, int>, owner_t> owner_of_instance;
  for (int m = 0; m < 4; ++m) ref.modules[m].name = "mod" + std::to_string(m);
  std::mt19937 rng(seed);
  StackText<512> why;
  for (int step = 0; step < 4000; ++step) {
    auto op = static_cast<unsigned>(rng() % 100);
    int m = static_cast<int>(rng() % 4);
    RefModule& rm = ref.modules[m];
    if (op < 5) {
      owner_t o;
      ModuleError e = k->insmod(rm.name.c_str(), 4096, &o);
      ASSERT_EQ(e == ModuleError::kOk, !rm.live) << step;
      if (!rm.live) {
        rm.live = true;
        ++rm.instance;
        owner_of_instance[{m, rm.instance}] = o;
      }
    } else if (op < 9) {
      ModuleError e = k->rmmod(rm.name.c_str());
      ASSERT_EQ(e == ModuleError::kOk, rm.live) << step;
      rm.live = false;
    } else if (op < 55) {
      std::size_t size = rng() % 4 == 0 ? 1 + rng() % 70000 : 1 + rng() % 600;
      bool by_module = rm.live && rng() % 3 != 0;
      owner_t o = by_module ? owner_of_instance[{m, rm.instance}] : kOwnerKernel;
      void* p = k->kmalloc(size, GFP_KERNEL, o);
      ASSERT_NE(p, nullptr) << step;
      ref.blocks[p] = RefBlock{by_module ? m * 1000 + rm.instance : -1, reference_bytes(size)};
    } else if (op < 90) {
      if (ref.blocks.empty()) continue;
      auto it = ref.blocks.begin();
      std::advance(it, static_cast<long>(rng() % ref.blocks.size()));
      ASSERT_TRUE(k->kfree(it->first)) << step;
      ref.blocks.erase(it);
    } else if (op < 93) {
      if (ref.blocks.empty() || !rm.live) continue;
      auto it = ref.blocks.begin();
      std::advance(it, static_cast<long>(rng() % ref.blocks.size()));
      ASSERT_TRUE(k->transfer(it->first, owner_of_instance[{m, rm.instance}]));
      it->second.module = m * 1000 + rm.instance;
    } else {
      k->idle(1'500'000'000ull);
      // The reference collector: blocks of gone instances are leaks; reclaim frees them.
      std::uint64_t lo = 0, lb = 0;
      for (auto it = ref.blocks.begin(); it != ref.blocks.end();) {
        int id = it->second.module;
        bool gone = id >= 0 && !(ref.modules[id / 1000].live && ref.modules[id / 1000].instance == id % 1000);
        if (gone && mode != ProtectorMode::kOff) {
          if (mode == ProtectorMode::kReclaim) {
            ref.reclaimed_objects++;
            ref.reclaimed_bytes += it->second.bytes;
            it = ref.blocks.erase(it);
            continue;
          }
          lo++;
          lb += it->second.bytes;
        }
        ++it;
      }
      if (mode == ProtectorMode::kReport) {
        ref.leak_objects = lo;
        ref.leak_bytes = lb;
      }
    }
    // Compare per-owner accounting.
    std::vector<OwnerTally> t(kMaxOwners);
    k->usage(t.data());
    std::map<owner_t, OwnerTally> want;
    for (auto& [p, b] : ref.blocks) {
      owner_t o = b.module < 0 ? kOwnerKernel : owner_of_instance[{b.module / 1000, b.module % 1000}];
      want[o].objects++;
      want[o].bytes += b.bytes;
    }
    // The kernel also owns vmalloc's and the machine's own records: compare modules only,
    // and the kernel's kmalloc blocks through the reference's count.
    for (unsigned o = kOwnerFirstModule; o < kOwnerUntracked; ++o) {
      ASSERT_EQ(t[o].objects, want[static_cast<owner_t>(o)].objects) << "owner " << o << " step " << step;
      ASSERT_EQ(t[o].bytes, want[static_cast<owner_t>(o)].bytes) << "owner " << o << " step " << step;
    }
    ASSERT_EQ(t[kOwnerKernel].objects, want[kOwnerKernel].objects) << "kernel, step " << step;
    ASSERT_EQ(k->collector().stats().reclaimed_objects, ref.reclaimed_objects) << step;
    ASSERT_EQ(k->collector().stats().reclaimed_bytes, ref.reclaimed_bytes) << step;
    if (mode == ProtectorMode::kReport) {
      ASSERT_EQ(k->collector().stats().leak_objects, ref.leak_objects) << step;
      ASSERT_EQ(k->collector().stats().leak_bytes, ref.leak_bytes) << step;
    }
    if (step % 200 == 0) {
      ASSERT_TRUE(k->check_invariants(&why)) << why.data();
    }
  }
  for (auto& [p, b] : ref.blocks) k->kfree(p);
  ASSERT_TRUE(k->check_invariants(&why)) << why.data();
  k->shutdown();
}

INSTANTIATE_TEST_SUITE_P(Modes, Differential,
                         ::testing::Combine(::testing::Values(ProtectorMode::kOff, ProtectorMode::kReport,
                                                              ProtectorMode::kReclaim),
                                            ::testing::Values(1u, 2u, 3u)));

}  // namespace
}  // namespace kmm
