// examples/firmware/main.cpp — kmm's core on bare-metal ARM (issue 4): no OS, no malloc, no
// threads, no exceptions. A Kernel boots over a static array, a module is loaded, allocates
// and is unloaded without freeing, the idle loop runs the protector's collector, and MemFree
// must come back to its value before insmod. Built by `make firmware` (scripts/firmware-arm.sh)
// with arm-none-eabi-g++ -ffreestanding; runs under qemu-arm with newlib's semihosting
// startup (rdimon) and prints through semihosting itself: the only C library functions in
// the image are memset/memcpy/strcmp-like helpers and the startup/exit code.
// Prints "firmware: OK" and returns 0 when every check held.
#include <cstddef>
#include <cstdint>

#include "base/report.h"
#include "base/text.h"
#include "kernel/kernel.h"
#include "pal/pal.h"
#include "proc/proc.h"

// The C++ runtime pieces a freestanding image must supply itself: a pure virtual call is a bug.
extern "C" void __cxa_pure_virtual() {
  __builtin_trap();
}

namespace {

constexpr std::size_t kRamBytes = std::size_t{4} << 20;  // the machine's RAM: 4 MB
alignas(4096) unsigned char g_ram[kRamBytes];

// ARM semihosting SYS_WRITE0: a NUL-terminated string to the debugger's (or qemu's) console.
// Called directly rather than through newlib's write(), whose errno/reent plumbing links
// newlib's malloc and free (the image must hold no C library allocator).
void semihost_write0(const char* s) {
  register int op asm("r0") = 0x04;  // SYS_WRITE0
  register const char* arg asm("r1") = s;
#if defined(__thumb__)
  asm volatile("svc 0xab" : "+r"(op) : "r"(arg) : "memory");
#else
  asm volatile("svc 0x123456" : "+r"(op) : "r"(arg) : "memory");
#endif
}

void out(const char* text, std::size_t len) {
  char chunk[128];
  while (len > 0) {
    std::size_t n = len < sizeof chunk - 1 ? len : sizeof chunk - 1;
    for (std::size_t i = 0; i < n; ++i) chunk[i] = text[i];
    chunk[n] = '\0';
    semihost_write0(chunk);
    text += n;
    len -= n;
  }
}

void say(const kmm::TextSink& t) {
  out(t.data(), t.size());
}

std::uint64_t mem_free_kb(kmm::Kernel& k) {
  std::uint64_t kb = 0;
  kmm::meminfo_value(k, "MemFree", &kb);
  return kb;
}

int failures = 0;
void check(bool ok, const char* what) {
  kmm::StackText<160> t;
  t.str(ok ? "  ok    " : "  FAIL  ").str(what).nl();
  say(t);
  if (!ok) ++failures;
}

}  // namespace

int main() {
  kmm::set_report_writer(out);  // kmm's reports and log lines go to the semihosting console
  static kmm::StaticPlatform platform(g_ram, sizeof g_ram);
  kmm::BootConfig cfg;
  cfg.ram_bytes = kRamBytes;
  cfg.platform = &platform;
  cfg.protector = kmm::ProtectorMode::kReclaim;
  cfg.gc_delay_ns = 1'000'000'000ull;  // a collector pass at most once a second
  kmm::BootError err;
  kmm::Kernel* k = kmm::Kernel::boot(cfg, &err);
  if (k == nullptr) {
    kmm::StackText<160> t;
    t.str("firmware: boot failed: ").str(err.what ? err.what : "?").nl();
    say(t);
    return 1;
  }
  {
    kmm::StackText<200> t;
    t.str("firmware: kmm booted over a static ")
        .u(kRamBytes >> 10)
        .str(" kB array; sizeof(void*) = ")
        .u(sizeof(void*))
        .str(", MemFree ")
        .u(mem_free_kb(*k))
        .str(" kB")
        .nl();
    say(t);
  }
  const std::uint64_t before = mem_free_kb(*k);

  // The kernel's own allocations: kmalloc and kfree.
  void* a = k->kmalloc(100);
  void* b = k->kmalloc(3000);
  check(a != nullptr && b != nullptr, "kernel kmalloc(100), kmalloc(3000)");
  check(k->kfree(a) && k->kfree(b), "kernel kfree both");

  // A module allocates and is unloaded without freeing: the paper's leak.
  kmm::owner_t drv = 0;
  check(k->insmod("drv", 16384, &drv) == kmm::ModuleError::kOk, "insmod drv");
  unsigned leaked = 0;
  for (unsigned i = 0; i < 64; ++i) {
    if (k->kmalloc(16 + 48 * i, kmm::GFP_KERNEL, drv) != nullptr) ++leaked;
  }
  check(leaked == 64, "drv kmallocs 64 blocks and keeps them");
  check(k->alloc_pages(2, kmm::GFP_KERNEL, drv) != nullptr, "drv alloc_pages(order 2)");
  check(mem_free_kb(*k) < before, "MemFree went down");
  check(k->rmmod("drv") == kmm::ModuleError::kOk, "rmmod drv (without freeing)");

  // The idle loop: the collector finds what drv left and gives it back.
  for (int pass = 0; pass < 10; ++pass) k->idle(500'000'000ull);
  const std::uint64_t after = mem_free_kb(*k);
  {
    kmm::StackText<160> t;
    t.str("  MemFree before insmod ").u(before).str(" kB, after rmmod and idle ").u(after).str(" kB").nl();
    say(t);
  }
  check(after == before, "MemFree came back to its value before insmod");
  kmm::StackText<128> why;
  check(k->check_invariants(&why), "check_invariants");

  say(kmm::StackText<64>().str(failures == 0 ? "firmware: OK\n" : "firmware: FAILED\n"));
  return failures == 0 ? 0 : 1;
}
