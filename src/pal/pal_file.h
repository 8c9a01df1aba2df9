// kmm/pal/pal_file.h — the file backend: physical memory is a file mapped shared, standing in
// for non-volatile RAM (on a DAX file system it would be the real thing).
//
// Layout of a heap file:
//   [0, 4096)          the header page: two superblock slots, at 0 and 2048 (A/B). A
//                      superblock update writes the slot that is not current with the next
//                      sequence number and flushes it, so a torn write leaves the other slot
//                      whole; open() takes the valid slot with the highest sequence.
//   [4096, 4096+ram)   RAM: mem_map, boot memory (the Kernel object), then the frames.
// RAM is always mapped at the same host address: chosen by the OS when the file is formatted
// (aligned like an anonymous reservation), recorded in the superblock, and asked for with
// MAP_FIXED_NOREPLACE at every later attach, so every pointer stored inside RAM stays valid.
// If that address is taken in this process, attach fails with a clear error (never moves).
//
// Safety rules: flock(LOCK_EX|LOCK_NB) while attached, so a second live process is refused;
// nothing is written to a file before its superblock has been validated (or the file was
// empty, or holds kmm's own "formatting" superblock); a file that is not a kmm heap, of
// another version or layout, truncated, or with both superblock slots torn is refused with
// a message that says which.
//
// FilePlatform objects come from a static pool (heap_file_acquire / heap_file_release: eight
// heap files open in a process at most), so that booting a machine over a file allocates
// nothing; the persistence layer takes one to boot (src/persist/heap_file.cpp) and the kernel
// gives it back when the machine detaches (Kernel::shutdown).
//
// Depends on: pal/pal.h, base/spinlock.h, POSIX (open, flock, mmap, msync). Never allocates.
#pragma once

#include "pal/pal.h"

#if !KMM_FREESTANDING
namespace kmm {

inline constexpr char kHeapMagic[8] = {'K', 'M', 'M', 'H', 'E', 'A', 'P', '1'};
// 2: thread-owned slabs (slab state words); 3: KmemCache's hot line first; 4: a lazy free-list
// link holds the frontier less one slot (slab.h, lazy_link); 5: the buddy zone's lock, free
// page count and free lists share their cache lines (page/buddy.h); 6: a lazy link names the
// unthreaded slots below it, an owned slab being threaded from its top down (slab.h); 7: a
// slab's owner vector is shifted by its colour (slab.h, owner colouring); 8: Kmalloc's class
// tables keep own_offset, 16 bits (the fields after them moved); 9: the fast frees' countdown
// left the ThreadCache for the thread's TLS (the fields after it moved).
inline constexpr std::uint32_t kHeapVersion = 9;
inline constexpr std::size_t kHeapHeaderBytes = 4096;
inline constexpr std::size_t kSuperblockSlotBytes = 2048;

enum class HeapState : std::uint32_t { kFormatting = 1, kReady = 2 };

// One superblock slot. Fixed-width fields only: the same bytes on every host of one pointer
// size (ptr_bytes refuses the others: the Kernel object holds host pointers).
struct Superblock {
  char magic[8];
  std::uint32_t version;
  std::uint32_t header_bytes;
  std::uint64_t seq;  // slot generation; the highest valid one is current
  std::uint64_t ram_bytes;
  std::uint64_t map_addr;  // host address of RAM (fixed for the file's life)
  std::uint64_t phys_offset;
  std::uint64_t kernel_offset;  // offset of the Kernel object inside RAM
  std::uint64_t layout;         // hash of the build's persistent layout (struct sizes)
  std::uint32_t state;          // HeapState
  std::uint32_t ptr_bytes;
  std::uint64_t boot_count;  // attaches since format
  std::uint64_t clean;       // 1 after a clean detach, 0 while attached (or crashed)
  std::uint64_t created_ns;  // wall clock at format (for fsck's report)
  std::uint64_t reserved[8];
  std::uint64_t checksum;  // FNV-1a 64 of every byte before this field
};

// FNV-1a 64 (no library).
std::uint64_t fnv1a64(const void* p, std::size_t n, std::uint64_t h = 0xcbf29ce484222325ull);
std::uint64_t superblock_checksum(const Superblock& sb);
bool superblock_valid(const Superblock& sb);

enum class FileOpenResult : std::uint8_t {
  kError,   // see error()
  kFormat,  // new, empty or unfinished: reserve() will create the mapping; call publish()
  kAttach,  // a kmm heap: mapped at its address; the Kernel is at ram() + kernel_offset
};

class FilePlatform final : public Platform {
 public:
  // Opens (creating if missing) and locks path. ram_bytes sizes a new file. read_only:
  // fsck — shared lock; nothing ever reaches the file. A file someone else can change is
  // copied into anonymous memory at the heap's address (their later writes, or a truncation,
  // do not reach the check); the user's own is mapped copy-on-write.
  FileOpenResult open(const char* path, std::uint64_t ram_bytes, bool read_only = false);
  const char* error() const { return error_; }
  // Other users may read the file (its mode has g+r or o+r): attach says so (it holds the
  // program's data and host addresses); only their writes are refused.
  bool readable_by_others() const { return readable_by_others_; }

  // Platform: reserve() hands out the file's RAM once (format), commit/decommit are no-ops
  // over a shared file mapping, release() detaches (see close()).
  void* reserve(std::size_t size, std::size_t align) override;
  bool commit(void* p, std::size_t size) override;
  bool decommit(void* p, std::size_t size) override;
  bool protect(void* p, std::size_t size, Prot prot) override;
  // The file's frames are the persistent heap: never dropped (a free block's bytes are not
  // needed, but punching holes would make the next boot's writes allocate disk again).
  bool purge(void*, std::size_t) override { return false; }
  void release(void* p, std::size_t size) override;
  const char* name() const override { return "file"; }

  // Writes the next superblock (the slot that is not current) and flushes it.
  bool write_superblock(const Superblock& sb);
  const Superblock& superblock() const { return sb_; }
  // msync of all RAM (a flush point).
  bool flush();
  // A flush-point hook for the power-loss harness (null: none).
  using FlushHook = void (*)(void* arg);
  void set_flush_hook(FlushHook fn, void* arg) {
    flush_hook_ = fn;
    flush_arg_ = arg;
  }
  // Marks the superblock clean, flushes, unmaps, unlocks, closes. Idempotent.
  void close(bool clean = true);
  bool is_open() const { return fd_ >= 0; }
  bool read_only() const { return read_only_; }
  char* ram() const { return ram_; }
  std::uint64_t ram_bytes() const { return ram_bytes_; }
  const char* path() const { return path_; }
  std::uint64_t file_bytes() const { return file_bytes_; }
  // Slots found at open: how many were valid, and whether a torn one was seen.
  unsigned valid_slots() const { return valid_slots_; }

 private:
  bool fail(const char* what);
  bool map_at(std::uint64_t addr);
  // The steps of open(): what the header says, a format begun, a finished heap mapped.
  FileOpenResult read_header();
  FileOpenResult start_format(std::uint64_t ram_bytes);
  FileOpenResult check_and_map();
  int fd_ = -1;
  int owner_pid_ = 0;  // the process that opened it (a fork's child does not own the lock)
  bool read_only_ = false;
  bool readable_by_others_ = false;
  // read_only on a file someone else can change (another user owns it, or group or others
  // may write it): map_at copies it instead of mapping it.
  bool copy_in_ = false;
  bool handed_out_ = false;
  char* header_ = nullptr;  // mapping start (header page), ram_ = header_ + 4096
  char* ram_ = nullptr;
  std::uint64_t ram_bytes_ = 0;
  std::uint64_t file_bytes_ = 0;
  Superblock sb_{};
  unsigned current_slot_ = 0;
  unsigned valid_slots_ = 0;
  const char* error_ = "";
  char errbuf_[600] = {};
  char path_[256] = {};
  FlushHook flush_hook_ = nullptr;
  void* flush_arg_ = nullptr;
};

// The pool of heap files: a closed FilePlatform, or null when all are taken. Release one
// after close().
FilePlatform* heap_file_acquire();
void heap_file_release(FilePlatform* fp);

}  // namespace kmm
#endif
