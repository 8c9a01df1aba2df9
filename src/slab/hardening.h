// kmm/slab/hardening.h — the allocator's hardening options, in one place.
//
// Every option is off by default and switched on at boot (KMM_OPTIONS for the preload shim,
// `boot` keys in scenarios, BootConfig::hardening in code). What each one buys and costs
// (docs/RELIABILITY.md has the measured costs, bench/bench_kmalloc.cpp measures them):
//
//   freelist_hardened  SLUB's CONFIG_SLAB_FREELIST_HARDENED: a free slot's link to the next
//                      free slot is stored XORed with a per-cache random key and the slot's
//                      own address, so a use-after-free write cannot steer the allocator to
//                      an address of the attacker's choice — the decoded link is checked to
//                      lie inside its slab, and garbage fails that check; and the slot it
//                      names must be free (its owner byte), so a link forged by one who read
//                      a freed slot's link, and so learned the key, still reaches only free
//                      slots of its own slab. Costs an XOR and a byte swap on every pop and
//                      push of a free list, and a load of the owner byte the pop writes.
//   redzone            slub_debug=Z: each slot grows by a red zone after the object, filled
//                      with 0xbb while the slot is free and 0xcc while it is allocated, and
//                      for kmalloc caches also the bytes between the size asked for and the
//                      class size (SLUB's kmalloc redzone); a free (or an allocation of a
//                      free slot) that finds the pattern changed reports the overflow.
//   poison             slub_debug=P: a freed object is filled with 0x6b and 0xa5 in its last
//                      byte; the allocation that takes it back checks the pattern and
//                      reports any write made after the free. An allocated object that was
//                      not zeroed reads 0x6b, which makes uses of uninitialised memory show.
//   quarantine         (ASan's and Scudo's): freed slab objects wait in a FIFO of at most
//                      this many bytes before a slot can be reused, so a dangling pointer
//                      does not alias a new object at once (and, with poison, its writes are
//                      caught when the object leaves quarantine). The bound is on the objects'
//                      bytes: each one also keeps its slab from going back to the page
//                      allocator, at most a quarter of ram waits, and an allocation that finds
//                      no memory empties the quarantine first.
//   guard_pages        each page-level block (large kmalloc) gets one more frame after it,
//                      made inaccessible through the platform (mprotect), so a linear overrun
//                      faults at its first byte past the block's pages; where the platform
//                      cannot protect (a static buffer, or the host refuses more mappings)
//                      the guard frame and the slack after the size asked for are filled
//                      with a pattern that the free checks. The preload shim applies the
//                      same to its own mappings of blocks over 4 MiB (shim/huge.cpp).
//                      Freed runs wait, guard still protected, in a small cache for the
//                      next run of their size, and realloc resizes a run within its frames
//                      in place (slab/kmalloc.h): mprotect is what this option costs.
// redzone, poison and quarantine make a cache a *debug cache*: no thread owns its slabs
// (no tc_slot), so every allocation and free of it goes through the checks under the cache
// lock (as SLUB's debug caches skip the per-cpu fast path). The fast path of every other
// cache is unchanged: options that are off cost nothing.
//
// Depends on: base/config.h.
#pragma once

#include "base/config.h"

namespace kmm {

struct HardeningConfig {
  bool freelist_hardened = false;
  bool redzone = false;
  bool poison = false;
  bool guard_pages = false;
  std::uint64_t quarantine_bytes = 0;  // 0: no quarantine

  bool debug_caches() const { return redzone || poison || quarantine_bytes != 0; }
  bool any() const { return freelist_hardened || debug_caches() || guard_pages; }
};

// SLUB's patterns (include/linux/poison.h).
inline constexpr std::uint8_t kPoisonFree = 0x6b;   // POISON_FREE
inline constexpr std::uint8_t kPoisonEnd = 0xa5;    // POISON_END
inline constexpr std::uint8_t kRedInactive = 0xbb;  // SLUB_RED_INACTIVE
inline constexpr std::uint8_t kRedActive = 0xcc;    // SLUB_RED_ACTIVE
inline constexpr std::uint8_t kGuardFill = 0xfd;    // pattern guard (no MMU protection)
inline constexpr unsigned kRedzoneMin = 8;          // bytes of red zone after each object
inline constexpr std::uint64_t kMaxQuarantineBytes = std::uint64_t{1} << 30;

// First byte in [p, p + n) that is not `pattern`, or n: the check of every poison, red-zone
// and guard pattern (slab.cpp, kmalloc.cpp, the shim's huge blocks).
std::size_t first_not(const char* p, std::size_t n, std::uint8_t pattern);

// Sets one option from its key and value (the shared syntax of KMM_OPTIONS and scenario
// `boot` lines): freelist_hardened, redzone, poison, guard_pages take on/off (1/0, yes/no,
// true/false); quarantine takes a size (0, 256K, 4M). Returns false when the key is not a
// hardening option (*bad_value untouched) or the value is malformed (*bad_value set true).
bool set_hardening_option(HardeningConfig* h, const char* key, std::size_t key_len, const char* value,
                          std::size_t value_len, bool* bad_value);

// Writes the options that are on as "key=value" words separated by spaces into out (cap
// bytes, always terminated); "none" when all are off. Returns the length written.
std::size_t describe_hardening(const HardeningConfig& h, char* out, std::size_t cap);

}  // namespace kmm
