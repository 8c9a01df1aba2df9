// kmm/shim/thread_context.cpp — a parked thread's registers out of its signal frame (see
// thread_context.h). x86-64 only; elsewhere, and for a frame not understood, the start of
// mcontext_t as before.
//
// The x86-64 frame (arch/x86/kernel/signal.c): below the interrupted stack pointer the red
// zone (128 bytes, left alone), then the vector state, 64-byte aligned, in XSAVE's standard
// format: a 512-byte legacy region (x87 control and ST0-7/MM0-7 at 0..159, XMM0-15 at
// 160..415, 416..463 reserved, 464..511 the kernel's _fpx_sw_bytes), the 64-byte XSAVE header
// at 512 (XSTATE_BV: which components are not in their initial, all-zero state), and the
// extended components at the offsets CPUID leaf 0xD gives; then the ucontext and siginfo.
// uc_mcontext.fpregs points at the vector state (null when the thread has none).
#include "shim/thread_context.h"

#include <signal.h>
#include <ucontext.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace kmm::shim {
namespace {

#if defined(__x86_64__)
constexpr unsigned kMaxComponents = 32;
constexpr std::size_t kRedZone = 128;
constexpr std::size_t kLegacyXmm = 160;    // x87 control and ST/MM0-7 before it, XMM0-15 from it
constexpr std::size_t kLegacyUsed = 416;   // the end of XMM15
constexpr std::size_t kXsaveHeader = 512;  // XSTATE_BV, then XCOMP_BV and reserved

struct Component {
  std::uint32_t offset, size;  // 0, 0: not a user component of this CPU
};
Component g_components[kMaxComponents];
bool g_layout_known = false;
#endif

}  // namespace

void thread_context_init() {
#if defined(__x86_64__)
  unsigned eax, ebx, ecx, edx;
  if (__get_cpuid_count(0xD, 0, &eax, &ebx, &ecx, &edx) == 0) return;  // no XSAVE: legacy only
  std::uint64_t user_bits = eax | (std::uint64_t{edx} << 32);          // XCR0's supported user bits
  for (unsigned i = 2; i < kMaxComponents; ++i) {
    if ((user_bits >> i & 1) == 0) continue;
    if (__get_cpuid_count(0xD, i, &eax, &ebx, &ecx, &edx) == 0) continue;
    if ((ecx & 1) != 0) continue;  // a supervisor component: never in a user frame
    g_components[i] = Component{ebx, eax};
  }
  g_layout_known = true;
#endif
}

namespace {
// The frame as the stop read it before this file: the start of mcontext_t, and no stack
// pointer (the caller keeps the whole frame).
std::size_t capture_mcontext(const ucontext_t* uc, unsigned char* out, std::size_t cap, std::uintptr_t* stack_from) {
  std::size_t n = sizeof uc->uc_mcontext < cap ? sizeof uc->uc_mcontext : cap;
  __builtin_memcpy(out, &uc->uc_mcontext, n);
  *stack_from = 0;
  return n;
}

#if defined(__x86_64__)
// The x86-64 capture; 0 when the frame is not understood (out may then hold a part of it).
std::size_t capture_x86_64(const ucontext_t* uc, unsigned char* out, std::size_t cap, std::uintptr_t* stack_from) {
  std::size_t n = 0;
  auto put = [&](const void* from, std::size_t bytes) {
    if (n + bytes > cap) return false;
    __builtin_memcpy(out + n, from, bytes);
    n += bytes;
    return true;
  };
  if (!put(uc->uc_mcontext.gregs, sizeof uc->uc_mcontext.gregs)) return 0;
  if (const auto* fp = reinterpret_cast<const unsigned char*>(uc->uc_mcontext.fpregs)) {
    _fpx_sw_bytes sw;
    __builtin_memcpy(&sw, fp + 464, sizeof sw);
    if (sw.magic1 != FP_XSTATE_MAGIC1) {
      if (!put(fp, kLegacyUsed)) return 0;  // an FXSAVE frame: the legacy region alone
    } else {
      // An XSAVE frame: each component the header marks in use (one in its initial state is
      // all zero, whatever bytes lie in its slot): x87/MMX (bit 0), SSE (bit 1), then the
      // extended ones.
      if (!g_layout_known) return 0;
      std::uint64_t in_use;
      __builtin_memcpy(&in_use, fp + kXsaveHeader, sizeof in_use);
      if ((in_use & 1) != 0 && !put(fp, kLegacyXmm)) return 0;
      if ((in_use & 2) != 0 && !put(fp + kLegacyXmm, kLegacyUsed - kLegacyXmm)) return 0;
      for (unsigned i = 2; i < kMaxComponents; ++i) {
        if ((in_use >> i & 1) == 0) continue;
        const Component& c = g_components[i];
        // A component this CPU does not describe, or beyond the frame's own size: not understood.
        if (c.size == 0 || std::uint64_t{c.offset} + c.size > sw.xstate_size) return 0;
        if (!put(fp + c.offset, c.size)) return 0;
      }
    }
  }
  *stack_from = static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]) - kRedZone;
  return n;
}
#endif
}  // namespace

std::size_t capture_interrupted_context(const void* ucontext, unsigned char* out, std::size_t cap,
                                        std::uintptr_t* stack_from) {
  const auto* uc = static_cast<const ucontext_t*>(ucontext);
#if defined(__x86_64__)
  if (std::size_t n = capture_x86_64(uc, out, cap, stack_from)) return n;
#endif
  return capture_mcontext(uc, out, cap, stack_from);
}

}  // namespace kmm::shim
