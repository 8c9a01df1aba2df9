// kmm/tests/persist/test_heap_file.cpp — persist_boot (src/persist/heap_file.h): without
// backing= it is Kernel::boot; with it, the options that would change a heap's layout
// between boots are refused before any file is touched.
// Depends on: persist/heap_file.h, tests/kernel/kernel_fixture.h, GoogleTest.
#include <gtest/gtest.h>

#include <string>

#include "../kernel/kernel_fixture.h"
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

}  // namespace
}  // namespace kmm
