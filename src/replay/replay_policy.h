// kmm/replay/replay_policy.h — the replay engine's policy interface (internal to replay/replay*).
//
// A policy is an allocator under test behind a small virtual interface: alloc / free /
// realloc with the engine's bookkeeping (bytes asked, block cost) handed back in, and the
// machine-level figures (footprint, free bytes, largest free block, a used/free map).
// KernelPolicy boots a modelled machine (watermarks off, so the whole RAM is the limit; each
// slab cache keeps up to 5 empty slabs, SLUB's MIN_PARTIAL) and
// measures footprint as frames taken from its page allocator since boot. Its RAM is faulted
// in at boot (MADV_POPULATE_WRITE) so that throughput is the allocator's.
// Depends on: kernel/, the C++ standard library.
// Invariants: a Handle of 0 is never a live block; free and realloc are called only with
// a handle the same policy returned and has not freed.
#pragma once

#include <sys/mman.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/bits.h"
#include "base/text.h"
#include "kernel/kernel.h"
#include "replay/replay.h"

namespace kmm::scenario {

using Handle = std::uintptr_t;

class Policy {
 public:
  virtual ~Policy() = default;
  // Non-zero handle, or 0 when the allocation fails. *cost = bytes the block takes.
  virtual Handle alloc(std::uint64_t size, unsigned align_log2, std::uint64_t* cost) = 0;
  virtual void free(Handle h, std::uint64_t size, std::uint64_t cost) = 0;
  // 0 on failure (the old block stays live).
  virtual Handle realloc(Handle h, std::uint64_t old_size, std::uint64_t old_cost, std::uint64_t size,
                         unsigned align_log2, std::uint64_t* cost) = 0;
  virtual std::uint64_t footprint() const = 0;
  virtual std::uint64_t free_total() const = 0;
  virtual std::uint64_t largest_free() const = 0;
  virtual std::uint64_t capacity() const = 0;
  // The largest block the policy gives at all, whatever the RAM: a failure above it is the
  // policy's limit (pow2's 1 MiB), not a shortage of memory (none: the arenas).
  virtual std::uint64_t max_request() const { return ~std::uint64_t{0}; }
  virtual void used_cells(std::uint64_t cell, std::vector<bool>* out) const = 0;
  virtual bool check(std::string* why) = 0;
};

// An aligned request where the policy has no aligned entry point: pad it.
inline std::uint64_t padded(std::uint64_t size, unsigned align_log2) {
  std::uint64_t a = std::uint64_t{1} << align_log2;
  return a > 8 ? size + a - 8 : size;
}

// ---- policies over a booted kernel ----
class KernelPolicy : public Policy {
 public:
  ~KernelPolicy() override {
    if (k_ != nullptr) k_->shutdown();
  }
  bool boot(BootConfig cfg, std::string* err) {
    cfg.min_free_kbytes = ~std::uint64_t{0};  // watermarks off: the whole RAM is the limit
    cfg.min_partial = 5;                      // empty slabs a cache keeps: SLUB's MIN_PARTIAL
    BootError e;
    k_ = Kernel::boot(cfg, &e);
    if (k_ == nullptr) {
      *err = std::string("boot failed: ") + e.what;
      return false;
    }
    base_used_ = k_->zone().managed_pages() - k_->zone().free_pages();
    // Fault the machine's RAM in now, so that the replay's throughput measures the
    // allocator, not the host's first touch of a fresh mapping (a board's RAM is just there).
    // Contents are unchanged; on hosts without MADV_POPULATE_WRITE (Linux < 5.14) nothing
    // happens.
#ifdef MADV_POPULATE_WRITE
    madvise(k_->phys().base(), k_->phys().size(), MADV_POPULATE_WRITE);
#endif
    return true;
  }
  std::uint64_t footprint() const override {
    return (k_->zone().managed_pages() - k_->zone().free_pages() - base_used_) << kPageShift;
  }
  std::uint64_t free_total() const override {
    return k_->zone().free_pages() << kPageShift;
  }
  std::uint64_t largest_free() const override {
    return k_->zone().largest_free_block() << kPageShift;
  }
  std::uint64_t capacity() const override {
    return (k_->zone().managed_pages() - base_used_) << kPageShift;
  }
  // A kmalloc policy's cap (the kernel's kmalloc: pow2 1 MiB, the others 4 MiB).
  std::uint64_t max_request() const override {
    return k_->kmalloc_layer().max_size();
  }
  void used_cells(std::uint64_t cell, std::vector<bool>* out) const override {
    const PhysMem& ph = k_->phys();
    std::uint64_t ram = std::uint64_t{ph.end_pfn() - ph.base_pfn()} << kPageShift;
    out->assign((ram + cell - 1) / cell, false);
    for (pfn_t pfn = ph.base_pfn(); pfn < ph.end_pfn(); ++pfn) {
      if (!k_->zone().frame_is_free(pfn)) (*out)[(std::uint64_t{pfn - ph.base_pfn()} << kPageShift) / cell] = true;
    }
  }
  const char* zone_name() const {
    return k_->zone().name();
  }
  bool check(std::string* why) override {
    StackText<512> sink;
    bool ok = k_->check_invariants(&sink);
    if (!ok) *why = sink.data();
    return ok;
  }

 protected:
  Kernel* k_ = nullptr;
  std::uint64_t base_used_ = 0;
};

#if KMM_HAVE_NOMMU
// simple, smalloc, heap (replay/replay_nommu.cpp).
std::unique_ptr<Policy> make_nommu_policy(const std::string& name, const ReplayConfig& cfg, const Trace& t,
                                          std::string* err);
#endif

}  // namespace kmm::scenario
