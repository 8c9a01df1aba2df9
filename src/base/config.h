// kmm/base/config.h — compile-time configuration shared by every layer.
// Depends on: nothing. Invariant: PAGE_SIZE == 1 << PAGE_SHIFT == 4096 (the seed's frames).
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__STDC_HOSTED__) && __STDC_HOSTED__ == 0
#define KMM_FREESTANDING 1
#else
#define KMM_FREESTANDING 0
#endif

#ifndef KMM_HAVE_THREADS
#if KMM_FREESTANDING
#define KMM_HAVE_THREADS 0
#else
#define KMM_HAVE_THREADS 1
#endif
#endif

// Thread-local storage where there are threads; a plain global where there are none (bare
// metal runs one thread and has no TLS runtime: no __aeabi_read_tp, no TLS segment).
#if KMM_HAVE_THREADS
#define KMM_THREAD_LOCAL __attribute__((tls_model("initial-exec"))) thread_local
#else
#define KMM_THREAD_LOCAL
#endif

namespace kmm {

inline constexpr unsigned kPageShift = 12;
inline constexpr std::size_t kPageSize = std::size_t{1} << kPageShift;
inline constexpr std::size_t kPageMask = ~(kPageSize - 1);

// Physical addresses are 64-bit even on 32-bit targets (LPAE-style), so a model of a machine
// with RAM above 4 GiB runs on a 32-bit host. Page frame numbers fit in 32 bits (16 TiB).
using phys_addr_t = std::uint64_t;
using pfn_t = std::uint32_t;
inline constexpr pfn_t kNoPfn = 0xFFFFFFFFu;

// Owner of an allocation: 0 means "free" (not allocated), kOwnerKernel the kernel itself,
// 2..254 a module slot (see protect/), kOwnerUntracked a block whose owner could not get a
// slot (never reclaimed). One byte per object: the protector's whole per-object cost.
using owner_t = std::uint8_t;
inline constexpr owner_t kOwnerFree = 0;
inline constexpr owner_t kOwnerKernel = 1;
inline constexpr owner_t kOwnerFirstModule = 2;
inline constexpr owner_t kOwnerUntracked = 255;
inline constexpr unsigned kMaxOwners = 256;

}  // namespace kmm
