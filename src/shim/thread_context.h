// kmm/shim/thread_context.h — what a thread parked by the world stop holds outside its stack:
// its registers, copied out of the signal frame the kernel pushed, and where the interrupted
// code's own stack begins (roots.cpp's stop handler uses both).
//
// The root scan reads a parked thread's registers and its stack from that point up, not the
// signal frame itself: the frame has gaps the kernel never writes (alignment padding above the
// vector state, reserved fields), and words left there by earlier calls were read as roots —
// the shim.roots flake kept a plug-in's 6 MiB leak through 98 passes through one such word,
// 0xc0 below the interrupted stack pointer. Only the state the interrupted code really has is
// copied: the general registers, the x87/MMX and SSE registers, and each extended component
// (AVX, AVX-512, ...) the frame's XSAVE header marks in use, at its CPUID offsets.
//
// Depends on: the C library's ucontext and, on x86-64, CPUID (cpuid.h). Nothing here
// allocates; capture_interrupted_context is async-signal-safe.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kmm::shim {

// Room for the general registers and x86-64's vector state up to AVX-512 (2.5 KiB of it).
inline constexpr std::size_t kThreadContextBytes = 3072;

// Once, before any stop (roots_install): this CPU's layout of the extended vector state.
void thread_context_init();

// In the stop handler, with its ucontext: the interrupted code's registers into out (at
// most cap bytes; cap holds at least mcontext_t), and *stack_from, the lowest address of its
// stack (its stack pointer less the ABI's red zone). Returns the bytes written. Where the
// frame is not understood here (another architecture, vector state that does not fit) out
// gets the start of mcontext_t (the general registers) and *stack_from is 0: the caller then
// keeps the whole signal frame as the thread's stack, vector state included, as before.
std::size_t capture_interrupted_context(const void* ucontext, unsigned char* out, std::size_t cap,
                                        std::uintptr_t* stack_from);

}  // namespace kmm::shim
