// kmm/tests/persist/test_persist_hostile.cpp — heap files with a valid superblock checksum but
// crafted contents (issue 21, docs/SECURITY.md): fsck and attach refuse them with a message
// that says what is wrong, and read nothing out of the RAM's range. Each case is one that the
// heap-image fuzzer (fuzz/fuzz_heapimage.cpp) or a reading of the attach code found: a RAM
// size of 0 (fsck read past its mapping), a kmalloc class pointing at a smaller cache (blocks
// too small for their size), the vmalloc record cache pointing between caches (a misaligned
// descriptor), a cache descriptor whose slab cannot hold its objects, a bool that is 255; and a
// slab's copy of its cache's geometry, which attach derives again; and the slab allocator's
// routing observer, a function pointer attach must not call. The heaps are booted with
// thread caches, as the preload's are.
//
// Depends on: persist/ (fsck.h, heap_file.h), kernel/, pal/pal_file.h, GoogleTest, POSIX files.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "base/text.h"
#include "kernel/kernel.h"
#include "pal/pal_file.h"
#include "persist/fsck.h"
#include "persist/heap_file.h"

using namespace kmm;

namespace {

class HostileHeap : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kmm-hostile-heap-XXXXXX";
    int fd = mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    close(fd);
    unlink(tmpl);  // formatted from nothing below
    path_ = tmpl;
    BootConfig cfg = config();
    BootError err;
    Kernel* k = persist_boot(cfg, &err);
    ASSERT_NE(k, nullptr) << err.what;
    base_ = k->backing_file()->ram() - kHeapHeaderBytes;
    kernel_at_ = static_cast<std::size_t>(reinterpret_cast<char*>(k) - base_);
    KmemCache* mine = k->kmem_cache_create("hostile", 72);
    ASSERT_NE(mine, nullptr);
    void* obj = k->kmem_cache_alloc(mine);
    ASSERT_NE(obj, nullptr);
    mine_at_ = offset_of(mine);
    obj_at_ = offset_of(obj);
    ASSERT_NE(mine->tc_slot, 0xFF) << "a cache whose slabs threads own";
    Page* head = k->phys().virt_to_page(
        reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(obj) & ~std::uintptr_t{kMaxOwnedSlabBytes - 1}));
    ASSERT_TRUE(head->is(PG_slab) && head->is(PG_head));
    head_at_ = offset_of(head);
    geometry_at_ = offset_of(head[1].tail.owners);
    k64_ = reinterpret_cast<std::uintptr_t>(k->kmalloc_layer().cache_for(64));
    k8_ = reinterpret_cast<std::uintptr_t>(k->kmalloc_layer().cache_for(8));
    area_cache_ = reinterpret_cast<std::uintptr_t>(k->vmalloc_space().area_cache());
    ASSERT_NE(k->vmalloc(2 * kPageSize), 0u);
    range_len_ = static_cast<std::size_t>(kHeapHeaderBytes + k->backing_file()->ram_bytes());
    k->shutdown();  // a clean detach
    hold_range();
    image_ = read_file();
    ASSERT_GT(image_.size(), kHeapHeaderBytes);
  }
  void TearDown() override {
    free_range();
    unlink(path_.c_str());
  }

  // The heap's fixed address range, held by a PROT_NONE placeholder whenever no kernel maps
  // it: else this process's malloc may take the range a detach gave back, and the next fsck
  // or attach finds its address taken. Nothing allocates between free_range() and the mmap.
  void hold_range() {
    held_ = ::mmap(base_, range_len_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_NORESERVE, -1,
                   0) == base_;
  }
  void free_range() {
    if (held_) ::munmap(base_, range_len_);
    held_ = false;
  }

  BootConfig config() const {
    BootConfig cfg;
    cfg.ram_bytes = 4ull << 20;
    cfg.backing = path_.c_str();
    cfg.min_free_kbytes = ~std::uint64_t{0};
    cfg.vmalloc_bytes = 16ull << 20;
    cfg.thread_caches = true;  // slabs threads own, with their copies of the geometry
    return cfg;
  }
  std::size_t offset_of(const void* p) const { return static_cast<std::size_t>(static_cast<const char*>(p) - base_); }
  std::vector<char> read_file() const {
    std::vector<char> v;
    int fd = open(path_.c_str(), O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) return v;
    v.resize(static_cast<std::size_t>(st.st_size));
    if (pread(fd, v.data(), v.size(), 0) != static_cast<ssize_t>(v.size())) v.clear();
    close(fd);
    return v;
  }
  // Writes img with both superblock checksums recomputed: past the first gate.
  void write_image(std::vector<char> img) const {
    for (unsigned s = 0; s < 2; ++s) {
      Superblock sb;
      std::memcpy(&sb, img.data() + s * kSuperblockSlotBytes, sizeof sb);
      sb.checksum = superblock_checksum(sb);
      std::memcpy(img.data() + s * kSuperblockSlotBytes, &sb, sizeof sb);
    }
    int fd = open(path_.c_str(), O_WRONLY | O_TRUNC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, img.data(), img.size()), static_cast<ssize_t>(img.size()));
    close(fd);
  }
  // Every aligned word of the Kernel object equal to `from` becomes `to`; how many.
  unsigned replace_word(std::vector<char>& img, std::uintptr_t from, std::uintptr_t to) const {
    unsigned n = 0;
    for (std::size_t at = kernel_at_; at + sizeof from <= kernel_at_ + sizeof(Kernel); at += sizeof from) {
      std::uintptr_t w;
      std::memcpy(&w, img.data() + at, sizeof w);
      if (w != from) continue;
      std::memcpy(img.data() + at, &to, sizeof to);
      ++n;
    }
    return n;
  }
  // fsck of the file, with the heap's range released while it runs; its report in *text.
  FsckResult fsck_file(std::string* text) {
    char buf[8192];
    TextSink out(buf, sizeof buf);
    free_range();
    FsckResult r = persist_fsck(path_.c_str(), out);
    hold_range();
    text->assign(out.data(), out.size());
    return r;
  }
  // fsck says the file is unusable, naming `why`; attach refuses it, naming `why` too.
  void expect_refused(const std::string& why) {
    std::string text;
    FsckResult r = fsck_file(&text);
    BootConfig cfg = config();
    BootError err;
    free_range();
    Kernel* k = persist_boot(cfg, &err);
    bool attached = k != nullptr;
    if (attached) k->shutdown();
    hold_range();
    EXPECT_EQ(r.status, 2) << text;
    EXPECT_NE(text.find("unusable"), std::string::npos) << text;
    EXPECT_NE(text.find(why), std::string::npos) << text;
    ASSERT_FALSE(attached) << "attached a crafted heap";
    EXPECT_NE(std::string(err.what).find(why), std::string::npos) << err.what;
  }

  std::string path_;
  char* base_ = nullptr;  // where the file was mapped (header page)
  std::size_t kernel_at_ = 0, mine_at_ = 0;
  std::size_t obj_at_ = 0;       // the object allocated from `hostile`
  std::size_t head_at_ = 0;      // its slab's head descriptor
  std::size_t geometry_at_ = 0;  // its slab's copy of the cache's geometry (OwnedSlabGeometry)
  std::uintptr_t k64_ = 0, k8_ = 0, area_cache_ = 0;
  std::size_t range_len_ = 0;
  bool held_ = false;
  std::vector<char> image_;
};

TEST_F(HostileHeap, PristineImageIsClean) {
  write_image(image_);
  std::string text;
  EXPECT_EQ(fsck_file(&text).status, 0) << text;
}

TEST_F(HostileHeap, RamSizeOfZeroIsRefused) {
  std::vector<char> img = image_;
  for (unsigned s = 0; s < 2; ++s) {
    std::uint64_t zero = 0;
    std::memcpy(img.data() + s * kSuperblockSlotBytes + offsetof(Superblock, ram_bytes), &zero, sizeof zero);
  }
  write_image(img);
  expect_refused("RAM size is not a whole number of pages");
}

TEST_F(HostileHeap, KmallocClassPointingAtASmallerCacheIsRefused) {
  std::vector<char> img = image_;
  ASSERT_GE(replace_word(img, k64_, k8_), 1u);
  write_image(img);
  expect_refused("a kmalloc size class is not a cache in use of its size");
}

TEST_F(HostileHeap, VmallocRecordCacheBetweenCachesIsRefused) {
  std::vector<char> img = image_;
  ASSERT_EQ(replace_word(img, area_cache_, area_cache_ + 14), 1u);
  write_image(img);
  expect_refused("the vmalloc area cache is not a cache in use");
}

TEST_F(HostileHeap, CacheWhoseSlabCannotHoldItsObjectsIsRefused) {
  std::vector<char> img = image_;
  std::uint16_t objects = 0xFFFF;
  std::memcpy(img.data() + mine_at_ + offsetof(KmemCache, objects), &objects, sizeof objects);
  write_image(img);
  expect_refused("a cache descriptor does not describe slabs create() could make");
}

// Thread-cache slots: create() hands out the slab allocator's count of them, one a cache. A
// file whose count was lowered (one byte) attached and checked clean before stop 48, and the
// next cache created took kmalloc-8's slot: its 1000-byte objects came out of kmalloc-8's
// slabs. Now a cache whose slot lies at or beyond the count, or two caches sharing a slot, is
// refused (a lowered count leaves the caches above it beyond it).
TEST_F(HostileHeap, ThreadCacheSlotsHandedOutAgainAreRefused) {
  std::vector<char> img = image_;
  img[mine_at_ + offsetof(KmemCache, tc_slot)] = static_cast<char>(kMaxTcSlots - 1);
  img[mine_at_ + offsetof(KmemCache, alloc_tc_slot)] = static_cast<char>(kMaxTcSlots - 1);
  write_image(img);
  expect_refused("thread-cache slot");
  img = image_;
  const auto* k8 = reinterpret_cast<const KmemCache*>(image_.data() + (k8_ - reinterpret_cast<std::uintptr_t>(base_)));
  img[mine_at_ + offsetof(KmemCache, tc_slot)] = static_cast<char>(k8->tc_slot);
  img[mine_at_ + offsetof(KmemCache, alloc_tc_slot)] = static_cast<char>(k8->tc_slot);
  write_image(img);
  expect_refused("thread-cache slot");
}

TEST_F(HostileHeap, BoolThatIsNotABoolIsRefused) {
  std::vector<char> img = image_;
  img[mine_at_ + offsetof(KmemCache, in_use)] = static_cast<char>(0xFF);
  write_image(img);
  expect_refused("holds a byte that is no bool");
}

// The copy of a cache's geometry beside a thread-owned slab's head (the free fast path reads
// it instead of the cache) is derived again at attach, as the cache's reciprocal is, never
// trusted from the file: a file whose copy says the slab holds 2^32 - 1 objects with their
// owner bytes 64 KiB away and never has room again once full attaches, checks clean, and frees
// its object.
TEST_F(HostileHeap, SlabGeometryCopyFromTheFileIsNotTrusted) {
  std::vector<char> img = image_;
  const OwnedSlabGeometry lie{1u, 0xFFFFFFFFu, 0xFFFFu, 0xFFFFu, 0x5A5A5A5Au};
  std::memcpy(img.data() + geometry_at_, &lie, sizeof lie);
  write_image(img);
  free_range();
  BootConfig cfg = config();
  BootError err;
  Kernel* k = persist_boot(cfg, &err);
  ASSERT_NE(k, nullptr) << err.what;
  char buf[512];
  TextSink why(buf, sizeof buf);
  EXPECT_TRUE(k->check_invariants(&why)) << std::string(why.data(), why.size());
  auto* mine = reinterpret_cast<KmemCache*>(base_ + mine_at_);
  EXPECT_TRUE(k->slab().owned_geometry_ok(mine, reinterpret_cast<const Page*>(base_ + head_at_)));
  EXPECT_TRUE(k->kmem_cache_free(mine, base_ + obj_at_));
  k->shutdown();
  hold_range();
}

// The slab allocator's routing observer (the shim's malloc sets it) is a function pointer of
// the process that stored the file. Attach must never call the one in the file: here it names
// a function of this test that counts its calls, and a crafted file may name any address (the
// heap-image fuzzer found attach calling through such a pointer).
int g_stale_observer_calls = 0;
void live_observer(bool) {}
void stale_observer(bool) {
  ++g_stale_observer_calls;
}

TEST_F(HostileHeap, RouteObserverFromTheFileIsNeverCalled) {
  free_range();
  BootConfig cfg = config();
  BootError err;
  Kernel* k = persist_boot(cfg, &err);
  ASSERT_NE(k, nullptr) << err.what;
  k->slab().set_route_observer(live_observer);
  k->shutdown();
  hold_range();
  std::vector<char> img = read_file();
  ASSERT_EQ(replace_word(img, reinterpret_cast<std::uintptr_t>(&live_observer),
                         reinterpret_cast<std::uintptr_t>(&stale_observer)),
            1u)
      << "the observer is stored once in the Kernel object";
  write_image(img);
  free_range();
  g_stale_observer_calls = 0;
  k = persist_boot(cfg, &err);
  ASSERT_NE(k, nullptr) << err.what;
  EXPECT_EQ(g_stale_observer_calls, 0) << "attach called the file's observer";
  char buf[512];
  TextSink why(buf, sizeof buf);
  EXPECT_TRUE(k->check_invariants(&why)) << std::string(why.data(), why.size());
  k->shutdown();
  hold_range();
  std::string text;
  EXPECT_EQ(fsck_file(&text).status, 0) << text;
  EXPECT_EQ(g_stale_observer_calls, 0) << "fsck called the file's observer";
}

}  // namespace
