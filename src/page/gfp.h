// kmm/page/gfp.h — allocation flags, a small subset of Linux's gfp_t.
// Depends on: nothing.
#pragma once

#include <cstdint>

namespace kmm {

using gfp_t = std::uint32_t;
inline constexpr gfp_t __GFP_ZERO = 1u << 0;     // zero the memory
inline constexpr gfp_t __GFP_HIGH = 1u << 1;     // may dip below the min watermark (atomic)
inline constexpr gfp_t __GFP_NOWARN = 1u << 2;   // no log line on failure
inline constexpr gfp_t __GFP_NOWMARK = 1u << 3;  // ignore watermarks (boot, internal use)
// The caller cannot cope with a failure: fault injection (base/fault_inject.h) never fails
// it, as Linux's should_fail_alloc_page and should_failslab skip __GFP_NOFAIL. (There is no
// reclaim to retry with: a genuinely empty zone still returns null.)
inline constexpr gfp_t __GFP_NOFAIL = 1u << 4;
inline constexpr gfp_t GFP_KERNEL = 0;
inline constexpr gfp_t GFP_ATOMIC = __GFP_HIGH;

}  // namespace kmm
