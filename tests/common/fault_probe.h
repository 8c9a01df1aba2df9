// tests/common/fault_probe.h — death tests of memory protection (guard pages, read-only or
// inaccessible pages) that can tell the fault they expect from any other crash.
//
// A protection fault prints nothing, so a death test of one cannot match a report's text,
// and an empty pattern would pass on any death, a null dereference included. Inside the
// death statement, expect_fault_at(addr) installs a one-shot SIGSEGV/SIGBUS handler that
// writes "fault at the expected address" when the faulting address (si_addr) is addr and
// "fault at another address" otherwise, then lets the signal kill the process as before
// (SA_RESETHAND: the faulting instruction runs again under the default action). The test
// matches the line and the signal:
//
//   EXPECT_EXIT({ ...; expect_fault_at(p + n); p[n] = 1; }, testing::KilledBySignal(SIGSEGV),
//               kmm::test::kFaultAtExpectedAddress);
//
// allocation_failed(what) is the way out for a null allocation inside a death statement: it
// says so and exits 0, which no death test accepts.
//
// Depends on: POSIX signals only (the handler uses write(2): async-signal-safe).
// Invariant: the handler runs at most once, then the default action is back.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace kmm::test {

inline constexpr const char* kFaultAtExpectedAddress = "fault at the expected address";

inline const volatile void*& expected_fault_address() {
  static const volatile void* addr = nullptr;
  return addr;
}

inline void on_protection_fault(int, siginfo_t* si, void*) {
  const char* msg =
      si->si_addr == expected_fault_address() ? "fault at the expected address\n" : "fault at another address\n";
  ssize_t w = ::write(2, msg, std::strlen(msg));
  (void)w;
}

inline void expect_fault_at(const volatile void* addr) {
  expected_fault_address() = addr;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = &on_protection_fault;
  sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, nullptr);
  sigaction(SIGBUS, &sa, nullptr);
}

[[noreturn]] inline void allocation_failed(const char* what) {
  const char* msg = "allocation failed before the fault could be tested: ";
  ssize_t w = ::write(2, msg, std::strlen(msg));
  w = ::write(2, what, std::strlen(what));
  w = ::write(2, "\n", 1);
  (void)w;
  std::exit(0);
}

}  // namespace kmm::test
