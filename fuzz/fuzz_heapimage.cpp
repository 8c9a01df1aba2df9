// kmm/fuzz/fuzz_heapimage.cpp — libFuzzer harness for hostile heap files (issue 21): a
// persistent-RAM file (`backing=`, `kmm fsck`) is input from outside, and one whose superblock
// checksum is right but whose contents are crafted must be refused or repaired by fsck and by
// attach, never followed out of the RAM's range, never a crash.
//
// Once, at start: a real small heap image is made by booting over a file and running a mixed
// workload (slab objects of kmalloc classes and of a cache of its own, page-level blocks,
// vmalloc areas, modules owning blocks, a named root), then detaching cleanly; its bytes are
// kept. Each input is a list of patches to that image:
//   [region:1][offset:4 LE][length:1][bytes...]   (repeated; a short tail is ignored)
// region (mod 8) picks where the offset lands (mod the region's size): 0 the header page
// (both superblock slots), 1 the Kernel object, 2 mem_map and boot memory, 3 anywhere in RAM,
// 4 the descriptors (KmemCache) of the caches in use, 5 the module table, 6 the vmalloc
// space's object, 7 the first 256 KiB of frames (the workload's
// slabs, owner bytes, vmalloc records and frame arrays). Both superblock slots then get their
// checksums recomputed — the first gate passed — and the file is checked (persist_fsck), then
// attached (persist_boot with backing=), used a little (check_invariants, kmalloc/kfree, a
// collector pass, root_get) and detached, with on_error=report (kmm reporting what a crafted
// file set up is a refusal, not a finding). ASan/UBSan and the sanitizer's SEGV handler catch
// what follows a crafted pointer or count out of range.
//
// Depends on: kernel/ (kmm_kernel), pal/pal_file.h, POSIX. The image lives in /dev/shm when
// there is one (else /tmp): one file per fuzzer process, removed at exit (not after a crash:
// the file is then the crashing image).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/report.h"
#include "base/text.h"
#include "kernel/kernel.h"
#include "pal/pal_file.h"
#include "persist/fsck.h"
#include "persist/heap_file.h"

using namespace kmm;

namespace {

std::string g_path;
std::vector<std::uint8_t> g_image;
// Where patches land: byte ranges of the image (offsets in the file).
struct Region {
  std::uint64_t at, len;
};
constexpr unsigned kNrRegions = 8;
Region g_regions[kNrRegions];
char g_out[1 << 16];
// The image's fixed address range (header page + RAM), held by a PROT_NONE placeholder
// whenever no kernel maps it: else the sanitizer's allocator takes the range that a detach
// just gave back, and the next attach finds its address taken.
void* g_range = nullptr;
std::size_t g_range_len = 0;

void hold_range() {
  if (::mmap(g_range, g_range_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_NORESERVE, -1,
             0) != g_range)
    std::abort();
}
void free_range() {
  ::munmap(g_range, g_range_len);
}

BootConfig config() {
  BootConfig cfg;
  cfg.ram_bytes = 4ull << 20;
  cfg.backing = g_path.c_str();
  cfg.protector = ProtectorMode::kReclaim;
  cfg.gc_delay_ns = 0;
  cfg.min_free_kbytes = ~std::uint64_t{0};
  cfg.vmalloc_bytes = 16ull << 20;
  cfg.thread_caches = false;
  return cfg;
}

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "fuzz_heapimage: %s\n", what);
  std::abort();
}

bool write_file(const std::vector<std::uint8_t>& bytes) {
  int fd = ::open(g_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  std::size_t off = 0;
  while (off < bytes.size()) {
    ssize_t w = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (w <= 0) break;
    off += static_cast<std::size_t>(w);
  }
  ::close(fd);
  return off == bytes.size();
}

void make_image() {
  const char* dir = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  g_path = std::string(dir) + "/kmm-fuzz-heapimage-" + std::to_string(::getpid());
  ::unlink(g_path.c_str());
  BootConfig cfg = config();
  BootError err;
  Kernel* k = persist_boot(cfg, &err);
  if (k == nullptr) die(err.what);
  owner_t net = kOwnerFree, fs = kOwnerFree;
  k->insmod("m_net", 16384, &net);
  k->insmod("m_fs", 16384, &fs);
  KmemCache* own = k->kmem_cache_create("fuzz_cache", 72);
  void* keep[64] = {};
  for (unsigned i = 0; i < 64; ++i) {
    std::size_t size = std::size_t{8} << (i % 10);  // 8 B .. 4 KiB: slab classes
    keep[i] = k->kmalloc(size, GFP_KERNEL, i % 3 == 0 ? net : i % 3 == 1 ? fs : kOwnerKernel);
  }
  for (unsigned i = 0; i < 64; i += 4) k->kfree(keep[i]);  // holes in the slabs
  for (unsigned i = 0; i < 12; ++i) k->kmem_cache_alloc(own, GFP_KERNEL, i % 2 ? net : kOwnerKernel);
  k->kmalloc(3 * kPageSize, GFP_KERNEL, fs);  // page-level blocks
  k->kmalloc(20 * kPageSize, GFP_KERNEL, kOwnerKernel);
  k->alloc_pages(1, GFP_KERNEL, net);
  k->vmalloc(5 * kPageSize, net);
  std::uint64_t v = k->vmalloc(2 * kPageSize, kOwnerKernel);
  k->vmalloc(3 * kPageSize, fs);
  k->vfree(v);
  void* root = k->kzalloc(256, GFP_KERNEL, kOwnerKernel);
  k->root_set("table", root);
  k->rmmod("m_fs");  // its blocks are leaks the protector finds
  g_range = k->backing_file()->ram() - kHeapHeaderBytes;
  auto in_file = [&](const void* p, std::size_t len) {
    return Region{static_cast<std::uint64_t>(static_cast<const char*>(p) - static_cast<char*>(g_range)), len};
  };
  const std::uint64_t ram = k->backing_file()->ram_bytes();
  const std::uint64_t boot_bytes = static_cast<std::uint64_t>(k->zone().start_pfn() - k->phys().base_pfn()) * kPageSize;
  g_regions[0] = {0, kHeapHeaderBytes};
  g_regions[1] = in_file(k, sizeof(Kernel));
  g_regions[2] = {kHeapHeaderBytes, boot_bytes};
  g_regions[3] = {kHeapHeaderBytes, ram};
  const KmemCache* first = nullptr;
  const KmemCache* last = nullptr;
  for (unsigned i = 0; i < k->slab().nr_cache_ids(); ++i) {
    if (const KmemCache* c = k->slab().cache(i)) {
      if (first == nullptr) first = c;
      last = c;
    }
  }
  g_regions[4] = in_file(
      first, static_cast<std::size_t>(reinterpret_cast<const char*>(last + 1) - reinterpret_cast<const char*>(first)));
  g_regions[5] = in_file(&k->modules(), sizeof(ModuleRegistry));
  g_regions[6] = in_file(&k->vmalloc_space(), sizeof(Vmalloc));
  g_regions[7] = {kHeapHeaderBytes + boot_bytes, 256 * 1024};
  if (g_regions[7].at + g_regions[7].len > kHeapHeaderBytes + ram) g_regions[7] = g_regions[3];
  g_range_len = static_cast<std::size_t>(kHeapHeaderBytes + k->backing_file()->ram_bytes());
  k->shutdown();  // clean detach
  hold_range();
  int fd = ::open(g_path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || ::fstat(fd, &st) != 0) die("cannot read the image back");
  g_image.resize(static_cast<std::size_t>(st.st_size));
  if (::pread(fd, g_image.data(), g_image.size(), 0) != static_cast<ssize_t>(g_image.size())) die("short read");
  ::close(fd);
  // The pristine image must be clean: else every finding below is the workload's.
  TextSink out(g_out, sizeof g_out);
  free_range();
  FsckResult r = persist_fsck(g_path.c_str(), out);
  hold_range();
  if (r.status != 0) {
    std::fwrite(out.data(), 1, out.size(), stderr);
    die("the pristine image is not clean");
  }
}

void fix_checksums(std::vector<std::uint8_t>& img) {
  for (unsigned s = 0; s < 2; ++s) {
    Superblock sb;
    std::memcpy(&sb, img.data() + s * kSuperblockSlotBytes, sizeof sb);
    sb.checksum = superblock_checksum(sb);
    std::memcpy(img.data() + s * kSuperblockSlotBytes, &sb, sizeof sb);
  }
}

void apply(const std::uint8_t* data, std::size_t size, std::vector<std::uint8_t>& img) {
  std::size_t i = 0;
  while (i + 6 <= size) {
    const Region& r = g_regions[data[i] % kNrRegions];
    std::uint32_t off;
    std::memcpy(&off, data + i + 1, 4);
    std::size_t len = data[i + 5] % 16 + 1;
    i += 6;
    if (len > size - i) len = size - i;
    std::uint64_t at = r.at + off % r.len;
    for (std::size_t j = 0; j < len && at + j < img.size(); ++j) img[at + j] = data[i + j];
    i += len;
  }
}

void use(Kernel* k) {
  StackText<512> why;
  k->check_invariants(&why);
  void* p[16];
  for (unsigned i = 0; i < 16; ++i) p[i] = k->kmalloc(std::size_t{16} << (i % 9), GFP_KERNEL, kOwnerKernel);
  for (void* q : p) k->kfree(q);
  if (std::uint64_t v = k->vmalloc(2 * kPageSize, kOwnerKernel)) k->vfree(v);
  if (void* r = k->root_get("table")) (void)k->owner_of(r);
  k->boot_complete();
  k->idle(1'000'000'000ull);  // a collector pass over what the file holds
  OwnerTally tally[kMaxOwners];
  k->usage(tally);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // A report about what a crafted heap holds (a bad free the file set up) is kmm doing its
  // job: it goes on where safe. What this harness looks for is memory safety.
  set_on_error(OnError::kReport);
  make_image();
  std::atexit([] { ::unlink(g_path.c_str()); });  // libFuzzer exits through exit() when done
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::uint8_t> img = g_image;
  apply(data, size, img);
  fix_checksums(img);
  if (!write_file(img)) die("cannot write the image");
  TextSink out(g_out, sizeof g_out);
  BootConfig cfg = config();
  BootError err;
  free_range();  // nothing below allocates until hold_range()
  persist_fsck(g_path.c_str(), out);
  if (Kernel* k = persist_boot(cfg, &err)) {
    use(k);
    k->shutdown();
  }
  hold_range();
  return 0;
}
