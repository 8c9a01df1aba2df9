// kmm/scenario/command_table.cpp — the rows of the scenario language (command_table.h) and the
// lookups the dispatchers and `kmm help scenario` use.
#include "scenario/command_table.h"

#include <iterator>

#include "protect/protector_mode.h"

namespace kmm::sim {
namespace {

using F = CommandFamily;

// "protector off|report|reclaim|reclaim-unreachable", from the one list of mode names.
constexpr ProtectorModeText kProtectorUsage = protector_mode_text("protector ");

constexpr CommandRow kRows[] = {
    // script
    {"echo", "echo TEXT", "print TEXT", F::kScript},
    {"let", "let NAME = EXPR", "remember the value of an expression as $NAME", F::kScript},
    {"expect", "expect EXPR", "check a condition; a false one prints both sides and the run exits 1", F::kScript},
    // fault
    {"fail",
     "fail slab|page|platform every=N|probability=P% [times=N] [space=SIZE] [seed=S] [verbose=0|1]"
     " | fail off [slab|page|platform] | fail",
     "fault injection (Linux's failslab, fail_page_alloc): fail every Nth or a random P% of allocations; "
     "off; or show each point",
     F::kFault},
    // common
    {"boot", "boot [KEY=VALUE...]",
     "boot a machine (ram=, mmu=on|off, pt=, page_alloc=, kmalloc=, protector=, gc_delay=, backing= ...)", F::kCommon},
    {"reboot", "reboot", "restart the machine with the same options; persistent RAM keeps its blocks", F::kCommon},
    {"insmod", "insmod NAME [size=N]", "load a module", F::kCommon},
    {"rmmod", "rmmod NAME", "unload a module; what it still owns is a leak for the protector", F::kCommon},
    {"lsmod", "lsmod", "list the loaded modules", F::kCommon},
    {"kmalloc", "kmalloc OWNER SIZE [as LABEL]", "allocate from kmalloc; OWNER is a loaded module or kernel",
     F::kCommon},
    {"kzalloc", "kzalloc OWNER SIZE [as LABEL]", "kmalloc, zeroed", F::kCommon},
    {"vmalloc", "vmalloc OWNER SIZE [as LABEL]", "allocate a virtually contiguous area", F::kCommon},
    {"alloc_pages", "alloc_pages OWNER ORDER [as LABEL]", "allocate 2^ORDER pages with an owner", F::kCommon},
    {"kfree", "kfree LABEL [by OWNER]", "free a kmalloc block (by: who frees, checked under cross_free=)", F::kCommon},
    {"vfree", "vfree LABEL [by OWNER]", "free a vmalloc area", F::kCommon},
    {"free_pages", "free_pages LABEL [by OWNER]", "free an alloc_pages block", F::kCommon},
    {"krealloc", "krealloc LABEL SIZE", "resize a kmalloc block, keeping its contents and owner", F::kCommon},
    {"idle", "idle DURATION", "advance the clock; the idle loop runs the collector when it is due", F::kCommon},
    {"gc", "gc", "run a collector pass now (the rate limit aside)", F::kCommon},
    {"protector", kProtectorUsage.text, "change the protector's mode", F::kCommon},
    {"cat", "cat PATH",
     "a view: /proc/meminfo, buddyinfo, slabinfo, modules, allocinfo, vmallocinfo, dmesg, "
     "/sys/kernel/debug/kmemleak ...; PATH.json for JSON",
     F::kCommon},
    {"dmesg", "dmesg", "the kernel log", F::kCommon},
    {"link", "link FROM TO [offset=N]", "write block TO's address into block FROM: FROM now references TO", F::kCommon},
    {"unlink", "unlink FROM [offset=N]", "clear what link wrote", F::kCommon},
    {"transfer", "transfer LABEL OWNER", "hand a block to another owner (a module, or kernel)", F::kCommon},
    {"not_leak", "not_leak LABEL", "kmemleak_not_leak: the block becomes the kernel's", F::kCommon},
    {"map", "map [scale=SIZE]", "physical memory, one character per scale: X used, - free", F::kCommon},
    {"check", "check", "run every invariant check; a broken one counts as a failed expect", F::kCommon},
    // mmu
    {"spawn", "spawn PROC [malloc=brk|simple|heap] [heap=SIZE]", "start a process with its own address space", F::kMmu},
    {"exit", "exit PROC", "end a process; its address space and tables go back", F::kMmu},
    {"mmap", "mmap PROC SIZE [prot=rw|r|rx|rwx|none] [at=ADDR] [as LABEL]",
     "map anonymous memory into a process (pages come on first touch)", F::kMmu},
    {"munmap", "munmap LABEL", "unmap an mmap'd area", F::kMmu},
    {"malloc", "malloc PROC SIZE [as LABEL]", "allocate from the process's malloc", F::kMmu},
    {"free", "free LABEL", "free a malloc block", F::kMmu},
    {"touch", "touch PROC ADDR [read|write|exec] [kernel] [len=SIZE]",
     "access memory: demand paging, protection faults, the TLB", F::kMmu},
    {"translate", "translate PROC|kernel VADDR [read|write|exec] [user|kernel]",
     "print each level of the page-table walk, the physical address, or the fault", F::kMmu},
    {"chain", "chain [PROC|kernel] VADDR", "the address chain: virtual, physical, PFN, struct page", F::kMmu},
    {"tlb", "tlb [stats] | tlb flush [PROC|all]", "the TLB's counters, or a flush", F::kMmu},
    // nommu
    {"spawn", "spawn PROC [malloc=simple|smalloc|heap|brk] [heap=SIZE]",
     "start a uClinux process with one of its malloc strategies", F::kNommu},
    {"exit", "exit PROC", "end a process; its regions go back", F::kNommu},
    {"malloc", "malloc PROC SIZE [as LABEL]", "allocate from the process's malloc", F::kNommu},
    {"free", "free LABEL [by PROC]", "free a malloc block", F::kNommu},
    {"realloc", "realloc LABEL SIZE", "resize a malloc block", F::kNommu},
    {"ps", "ps", "the processes and their memory", F::kNommu},
    {"nommu", "nommu [lookup=linear|indexed] [chunk=SIZE]", "how free and realloc find a process's region", F::kNommu},
    {"frag", "frag [SIZE]", "free memory, the largest free block, Linux's fragmentation indices", F::kNommu},
    {"repeat", "repeat N COMMAND... ({i} in COMMAND counts 0..N-1)",
     "run COMMAND N times, quietly; print how many failed", F::kNommu},
    {"churn",
     "churn [steps=N] [seed=N] [every=N] [buf_min=SIZE] [buf_max=SIZE] [bufs=N] [buf_life=N] [keep=PERMILLE]"
     " [programs=N] [prog_min=SIZE] [prog_max=SIZE] [prog_life=N]",
     "network buffers mixed with long-lived programs; prints the largest free block over time", F::kNommu},
    // persist
    {"boot-complete", "boot-complete", "end the grace period: dormant modules not loaded again are gone", F::kPersist},
    {"flush", "flush", "a flush point of persistent RAM (msync)", F::kPersist},
    {"root", "root set NAME LABEL | root get NAME as LABEL", "a named persistent root: set it, or get it as LABEL",
     F::kPersist},
};

}  // namespace

std::span<const CommandRow> command_table() {
  return {std::begin(kRows), std::end(kRows)};
}

const char* command_family_name(CommandFamily f) {
  switch (f) {
    case F::kScript:
      return "script";
    case F::kFault:
      return "fault";
    case F::kCommon:
      return "common";
    case F::kMmu:
      return "mmu";
    case F::kNommu:
      return "nommu";
    case F::kPersist:
      return "persist";
  }
  return "?";
}

const char* command_family_title(CommandFamily f) {
  switch (f) {
    case F::kScript:
      return "Values and checks (no machine needed)";
    case F::kFault:
      return "Fault injection (no machine needed)";
    case F::kCommon:
      return "Any booted machine";
    case F::kMmu:
      return "MMU machines (mmu=on): address spaces, page tables, the TLB";
    case F::kNommu:
      return "NOMMU machines (mmu=off): uClinux process memory";
    case F::kPersist:
      return "Persistent RAM (boot backing=FILE)";
  }
  return "?";
}

bool family_applies(CommandFamily f, bool mmu) {
  if (f == F::kMmu) return mmu;
  if (f == F::kNommu) return !mmu;
  return true;
}

const CommandRow* find_command(std::string_view name, bool mmu) {
  for (const CommandRow& r : kRows)
    if (name == r.name && family_applies(r.family, mmu)) return &r;
  return nullptr;
}

std::string command_usage(std::string_view name, std::optional<CommandFamily> family) {
  for (const CommandRow& r : kRows)
    if (name == r.name && (!family || *family == r.family)) return std::string("usage: ") + r.usage;
  return "usage: " + std::string(name);  // not reached: every caller names a row
}

std::string unknown_command_error(const std::string& name, bool mmu) {
  std::string e = "unknown command '" + name + "'";
  if (find_command(name, !mmu) != nullptr)
    return e + (mmu ? " (" + name + " is a command of mmu=off machines)"
                    : " (on a mmu=off machine; " + name + " needs mmu=on)");
  return e + (mmu ? "" : " (on a mmu=off machine)");
}

}  // namespace kmm::sim
