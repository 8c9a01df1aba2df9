// tests/kernel/kernel_fixture.h — a booted Kernel for the protect/kernel/proc tests.
// KernelPtr shuts the machine down when it goes; boot_kernel() fails the test (and returns
// null) when boot does; LogCapture records the kernel log (dmesg lines) as a string.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "base/text.h"
#include "kernel/kernel.h"

namespace kmm::test {

struct KernelDeleter {
  void operator()(Kernel* k) const {
    if (k != nullptr) k->shutdown();
  }
};
using KernelPtr = std::unique_ptr<Kernel, KernelDeleter>;

inline BootConfig small_config(std::uint64_t ram = std::uint64_t{16} << 20) {
  BootConfig cfg;
  cfg.ram_bytes = ram;
  cfg.min_free_kbytes = ~std::uint64_t{0};  // watermarks off: every free page is usable
  cfg.gc_delay_ns = 1'000'000'000ull;
  return cfg;
}

inline KernelPtr boot_kernel(const BootConfig& cfg) {
  BootError err;
  Kernel* k = Kernel::boot(cfg, &err);
  EXPECT_NE(k, nullptr) << (err.what != nullptr ? err.what : "(no reason)");
  return KernelPtr(k);
}

inline ::testing::AssertionResult invariants(Kernel& k) {
  StackText<512> why;
  if (!k.check_invariants(&why)) return ::testing::AssertionFailure() << why.data();
  return ::testing::AssertionSuccess();
}

inline constexpr std::uint64_t kSecond = 1'000'000'000ull;

class LogCapture {
 public:
  explicit LogCapture(Kernel& k) { k.set_log_listener(&LogCapture::fn, this); }
  const std::string& text() const { return text_; }
  std::size_t count(const std::string& needle) const {
    std::size_t n = 0;
    for (std::size_t at = text_.find(needle); at != std::string::npos; at = text_.find(needle, at + 1)) ++n;
    return n;
  }

 private:
  static void fn(void* arg, const char* line, std::size_t len) {
    static_cast<LogCapture*>(arg)->text_.append(line, len);
  }
  std::string text_;
};

}  // namespace kmm::test
