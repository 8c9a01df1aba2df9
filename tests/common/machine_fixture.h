// tests/common/machine_fixture.h — a small machine for the phys/page/slab tests.
// PageMachine: RAM reserved and committed with the mmap platform, PhysMem over it, and a
// BuddyZone over every free frame, as boot does. Machine adds a SlabAllocator and Kmalloc.
// check() runs every layer's check_invariants and returns a gtest AssertionResult.
// (Machine's members are inline: a test that uses only PageMachine needs no kmm_slab.)
#pragma once

#include <gtest/gtest.h>

#include "base/text.h"
#include "page/buddy.h"
#include "pal/pal.h"
#include "phys/phys_mem.h"
#include "slab/kmalloc.h"
#include "slab/slab.h"

namespace kmm::test {

inline constexpr std::uint64_t kWatermarksOff = ~std::uint64_t{0};
inline constexpr std::uint64_t kWatermarksLinux = 0;

struct MachineOptions {
  std::size_t ram = std::size_t{16} << 20;
  std::size_t ram_align = kPageSize;  // the RAM's host alignment (slab.h: owner_slot_of masks when aligned)
  phys_addr_t phys_offset = 0;
  std::uint64_t min_free_kbytes = kWatermarksOff;
  bool zone = true;  // false: PhysMem only
  bool slab = true;
  SlabConfig slab_cfg{};
  bool kmalloc = true;
  KmallocConfig kmalloc_cfg{};
};

class PageMachine {
 public:
  explicit PageMachine(const MachineOptions& o = MachineOptions{}) : opts_(o) {
    Platform& plat = mmap_platform();
    ram_ = plat.reserve(o.ram, o.ram_align);
    if (ram_ == nullptr || !plat.commit(ram_, o.ram)) return;
    if (!phys.init(ram_, o.ram, o.phys_offset)) return;
    if (o.zone) {
      zone.init(&phys, phys.first_free_pfn(), phys.end_pfn(), o.min_free_kbytes);
      boot_free_pages_ = zone.free_pages();
    }
    ok_ = true;
  }
  ~PageMachine() {
    if (ram_ != nullptr) mmap_platform().release(ram_, opts_.ram);
  }
  PageMachine(const PageMachine&) = delete;
  PageMachine& operator=(const PageMachine&) = delete;

  bool ok() const { return ok_; }
  char* ram() const { return static_cast<char*>(ram_); }
  // Free pages right after the zone took its frames (before any cache existed).
  std::uint64_t boot_free_pages() const { return boot_free_pages_; }

  ::testing::AssertionResult check_zone() const {
    StackText<512> why;
    if (!zone.check_invariants(&why)) return ::testing::AssertionFailure() << why.data();
    return ::testing::AssertionSuccess();
  }

  PhysMem phys;
  BuddyZone zone;

 protected:
  MachineOptions opts_;
  bool ok_ = false;

 private:
  void* ram_ = nullptr;
  std::uint64_t boot_free_pages_ = 0;
};

class Machine : public PageMachine {
 public:
  explicit Machine(const MachineOptions& o = MachineOptions{}) : PageMachine(o) {
    if (!ok_ || !o.zone || !o.slab) return;
    slab.init(&zone, o.slab_cfg);
    slab_up_ = true;
    if (o.kmalloc && !km.init(&slab, o.kmalloc_cfg)) ok_ = false;
  }
  ~Machine() {
    if (slab_up_) slab.shutdown();
  }

  // Shuts the slab allocator down now (the destructor then does not).
  void shutdown_slab() {
    if (slab_up_) slab.shutdown();
    slab_up_ = false;
  }

  ::testing::AssertionResult check() {
    StackText<512> why;
    if (!zone.check_invariants(&why)) return ::testing::AssertionFailure() << why.data();
    if (slab_up_ && !slab.check_invariants(&why)) return ::testing::AssertionFailure() << why.data();
    return ::testing::AssertionSuccess();
  }

  SlabAllocator slab;
  Kmalloc km;

 private:
  bool slab_up_ = false;
};

}  // namespace kmm::test
