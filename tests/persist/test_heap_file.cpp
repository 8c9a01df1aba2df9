// kmm/tests/persist/test_heap_file.cpp — persist_boot (src/persist/heap_file.h): without
// backing= it is Kernel::boot; with it, the options that would change a heap's layout
// between boots are refused before any file is touched; a heap made by one process is
// attached by another (a fresh exec: its text and vtables lie elsewhere).
// Depends on: persist/heap_file.h, tests/kernel/kernel_fixture.h, GoogleTest, POSIX (fork,
// exec of /proc/self/exe).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "../kernel/kernel_fixture.h"
#include "pal/pal_file.h"
#include "persist/heap_file.h"

namespace kmm {
namespace {

std::string boot_error(const BootConfig& cfg) {
  BootError err;
  Kernel* k = persist_boot(cfg, &err);
  if (k != nullptr) {
    k->shutdown();
    return "(booted)";
  }
  return err.what != nullptr ? err.what : "(no reason)";
}

TEST(PersistBoot, WithoutBackingBootsVolatileRam) {
  BootConfig cfg = test::small_config();
  BootError err;
  Kernel* k = persist_boot(cfg, &err);
  ASSERT_NE(k, nullptr) << err.what;
  EXPECT_FALSE(k->persistent());
  EXPECT_TRUE(test::invariants(*k));
  k->shutdown();
}

// Moved from tests/kernel/test_kernel.cpp with the check (it was Kernel::boot's).
TEST(KernelHardening, PersistentRamRefusesLayoutChangingOptions) {
  BootConfig cfg = test::small_config();
  cfg.backing = "/nonexistent-kmm-dir/heap";
  cfg.hardening.redzone = true;
  EXPECT_NE(boot_error(cfg).find("not available with backing="), std::string::npos) << boot_error(cfg);
  cfg.hardening = HardeningConfig{};
  cfg.hardening.guard_pages = true;
  EXPECT_NE(boot_error(cfg).find("not available with backing="), std::string::npos) << boot_error(cfg);
}

// A heap file at path, made anew, holding one 100-byte block of 0x5a under the root "block"
// (*block: its address, the heap's own), cleanly detached.
void make_heap_with_a_block(const std::string& path, void** block) {
  std::remove(path.c_str());
  BootConfig cfg = test::small_config();
  cfg.backing = path.c_str();
  BootError err;
  Kernel* k = persist_boot(cfg, &err);
  ASSERT_NE(k, nullptr) << err.what;
  void* p = k->kmalloc(100);
  ASSERT_NE(p, nullptr);
  std::memset(p, 0x5a, 100);
  ASSERT_TRUE(k->root_set("block", p));
  *block = p;
  k->shutdown();
}

// A heap file is attached by a process other than the one that made it: the machine's
// pointers out of RAM (the zone's and vmalloc's vtables, the platform) are another process's
// and must be re-set before anything calls through them. The heap-image fuzzer found attach
// calling the zone through its stored vtable (SlabAllocator::reattach): every `kmm run` on a
// heap an earlier `kmm run` made crashed. The in-process tests and the crash harness (fork:
// the same layout) could not see it.
TEST(PersistBoot, AttachInANewProcess) {
  std::string path = ::testing::TempDir() + "kmm-attach-" + std::to_string(::getpid()) + ".heap";
  void* p = nullptr;
  ASSERT_NO_FATAL_FAILURE(make_heap_with_a_block(path, &p));
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::setenv("KMM_TEST_ATTACH_FILE", path.c_str(), 1);
    ::execl("/proc/self/exe", "test_heap_file", "--gtest_filter=PersistBoot.AttachHelper", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  std::remove(path.c_str());
  ASSERT_TRUE(WIFEXITED(status)) << "the attaching process died (signal " << WTERMSIG(status) << ")";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the attaching process failed its checks";
}

// fsck of another user's heap works on the file as it was when opened: its owner may cut or
// rewrite it meanwhile. Mapped MAP_PRIVATE, the pages not yet copied showed the file as it is
// now: a truncation made the check's next read a SIGBUS (27 of 400 runs in a review), and
// what was validated could change before the rebuild read it again.
TEST(PersistBoot, FsckReadsAnotherUsersFileAsItWasWhenOpened) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: the heap file is handed to another user (chown)";
  std::string path = ::testing::TempDir() + "kmm-fsck-snapshot-" + std::to_string(::getpid()) + ".heap";
  void* p = nullptr;
  ASSERT_NO_FATAL_FAILURE(make_heap_with_a_block(path, &p));
  ASSERT_EQ(::chown(path.c_str(), 65534, 65534), 0);  // nobody's now: root checks a user's heap
  const std::uint64_t ram = test::small_config().ram_bytes;
  EXPECT_EXIT(
      {
        FilePlatform fp;
        if (fp.open(path.c_str(), 0, /*read_only=*/true) != FileOpenResult::kAttach) std::_Exit(2);
        // The owner (root stands in) cuts the file, then grows it again: zeros where it was.
        if (::truncate(path.c_str(), 0) != 0) std::_Exit(3);
        if (::truncate(path.c_str(), static_cast<off_t>(kHeapHeaderBytes + ram)) != 0) std::_Exit(4);
        unsigned sum = 0;
        for (std::uint64_t i = 0; i < ram; i += 512) sum += static_cast<unsigned char>(fp.ram()[i]);
        const auto* block = reinterpret_cast<const unsigned char*>(static_cast<char*>(p));
        if (block[0] != 0x5a || block[99] != 0x5a || sum == 0) std::_Exit(5);
        std::fprintf(stderr, "read the file as it was\n");
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(0), "read the file as it was");
  std::remove(path.c_str());
}

// Named roots set from two threads at once: every one is there, with its own value. Before
// stop 48 root_set took no lock: two callers picked the same free entry, and a name was read
// while another was written (79 roots lost or wrong in 2,000 rounds).
TEST(PersistRoots, TwoThreadsSettingRootsAtOnceLoseNone) {
  for (int round = 0; round < 500; ++round) {
    test::KernelPtr k = test::boot_kernel(test::small_config());
    ASSERT_TRUE(k);
    std::atomic<int> ready{0};
    auto set_many = [&k, &ready](int t) {
      ready.fetch_add(1);
      while (ready.load() < 2) {
      }  // both at once
      for (int i = 0; i < 16; ++i) {
        std::string name = "t" + std::to_string(t) + "-root" + std::to_string(i);
        EXPECT_TRUE(k->root_set(name.c_str(), reinterpret_cast<void*>(std::uintptr_t{0x1000} * (t * 100 + i + 1))));
      }
    };
    std::thread a(set_many, 1), b(set_many, 2);
    a.join();
    b.join();
    for (int t = 1; t <= 2; ++t)
      for (int i = 0; i < 16; ++i) {
        std::string name = "t" + std::to_string(t) + "-root" + std::to_string(i);
        ASSERT_EQ(k->root_get(name.c_str()), reinterpret_cast<void*>(std::uintptr_t{0x1000} * (t * 100 + i + 1)))
            << "round " << round << ": " << name;
      }
  }
}

// The second process of AttachInANewProcess (skipped when run on its own).
TEST(PersistBoot, AttachHelper) {
  const char* path = std::getenv("KMM_TEST_ATTACH_FILE");
  if (path == nullptr) GTEST_SKIP() << "run by PersistBoot.AttachInANewProcess";
  BootConfig cfg = test::small_config();
  cfg.backing = path;
  BootError err;
  Kernel* k = persist_boot(cfg, &err);
  ASSERT_NE(k, nullptr) << err.what;
  EXPECT_EQ(k->attach_report().boot_count, 2u);
  auto* p = static_cast<unsigned char*>(k->root_get("block"));
  ASSERT_NE(p, nullptr);
  EXPECT_NE(k->owner_of(p), kOwnerFree);
  EXPECT_EQ(p[0], 0x5a);
  EXPECT_EQ(p[99], 0x5a);
  EXPECT_TRUE(test::invariants(*k));
  EXPECT_TRUE(k->kfree(p));
  void* q = k->kmalloc(100);  // the slab path after attach (owner bytes by mask)
  EXPECT_NE(q, nullptr);
  EXPECT_TRUE(test::invariants(*k));
  k->shutdown();
}

}  // namespace
}  // namespace kmm
