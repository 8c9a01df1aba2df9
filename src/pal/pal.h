// kmm/pal/pal.h — the platform layer: where kmm's "physical" memory comes from.
//
// Contract (every backend keeps it):
//   reserve(size, align)  returns `size` bytes of address space aligned to `align` (a power of
//                         two, at least the host page size), or null. Reserved memory may not
//                         be touched until committed.
//   commit(p, size)       makes [p, p+size) readable and writable. Memory committed for the
//                         first time reads as zero on an OS backend; on a static buffer it holds
//                         whatever the buffer held (callers never rely on zero).
//   decommit(p, size)     gives the frames back (the OS may reclaim them); the range stays
//                         reserved, its contents are lost, and it must be committed again.
//   protect(p, size, prot) changes access (none / read / read-write); false if unsupported.
//   purge(p, size)        gives the frames of a committed range back while the range stays
//                         committed: the next touch finds zero-filled frames (the OS faults
//                         them in again). Contents are lost. False where the platform cannot
//                         (a static buffer, a file whose frames are its contents): the caller
//                         then keeps the range as it was. Linux's free page reporting uses
//                         it (page/buddy.h), malloc_trim and the purge delay of the preload.
//   release(p, size)      returns a whole reservation.
// All calls are thread-safe, never allocate through the C library, and report failure by
// return value (never abort): an out-of-memory host is a null, not a crash.
// Ranges passed to commit/decommit/protect are host-page aligned and inside a reservation.
//
// Depends on: base/config.h.
#pragma once

#include "base/config.h"

namespace kmm {

enum class Prot : std::uint8_t { kNone, kRead, kReadWrite };

class Platform {
 public:
  virtual void* reserve(std::size_t size, std::size_t align) = 0;
  virtual bool commit(void* p, std::size_t size) = 0;
  virtual bool decommit(void* p, std::size_t size) = 0;
  virtual bool protect(void* p, std::size_t size, Prot prot) = 0;
  virtual bool purge(void* p, std::size_t size) = 0;
  virtual void release(void* p, std::size_t size) = 0;
  virtual const char* name() const = 0;

 protected:
  ~Platform() = default;
};

#if !KMM_FREESTANDING
// Anonymous private mappings: reserve = PROT_NONE|MAP_NORESERVE, commit = mprotect RW,
// decommit = madvise(MADV_DONTNEED) + PROT_NONE, purge = madvise(MADV_DONTNEED) (RSS falls at
// once; MADV_FREE would leave it up until the host is short of memory).
class MmapPlatform final : public Platform {
 public:
  void* reserve(std::size_t size, std::size_t align) override;
  bool commit(void* p, std::size_t size) override;
  bool decommit(void* p, std::size_t size) override;
  bool protect(void* p, std::size_t size, Prot prot) override;
  bool purge(void* p, std::size_t size) override;
  void release(void* p, std::size_t size) override;
  const char* name() const override { return "mmap"; }
};

// The process-wide instance (a static object: no allocation).
Platform& mmap_platform();
#endif

// The asymmetric barrier (Linux's membarrier(2), MEMBARRIER_CMD_PRIVATE_EXPEDITED): when
// process_barrier() returns, every other thread of the process has executed a full memory
// barrier since it was called, so a rare side can order itself against a frequent side that
// uses only compiler barriers. register_process_barrier() is called once before the first
// use; both return false where the platform has no such call (then callers use atomics).
bool register_process_barrier();
bool process_barrier();

// A caller-provided buffer and nothing else: bare metal, or tests with no OS. reserve() carves
// aligned pieces from the front of the buffer; release() of the most recent piece gives it
// back; decommit() and protect() have nothing to do (protect returns false unless kReadWrite).
class StaticPlatform final : public Platform {
 public:
  StaticPlatform(void* buffer, std::size_t size);
  void* reserve(std::size_t size, std::size_t align) override;
  bool commit(void* p, std::size_t size) override;
  bool decommit(void* p, std::size_t size) override;
  bool protect(void* p, std::size_t size, Prot prot) override;
  bool purge(void*, std::size_t) override { return false; }  // no OS to give frames to
  void release(void* p, std::size_t size) override;
  const char* name() const override { return "static"; }
  std::size_t used() const { return used_; }

 private:
  bool inside(const void* p, std::size_t size) const;
  char* buffer_;
  std::size_t size_;
  std::size_t used_ = 0;
};

}  // namespace kmm
