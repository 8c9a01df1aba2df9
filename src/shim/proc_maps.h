// kmm/shim/proc_maps.h — this process's mappings as the root scan of reclaim-unreachable needs
// them (roots.cpp): a /proc file read whole with system calls only, /proc/self/maps parsed
// into address ranges that say which ones the scan may read, and the two checks the snapshot
// makes on the process it runs in (its copy holds every mapping, with its contents; the
// thread that would fork runs under no seccomp filter).
//
// Which mappings are roots (kMapScan): readable anonymous memory whatever else its permissions
// (stacks, heaps, anonymous mappings, read-only or executable ones too: a page of pointers a
// program sealed with mprotect, a JIT's code), readable and writable private file mappings
// (data and bss), and shared memory that only programs share (memfd, SysV, /dev/shm,
// /dev/zero, hugetlbfs's anonymous pages), sealed read-only or not. Never: device files other
// than /dev/zero (reading may have effects), file mappings shared with other processes,
// private file mappings that are not writable (a file's contents: text, rodata, RELRO),
// memory with no read access (PROT_NONE), [vvar] and [vsyscall].
//
// Depends on: base/config.h, Linux system calls (read_proc_text). Invariants: nothing here
// allocates, takes a lock or keeps state: it runs while every other thread is parked and in
// the snapshot's copy, with buffers the caller owns.
#pragma once

#include "base/config.h"

namespace kmm::shim {

// MapRange::flags.
constexpr std::uint32_t kMapScan = 1;      // the scan reads it
constexpr std::uint32_t kMapNoAccess = 2;  // ---p: a guard (below a thread's stack, say)
constexpr std::uint32_t kMapStackVma = 4;  // [stack]: the main thread's
constexpr std::uint32_t kMapShared = 8;    // a shared mapping (the snapshot reads these at the stop)

struct MapRange {
  std::uintptr_t lo, hi;
  std::uint32_t flags;
};

// The /proc file at path, whole, into buf; its length, or -1 when it cannot be read or does
// not fit in cap bytes.
long read_proc_text(const char* path, char* buf, std::size_t cap);

// /proc/PID/maps text into out[0 .. *count), in the file's (address) order; false when it
// holds more than cap mappings.
bool parse_maps(const char* text, std::size_t len, MapRange* out, unsigned cap, unsigned* count);

// The range of maps[0 .. n) (sorted, disjoint) that holds a, or null.
const MapRange* map_containing(const MapRange* maps, unsigned n, std::uintptr_t a);

// Every scanned range of before[0 .. nb) lies in scanned ranges of after[0 .. na) (which may
// split or join it): a fork's copy holds each mapping the scan would read in the process.
bool maps_cover(const MapRange* before, unsigned nb, const MapRange* after, unsigned na);

// /proc/PID/smaps text: some writable mapping is wiped in a fork's child (VmFlags "wf":
// MADV_WIPEONFORK), so a copy would read it empty.
bool smaps_wipes_writable(const char* text, std::size_t len);

// /proc/PID/status (or thread-self) text: its Seccomp line names a mode other than 0. False
// with no such line (a kernel without seccomp).
bool status_seccomp_filtered(const char* text, std::size_t len);

}  // namespace kmm::shim
