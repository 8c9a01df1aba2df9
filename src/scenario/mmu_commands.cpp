// kmm/scenario/mmu_commands.cpp — scenario commands of MMU machines: the kernel address space,
// user address spaces, `translate`, demand paging, the TLB, the address chain of document
// 001, and their views (/proc/PID/maps, kernel_page_tables, /proc/tlb). The language is
// documented in docs/VM.md ("Scenario commands"); the model itself lives in src/vm.
//
// State per machine (MmuState, made by reset_models() after boot): swapper_pg_dir with the
// direct map (vm::KernelSpace), one TLB, the processes (vm::AddressSpace each, plus the
// user-space malloc of each, which is libc's business and so kept here with std
// containers), and the labels of user blocks. The vmalloc area follows the kernel's areas
// lazily: synced before every MMU command that walks or dumps tables.
//
// Family mmu of the command table: one handler per command (mmu_spawn ... mmu_tlb), each
// called once mmu_enter has passed (the model is there, its kernel tables synced: the
// interpreter's dispatch calls it for the family, command_table.h's family_needs), and the
// table at the end of the file.
//
// Depends on: kernel/, kernel/machine_frames.h, vm/, scenario/expr.h, fmt, the C++ library.
// Invariants: every frame a process's tables or pages use comes from the machine's page
// allocator (PG_pgtable, PG_process) and goes back at exit; user blocks' labels name live
// blocks of live processes.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "base/text.h"
#include "kernel/machine_frames.h"
#include "scenario/command_table.h"
#include "scenario/expr.h"
#include "scenario/scenario.h"
#include "scenario/script_args.h"
#include "vm/address_space.h"
#include "vm/kernel_space.h"
#include "vm/ptdump.h"
#include "vm/walk.h"

namespace kmm::scenario {
namespace {

constexpr std::uint64_t k4K = 4096;
constexpr std::uint64_t kChunkHeader = 16;  // malloc's per-chunk header (glibc-like)

// A label that cannot be mistaken for the kernel's address space.
bool label_ok_mmu(const std::string& s) {
  return s != "kernel" && label_ok(s);
}

// An unsigned 64-bit number: 0x... or decimal (AArch64 kernel addresses do not fit the
// expression language's signed integers).
bool parse_u64(const std::string& t, std::uint64_t* v) {
  if (t.empty()) return false;
  std::size_t i = 0;
  unsigned base = 10;
  if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
    base = 16;
    i = 2;
  }
  std::uint64_t x = 0;
  for (; i < t.size(); ++i) {
    const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(t[i])));
    unsigned d;
    if (c >= '0' && c <= '9')
      d = static_cast<unsigned>(c - '0');
    else if (base == 16 && c >= 'a' && c <= 'f')
      d = static_cast<unsigned>(c - 'a' + 10);
    else
      return false;
    if (x > (~std::uint64_t{0} - d) / base) return false;
    x = x * base + d;
  }
  *v = x;
  return true;
}

enum class MallocKind { kBrk, kSimple, kHeap };

struct UserBlock {
  std::string proc;
  std::uint64_t addr = 0;   // what the program sees
  std::uint64_t size = 0;   // bytes asked
  std::uint64_t chunk = 0;  // malloc: chunk start (header); mmap: == addr
  std::uint64_t chunk_size = 0;
  bool is_mmap = false;  // an mmap (or a malloc=simple block, which is one)
};

struct Proc {
  std::unique_ptr<vm::AddressSpace> as;
  MallocKind malloc = MallocKind::kBrk;
  std::uint64_t heap_size = 0;                         // malloc=heap
  std::map<std::uint64_t, std::uint64_t> free_chunks;  // start -> size, inside [brk_start, brk)
};

}  // namespace

struct MmuState {
  explicit MmuState(Kernel* k) : kernel(k), tables(k, PG_pgtable), data(k, PG_process), vpages(k) {}
  ~MmuState() {
    for (auto& [name, p] : procs) p.as->destroy(&tlb);
    ks.destroy();
  }
  MmuState(const MmuState&) = delete;
  MmuState& operator=(const MmuState&) = delete;

  Kernel* kernel;
  KernelFrameSource tables;
  KernelFrameSource data;
  KernelVmallocPages vpages;
  vm::KernelSpace ks;
  vm::Tlb tlb;
  std::map<std::string, Proc> procs;
  std::map<std::string, UserBlock> blocks;
  std::string init_error;
  bool have_last = false;
  std::uint64_t last_va = 0;
  phys_addr_t last_pa = 0;

  unsigned va_digits() const { return ks.config().format == vm::Format::kArmv7Short ? 8 : 16; }
  std::string hx(std::uint64_t v) const { return fmt::format("0x{:0{}x}", v, va_digits()); }
  std::string sync() {
    vm::SyncStats st;
    vm::VmError e = ks.sync_vmalloc(vpages, &tlb, &st);
    if (e != vm::VmError::kOk) return fmt::format("vmalloc area: could not map every page: {}", vm::vm_error_name(e));
    return "";
  }
  std::uint16_t free_asid() const {
    const unsigned max = ks.config().format == vm::Format::kArmv7Short ? 255 : 65535;
    for (unsigned a = 1; a <= max; ++a) {
      bool used = false;
      for (auto& [n, p] : procs) used = used || p.as->asid() == a;
      if (!used) return static_cast<std::uint16_t>(a);
    }
    return 0;
  }
};

void ModelDeleter::operator()(MmuState* s) const {
  delete s;
}

std::string Scenario::mmu_invariants() {
  if (mmu_ == nullptr) return "";
  MmuState& m = *mmu_;
  if (!m.ks.initialised()) return "";
  if (std::string e = m.sync(); !e.empty()) return e;
  StackText<256> why;
  if (!m.ks.check_invariants(&why) || !m.ks.check_vmalloc(m.vpages, &why)) return why.data();
  for (auto& [name, p] : m.procs) {
    why.clear();
    if (!p.as->check_invariants(&why)) return "process " + name + ": " + why.data();
  }
  if (!m.tlb.check_invariants()) return "TLB: its sets, ways or entries disagree";
  return "";
}

std::string mmu_boot_config(BootConfig* cfg, bool page_offset_given) {
  if (cfg->pt == PtFormat::kAarch64) {
    if (!page_offset_given) cfg->page_offset = vm::kAarch64PageOffset;
    if (cfg->page_offset < vm::kAarch64PageOffset || cfg->page_offset % (2u << 20) != 0)
      return fmt::format("pt=aarch64 wants page_offset in the TTBR1 half, 2M aligned (e.g. 0x{:x}), not 0x{:x}",
                         vm::kAarch64PageOffset, cfg->page_offset);
    if (cfg->phys_offset + cfg->ram_bytes > (std::uint64_t{1} << 48))
      return "pt=aarch64: RAM above 48-bit physical addresses";
    if (cfg->page_offset + cfg->ram_bytes < cfg->page_offset)
      return fmt::format(
          "pt=aarch64: a direct map of {} bytes from page_offset 0x{:x} wraps past the top of the "
          "address space",
          cfg->ram_bytes, cfg->page_offset);
  } else {
    if (cfg->page_offset >= (std::uint64_t{1} << 32))
      return fmt::format("pt=armv7 is a 32-bit MMU: page_offset 0x{:x} is above 4G", cfg->page_offset);
    // TASK_SIZE is page_offset - 16M, and user space needs its text, heap and the 128M below
    // mmap_base: 256M at least (with 16M, TASK_SIZE was 0 and every spawn failed).
    if (cfg->page_offset % (16u << 20) != 0 || cfg->page_offset < (256u << 20))
      return fmt::format(
          "pt=armv7 wants page_offset on a 16M boundary, 0x10000000 or above (0xC0000000, 0x80000000, "
          "0x40000000), not 0x{:x}",
          cfg->page_offset);
    if (cfg->phys_offset % (16u << 10) != 0)
      return "phys_offset must be 16K aligned for pt=armv7 (the first-level table is 16K aligned)";
    if (cfg->phys_offset + cfg->ram_bytes > (std::uint64_t{1} << 32)) return "pt=armv7: RAM above 4G physical";
  }
  return "";
}

void Scenario::reset_models() {
  ++models_gen_;
  mmu_.reset();
  nommu_.reset();
  if (kernel_ == nullptr) return;
  if (!kernel_->config().mmu) return;
  mmu_.reset(new MmuState(kernel_));
  MmuState& m = *mmu_;
  const BootConfig& c = kernel_->config();
  vm::KernelSpaceConfig kc;
  kc.format = c.pt == PtFormat::kArmv7 ? vm::Format::kArmv7Short : vm::Format::kAarch64Gran4k;
  kc.page_offset = c.page_offset;
  kc.phys_offset = kernel_->phys().phys_offset();
  kc.ram_bytes = kernel_->phys().size();
  kc.vmalloc_start = kernel_->vmalloc_space().start();
  kc.vmalloc_end = kernel_->vmalloc_space().end();
  vm::VmError e = m.ks.init(&m.tables, kc);
  if (e != vm::VmError::kOk) {
    m.init_error = fmt::format("no kernel page tables: {}", vm::vm_error_name(e));
    out_ << "MMU: " << m.init_error << "\n";
    return;
  }
  vm::TlbConfig tc;
  tc.entries = c.tlb_entries;
  tc.ways = c.tlb_ways;
  if (!m.tlb.configure(tc)) {
    out_ << fmt::format("MMU: tlb={} tlb_ways={} is not a valid geometry; using 64 entries, fully associative\n",
                        c.tlb_entries, c.tlb_ways);
    m.tlb.configure(vm::TlbConfig{});
  }
}

namespace {

const char* access_word(vm::AccessType a) {
  return a == vm::AccessType::kRead ? "read" : a == vm::AccessType::kWrite ? "write" : "exec";
}

std::string page_flags_text(std::uint32_t f) {
  static const std::pair<std::uint32_t, const char*> names[] = {{PG_reserved, "reserved"},
                                                                {PG_buddy, "buddy"},
                                                                {PG_slab, "slab"},
                                                                {PG_head, "head"},
                                                                {PG_tail, "tail"},
                                                                {PG_large, "large"},
                                                                {PG_pages, "pages"},
                                                                {PG_vmalloc, "vmalloc"},
                                                                {PG_process, "process"},
                                                                {PG_pgtable, "pgtable"},
                                                                {PG_offslab_owners, "offslab_owners"}};
  std::string s;
  for (auto& [bit, name] : names)
    if ((f & bit) != 0) s += (s.empty() ? "" : "|") + std::string(name);
  return s.empty() ? "none" : s;
}

bool parse_access(const std::string& w, vm::AccessType* a) {
  if (w == "read" || w == "r")
    *a = vm::AccessType::kRead;
  else if (w == "write" || w == "w")
    *a = vm::AccessType::kWrite;
  else if (w == "exec" || w == "x")
    *a = vm::AccessType::kExec;
  else
    return false;
  return true;
}

bool parse_prot(const std::string& s, std::uint8_t* prot) {
  if (s == "none") {
    *prot = vm::kProtNone;
    return true;
  }
  std::uint8_t p = 0;
  for (char c : s) {
    if (c == 'r')
      p |= vm::kProtRead;
    else if (c == 'w')
      p |= vm::kProtWrite;
    else if (c == 'x')
      p |= vm::kProtExec;
    else if (c != '-')
      return false;
  }
  *prot = p;
  return p != 0;
}

Proc* find_proc(MmuState& m, const std::string& name) {
  auto it = m.procs.find(name);
  return it == m.procs.end() ? nullptr : &it->second;
}

// `... as LABEL` anywhere from args[from] on.
bool take_label(const std::vector<std::string>& args, std::size_t from, std::string* label) {
  for (std::size_t i = from; i + 1 < args.size(); ++i) {
    if (args[i] == "as") {
      *label = args[i + 1];
      return true;
    }
  }
  return false;
}

// The struct page line of `translate` and `chain`.
std::string page_line(Kernel& k, const MmuState& m, phys_addr_t pa) {
  const pfn_t pfn = PhysMem::phys_to_pfn(pa);
  if (!k.phys().pfn_valid(pfn)) return fmt::format("  PFN 0x{:x} is not RAM (no page descriptor)\n", pfn);
  Page* pg = k.phys().pfn_to_page(pfn);
  std::string owner;
  if (pg->is(PG_large | PG_pages) && pg->owner != kOwnerFree) {
    const Module* mod = k.modules().module(pg->owner);
    owner = pg->owner == kOwnerKernel ? ", owner kernel" : mod != nullptr ? fmt::format(", owner {}", mod->name) : "";
  }
  return fmt::format("  page: mem_map[0x{:x}] at {} flags {}{} refcount {}\n", pfn - k.phys().base_pfn(),
                     m.hx(k.kva(pg)), page_flags_text(pg->get_flags()), owner, pg->refcount);
}

// mmap/malloc share the block bookkeeping: writing a chunk's header touches its page.
bool touch_header(MmuState& m, Proc& p, std::uint64_t va) {
  vm::AccessResult r = p.as->access(va, vm::AccessType::kWrite, vm::Privilege::kUser, m.tlb);
  return r.outcome == vm::AccessOutcome::kOk || r.outcome == vm::AccessOutcome::kDemandPaged;
}

}  // namespace

// What dispatch does before every MMU command (and `cat` of the model's views): the model must be there (else, as for a
// name the machine does not run, "unknown command"), with its kernel page tables; then the vmalloc area is synced into
// them. nullopt: go on.
std::optional<LineStatus> Scenario::mmu_enter(const CommandCall& c) {
  if (!mmu_) return script_error(c.where, unknown_command_error(c.a[0], true));
  MmuState& m = *mmu_;
  if (!m.init_error.empty()) return script_error(c.where, "the MMU model is not available: " + m.init_error);
  std::string e = m.sync();
  if (!e.empty()) out_ << e << "\n";
  return std::nullopt;
}

// An address argument: a number, or any expression (addr.LABEL+0x12, $x).
std::optional<LineStatus> Scenario::mmu_address(const std::string& where, const std::string& text, std::uint64_t* v) {
  if (parse_u64(text, v)) return std::nullopt;
  ExprResult r = evaluate(text, vars_, [this](const std::string& p, std::string* e) { return value(p, e); });
  if (!r.ok) return script_error(where, "bad address '" + text + "': " + r.error);
  *v = static_cast<std::uint64_t>(r.value);
  return std::nullopt;
}

// `cat PATH` of the MMU model's views: kernel_page_tables, /proc/tlb, /proc/PID/maps; nullopt
// for a path it does not have (the caller says "no such file").
std::optional<LineStatus> Scenario::mmu_view(const CommandCall& c) {
  if (!mmu_) return std::nullopt;
  if (auto r = mmu_enter(c)) return r;
  const Args& a = c.a;
  const std::string& where = c.where;
  MmuState& m = *mmu_;
  const std::string& path = a[1];
  if (path == "/sys/kernel/debug/kernel_page_tables") {
    const vm::KernelSpaceConfig& kc = m.ks.config();
    std::vector<vm::PtdumpMarker> marks;
    if (kc.format == vm::Format::kArmv7Short) {
      marks = {
          {kc.page_offset, "Kernel Mapping"}, {kc.vmalloc_start, "vmalloc() Area"}, {kc.vmalloc_end, "vmalloc() End"}};
    } else {
      marks = {{kc.page_offset, "Linear Mapping start"},
               {kc.page_offset + kc.ram_bytes, "Linear Mapping end"},
               {kc.vmalloc_start, "vmalloc() area"},
               {kc.vmalloc_end, "vmalloc() end"}};
    }
    std::vector<char> buf(1 << 16);
    for (;;) {
      TextSink sink(buf.data(), buf.size());
      vm::ptdump(m.ks.pgd(), m.ks.kernel_base(), 0, marks.data(), static_cast<unsigned>(marks.size()), sink);
      if (!sink.truncated()) {
        out_ << sink.data();
        break;
      }
      buf.resize(sink.wanted() + 1);
    }
    return LineStatus::kOk;
  }
  if (path == "/proc/tlb") {
    std::vector<char> buf(1 << 16);
    TextSink sink(buf.data(), buf.size());
    m.tlb.print_stats(sink);
    m.tlb.print_entries(sink);
    out_ << sink.data();
    return LineStatus::kOk;
  }
  if (path.rfind("/proc/", 0) == 0 && path.size() > 11 && path.compare(path.size() - 5, 5, "/maps") == 0) {
    std::string name = path.substr(6, path.size() - 11);
    Proc* p = find_proc(m, name);
    if (p == nullptr) return script_error(where, "no such file: " + path + " (no process " + name + ")");
    for (unsigned i = 0; i < p->as->nr_vmas(); ++i) {
      const vm::Vma& v = p->as->vma(i);
      std::string head =
          fmt::format("{:08x}-{:08x} {}{}{}p {:08x} 00:00 0", v.start, v.end, (v.prot & vm::kProtRead) ? 'r' : '-',
                      (v.prot & vm::kProtWrite) ? 'w' : '-', (v.prot & vm::kProtExec) ? 'x' : '-', 0);
      std::string name_col = v.kind == vm::VmaKind::kText    ? "/bin/" + name
                             : v.kind == vm::VmaKind::kHeap  ? "[heap]"
                             : v.kind == vm::VmaKind::kStack ? "[stack]"
                                                             : "";
      if (!name_col.empty()) head += std::string(head.size() < 73 ? 73 - head.size() : 1, ' ') + name_col;
      out_ << head << "\n";
    }
    return LineStatus::kOk;
  }
  return std::nullopt;
}

LineStatus Scenario::mmu_spawn(const CommandCall& c) {
  const Args& a = c.a;
  const std::string& where = c.where;
  MmuState& m = *mmu_;
  if (a.size() < 2 || !label_ok_mmu(a[1])) return script_error(where, command_usage("spawn", CommandFamily::kMmu));
  if (m.procs.count(a[1]) != 0) return script_error(where, "process " + a[1] + " exists already");
  Proc p;
  for (std::size_t i = 2; i < a.size(); ++i) {
    std::int64_t n;
    if (a[i] == "malloc=brk")
      p.malloc = MallocKind::kBrk;
    else if (a[i] == "malloc=simple")
      p.malloc = MallocKind::kSimple;
    else if (a[i] == "malloc=heap")
      p.malloc = MallocKind::kHeap;
    else if (a[i].rfind("heap=", 0) == 0 && parse_number(a[i].substr(5), &n) && n > 0)
      p.heap_size = static_cast<std::uint64_t>(n);
    else if (a[i].rfind("malloc=", 0) == 0)
      return script_error(where,
                          "on an MMU machine malloc= takes brk, simple or heap (smalloc is a NOMMU library), not '" +
                              a[i].substr(7) + "'");
    else
      return script_error(where, "bad spawn option '" + a[i] + "'");
  }
  // heap= sizes malloc=heap's fixed heap and nothing else here: with brk (which grows) or
  // simple it was read and ignored. (On mmu=off it implies malloc=heap, as uClinux's
  // fixed-heap programs: an MMU machine's default is brk, so it is not implied.)
  if (p.heap_size != 0 && p.malloc != MallocKind::kHeap)
    return script_error(where,
                        fmt::format("spawn {}: heap= is the size of the fixed heap of malloc=heap; with malloc={} "
                                    "it means nothing (give malloc=heap too)",
                                    a[1], p.malloc == MallocKind::kBrk ? "brk (the default)" : "simple"));
  if (p.malloc == MallocKind::kHeap && p.heap_size == 0) p.heap_size = 128 * 1024;
  std::uint16_t asid = m.free_asid();
  if (asid == 0) {
    failed("spawn: out of ASIDs");
    return LineStatus::kOk;
  }
  p.as = std::make_unique<vm::AddressSpace>();
  vm::MmError e = p.as->init(&m.tables, &m.data, &m.ks, asid);
  if (e != vm::MmError::kOk) {
    failed(fmt::format("spawn {}: {}", a[1], vm::mm_error_name(e)));
    return LineStatus::kOk;
  }
  if (p.malloc == MallocKind::kHeap) {
    e = p.as->brk(p.as->brk_start() + p.heap_size, &m.tlb);
    if (e != vm::MmError::kOk) {
      p.as->destroy(&m.tlb);
      failed(fmt::format("spawn {}: heap of {}: {}", a[1], kb(p.heap_size), vm::mm_error_name(e)));
      return LineStatus::kOk;
    }
    p.free_chunks[p.as->brk_start()] = p.heap_size;
  }
  out_ << fmt::format(
      "{}: ASID {}, {} at 0x{:x}, {} of page tables{}\n", a[1], asid,
      m.ks.config().format == vm::Format::kArmv7Short ? "TTBR0" : "TTBR0 (TTBR1 shared with the kernel)",
      p.as->pgd().root(0), kb(p.as->table_frames() * k4K),
      p.malloc == MallocKind::kHeap ? fmt::format(", fixed heap of {}", kb(p.heap_size)) : "");
  m.procs.emplace(a[1], std::move(p));
  return LineStatus::kOk;
}

LineStatus Scenario::mmu_exit(const CommandCall& c) {
  const Args& a = c.a;
  const std::string& where = c.where;
  MmuState& m = *mmu_;
  if (a.size() != 2) return script_error(where, command_usage("exit", CommandFamily::kMmu));
  Proc* p = find_proc(m, a[1]);
  if (p == nullptr) return script_error(where, "no process " + a[1]);
  std::uint64_t data = p->as->data_frames(), tables = p->as->table_frames();
  p->as->destroy(&m.tlb);
  m.procs.erase(a[1]);
  for (auto it = m.blocks.begin(); it != m.blocks.end();)
    it = it->second.proc == a[1] ? m.blocks.erase(it) : std::next(it);
  out_ << fmt::format("{} exited: freed {} pages ({} of data, {} of page tables), {}\n", a[1], data + tables, data,
                      tables, kb((data + tables) * k4K));
  return LineStatus::kOk;
}

LineStatus Scenario::mmu_mmap(const CommandCall& c) {
  const Args& a = c.a;
  const std::string& where = c.where;
  MmuState& m = *mmu_;
  std::string usage = command_usage("mmap");
  if (a.size() < 3) return script_error(where, usage);
  Proc* p = find_proc(m, a[1]);
  if (p == nullptr) return script_error(where, "no process " + a[1]);
  std::int64_t size;
  if (!parse_number(a[2], &size) || size <= 0) return script_error(where, "bad size '" + a[2] + "'");
  std::uint8_t prot = vm::kProtRead | vm::kProtWrite;
  std::uint64_t at = 0;
  std::string label;
  for (std::size_t i = 3; i < a.size(); ++i) {
    if (a[i].rfind("prot=", 0) == 0) {
      if (!parse_prot(a[i].substr(5), &prot))
        return script_error(where, "bad prot '" + a[i].substr(5) + "' (r, rw, rx, rwx, none)");
    } else if (a[i].rfind("at=", 0) == 0) {
      if (auto r = mmu_address(where, a[i].substr(3), &at)) return *r;
    } else if (a[i] == "as" && i + 1 < a.size() && label_ok_mmu(a[i + 1])) {
      label = a[++i];
    } else {
      return script_error(where, usage);
    }
  }
  if (at % k4K != 0) {
    failed(fmt::format("mmap: address {} is not page aligned (EINVAL)", m.hx(at)));
    return LineStatus::kOk;
  }
  std::uint64_t addr = 0;
  vm::MmError e = p->as->mmap(static_cast<std::uint64_t>(size), prot, vm::VmaKind::kAnon, at, &addr);
  if (e != vm::MmError::kOk) {
    failed(fmt::format("mmap({}) in {} failed: {}", size, a[1], vm::mm_error_name(e)));
    return LineStatus::kOk;
  }
  out_ << fmt::format("{}: mmap({}) = {} (no frames yet)\n", a[1], size, m.hx(addr));
  if (!label.empty())
    m.blocks[label] = UserBlock{
        a[1], addr, static_cast<std::uint64_t>(size), addr, (static_cast<std::uint64_t>(size) + k4K - 1) & ~(k4K - 1),
        true};
  return LineStatus::kOk;
}

LineStatus Scenario::mmu_malloc(const CommandCall& c) {
  const Args& a = c.a;
  const std::string& where = c.where;
  MmuState& m = *mmu_;
  std::string usage = command_usage("malloc", CommandFamily::kMmu);
  if (a.size() != 3 && a.size() != 5) return script_error(where, usage);
  std::string label;
  if (a.size() == 5 && (!take_label(a, 3, &label) || !label_ok_mmu(label))) return script_error(where, usage);
  Proc* p = find_proc(m, a[1]);
  if (p == nullptr) return script_error(where, "no process " + a[1]);
  std::int64_t size;
  if (!parse_number(a[2], &size) || size < 0) return script_error(where, "bad size '" + a[2] + "'");
  const std::uint64_t need =
      std::max<std::uint64_t>(32, (static_cast<std::uint64_t>(size) + kChunkHeader + 15) & ~std::uint64_t{15});
  UserBlock b{a[1], 0, static_cast<std::uint64_t>(size), 0, need, false};
  if (p->malloc == MallocKind::kSimple) {
    std::uint64_t addr = 0;
    vm::MmError e = p->as->mmap(need, vm::kProtRead | vm::kProtWrite, vm::VmaKind::kAnon, 0, &addr);
    if (e != vm::MmError::kOk) {
      failed(fmt::format("malloc({}) in {} failed: mmap: {}", size, a[1], vm::mm_error_name(e)));
      return LineStatus::kOk;
    }
    b.chunk = addr;
    b.chunk_size = (need + k4K - 1) & ~(k4K - 1);
    b.is_mmap = true;
  } else {
    // First fit among free chunks; else extend the break (malloc=brk) from the top.
    auto fit =
        std::find_if(p->free_chunks.begin(), p->free_chunks.end(), [&](auto& chunk) { return chunk.second >= need; });
    if (fit == p->free_chunks.end()) {
      if (p->malloc == MallocKind::kHeap) {
        failed(fmt::format("malloc({}) in {} failed: the fixed heap of {} has no free chunk of {} bytes", size, a[1],
                           kb(p->heap_size), need));
        return LineStatus::kOk;
      }
      std::uint64_t top = p->as->brk_end();
      std::uint64_t start = top;
      if (!p->free_chunks.empty()) {
        auto last = std::prev(p->free_chunks.end());
        if (last->first + last->second == top) start = last->first;
      }
      vm::MmError e = p->as->brk(start + need, &m.tlb);
      if (e != vm::MmError::kOk) {
        failed(fmt::format("malloc({}) in {} failed: brk: {}", size, a[1], vm::mm_error_name(e)));
        return LineStatus::kOk;
      }
      if (start != top) p->free_chunks.erase(start);
      p->free_chunks[start] = need;
      fit = p->free_chunks.find(start);
    }
    b.chunk = fit->first;
    std::uint64_t left = fit->second - need;
    p->free_chunks.erase(fit);
    if (left >= 32)
      p->free_chunks[b.chunk + need] = left;
    else
      b.chunk_size = need + left;
  }
  b.addr = b.chunk + kChunkHeader;
  if (!touch_header(m, *p, b.chunk)) {
    failed(fmt::format("malloc({}) in {}: writing the chunk header faulted (out of memory?)", size, a[1]));
  }
  out_ << fmt::format("{}: malloc({}) = {}{}\n", a[1], size, m.hx(b.addr),
                      p->malloc == MallocKind::kBrk ? fmt::format(" (brk {})", m.hx(p->as->brk_end())) : "");
  if (!label.empty()) m.blocks[label] = b;
  return LineStatus::kOk;
}

LineStatus Scenario::mmu_free(const CommandCall& c) {
  const Args& a = c.a;
  const std::string& cmd = c.a[0];
  const std::string& where = c.where;
  MmuState& m = *mmu_;
  if (a.size() != 2) return script_error(where, command_usage(cmd, CommandFamily::kMmu));
  auto it = m.blocks.find(a[1]);
  if (it == m.blocks.end()) return script_error(where, "no user block labelled '" + a[1] + "'");
  UserBlock b = it->second;
  m.blocks.erase(it);
  Proc* p = find_proc(m, b.proc);
  if (p == nullptr) return LineStatus::kOk;
  if (b.is_mmap) {
    vm::MmError e = p->as->munmap(b.chunk, b.chunk_size, &m.tlb);
    if (e != vm::MmError::kOk) failed(fmt::format("{} {}: {}", cmd, a[1], vm::mm_error_name(e)));
    return LineStatus::kOk;
  }
  if (cmd == "munmap") return script_error(where, a[1] + " is a malloc block: use free");
  // Coalesce with free neighbours; a free chunk at the top shrinks the break (malloc=brk).
  std::uint64_t start = b.chunk, size = b.chunk_size;
  auto next = p->free_chunks.lower_bound(start);
  if (next != p->free_chunks.end() && next->first == start + size) {
    size += next->second;
    next = p->free_chunks.erase(next);
  }
  if (next != p->free_chunks.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == start) {
      start = prev->first;
      size += prev->second;
      p->free_chunks.erase(prev);
    }
  }
  if (p->malloc == MallocKind::kBrk && start + size == p->as->brk_end()) {
    (void)p->as->brk(start, &m.tlb);
    out_ << fmt::format("{}: brk shrinks to {}\n", b.proc, m.hx(p->as->brk_end()));
  } else {
    p->free_chunks[start] = size;
  }
  return LineStatus::kOk;
}

LineStatus Scenario::mmu_touch(const CommandCall& c) {
  const Args& a = c.a;
  const std::string& where = c.where;
  MmuState& m = *mmu_;
  std::string usage = command_usage("touch");
  if (a.size() < 3) return script_error(where, usage);
  Proc* p = find_proc(m, a[1]);
  if (p == nullptr) return script_error(where, "no process " + a[1]);
  std::uint64_t va;
  if (auto r = mmu_address(where, a[2], &va)) return *r;
  vm::AccessType acc = vm::AccessType::kRead;
  vm::Privilege priv = vm::Privilege::kUser;
  std::uint64_t len = 0;
  for (std::size_t i = 3; i < a.size(); ++i) {
    std::int64_t n;
    if (parse_access(a[i], &acc)) continue;
    if (a[i] == "kernel")
      priv = vm::Privilege::kKernel;
    else if (a[i] == "user")
      priv = vm::Privilege::kUser;
    else if (a[i].rfind("len=", 0) == 0 && parse_number(a[i].substr(4), &n) && n > 0)
      len = static_cast<std::uint64_t>(n);
    else
      return script_error(where, usage);
  }
  // The range's last byte is an address too: one past the top of the address space (2^64,
  // or 2^32 on ARMv7) is no range, and was walked from the top as if it wrapped to 0.
  const bool armv7 = m.ks.config().format == vm::Format::kArmv7Short;
  const std::uint64_t top = armv7 ? std::uint64_t{1} << 32 : 0;  // 0: 2^64
  const std::uint64_t last = va + (len != 0 ? len - 1 : 0);
  if (last < va || (top != 0 && last >= top)) {
    failed(fmt::format("touch {}: {}..+{} is not a range of {} addresses", a[1], m.hx(va), len,
                       armv7 ? "32-bit (ARMv7)" : "64-bit"));
    return LineStatus::kOk;
  }
  if (len != 0) {
    std::uint64_t pages = 0, faults = 0, hits = m.tlb.stats().hits;
    for (std::uint64_t x = va;; x = (x & ~(k4K - 1)) + k4K) {
      vm::AccessResult r = p->as->access(x, acc, priv, m.tlb);
      if (r.outcome != vm::AccessOutcome::kOk && r.outcome != vm::AccessOutcome::kDemandPaged) {
        failed(fmt::format("touch {}: {} at {} after {} pages: {}", a[1],
                           r.outcome == vm::AccessOutcome::kNoMemory ? "out of memory" : "SIGSEGV", m.hx(x), pages,
                           r.why ? r.why : "fault"));
        return LineStatus::kOk;
      }
      ++pages;
      if (r.outcome == vm::AccessOutcome::kDemandPaged) ++faults;
      if ((x | (k4K - 1)) >= last) break;  // x's page holds the last byte (the top page too)
    }
    out_ << fmt::format("{}: {} {} pages {}..{}: {} page faults (zeroed frames), {} TLB hits\n", a[1], access_word(acc),
                        pages, m.hx(va), m.hx(last), faults, m.tlb.stats().hits - hits);
    return LineStatus::kOk;
  }
  vm::AccessResult r = p->as->access(va, acc, priv, m.tlb);
  StackText<4096> t;
  const char* who = priv == vm::Privilege::kUser ? "user" : "kernel";
  switch (r.outcome) {
    case vm::AccessOutcome::kOk:
      out_ << fmt::format("{} {} {}: {} -> PA 0x{:x} (PFN 0x{:x})\n", a[1], who, access_word(acc), m.hx(va), r.walk.pa,
                          r.walk.pa >> 12);
      break;
    case vm::AccessOutcome::kDemandPaged: {
      const vm::Vma* v = p->as->find_vma(va);
      out_ << fmt::format(
          "page fault at {} ({} {}): {} at level {} -> VMA {}-{}: zeroed frame PFN 0x{:x} mapped at {}\n", m.hx(va),
          who, access_word(acc), vm::fault_name(r.fault.fault), r.fault.fault_level, m.hx(v->start), m.hx(v->end),
          r.frame >> 12, m.hx(va & ~(k4K - 1)));
      out_ << fmt::format("{} {} {}: {} -> PA 0x{:x} (PFN 0x{:x})\n", a[1], who, access_word(acc), m.hx(va), r.walk.pa,
                          r.walk.pa >> 12);
      break;
    }
    default:
      vm::print_walk(r.fault, t);
      out_ << t.data();
      failed(fmt::format("{}: {} at {} ({} {}): {}", a[1],
                         r.outcome == vm::AccessOutcome::kNoMemory ? "out of memory" : "SIGSEGV", m.hx(va), who,
                         access_word(acc), r.why ? r.why : "fault"));
      return LineStatus::kOk;
  }
  m.have_last = true;
  m.last_va = va;
  m.last_pa = r.walk.pa;
  return LineStatus::kOk;
}

LineStatus Scenario::mmu_translate(const CommandCall& c) {
  const Args& a = c.a;
  const std::string& where = c.where;
  MmuState& m = *mmu_;
  Kernel& k = *kernel_;
  std::string usage = command_usage("translate");
  if (a.size() < 3) return script_error(where, usage);
  Proc* p = nullptr;
  if (a[1] != "kernel" && (p = find_proc(m, a[1])) == nullptr)
    return script_error(where, "no process " + a[1] + " (or say kernel)");
  std::uint64_t va;
  if (auto r = mmu_address(where, a[2], &va)) return *r;
  vm::AccessType acc = vm::AccessType::kRead;
  vm::Privilege priv = p != nullptr ? vm::Privilege::kUser : vm::Privilege::kKernel;
  for (std::size_t i = 3; i < a.size(); ++i) {
    if (parse_access(a[i], &acc)) continue;
    if (a[i] == "kernel")
      priv = vm::Privilege::kKernel;
    else if (a[i] == "user")
      priv = vm::Privilege::kUser;
    else
      return script_error(where, usage);
  }
  const bool armv7 = m.ks.config().format == vm::Format::kArmv7Short;
  if (armv7 && va >= (std::uint64_t{1} << 32)) {
    failed(fmt::format("translate: {} is not a 32-bit address (ARMv7)", fmt::format("0x{:x}", va)));
    return LineStatus::kOk;
  }
  if (p != nullptr) p->as->sync_kernel();
  const vm::PageTable& pt = p != nullptr ? p->as->pgd() : m.ks.pgd();
  const std::uint16_t asid = p != nullptr ? p->as->asid() : 0;
  vm::Walk w = vm::translate_cached(pt, m.tlb, va, acc, priv, asid);
  StackText<4096> t;
  vm::print_walk(w, t);
  out_ << t.data();
  if (!w.tlb_hit) out_ << fmt::format("  TLB miss (ASID {}): walked{}\n", asid, w.ok() ? ", entry filled" : "");
  if (w.ok()) {
    out_ << page_line(k, m, w.pa);
    m.have_last = true;
    m.last_va = va;
    m.last_pa = w.pa;
    return LineStatus::kOk;
  }
  std::string why = vm::fault_name(w.fault);
  const vm::KernelSpaceConfig& kc = m.ks.config();
  if (priv == vm::Privilege::kUser && va >= m.ks.kernel_base())
    why = fmt::format("user access to kernel space (VA >= {} {})", armv7 ? "PAGE_OFFSET" : "the TTBR1 half",
                      m.hx(m.ks.kernel_base()));
  else if (p != nullptr && va < p->as->layout().task_size && p->as->find_vma(va) == nullptr)
    why = "no VMA covers the address: SIGSEGV";
  else if (p != nullptr && va < p->as->layout().task_size && w.fault == vm::FaultKind::kTranslation)
    why = "not present yet: the first touch would page it in";
  else if (p == nullptr && va >= kc.vmalloc_start && va < kc.vmalloc_end)
    why = "no vmalloc area maps this page";
  failed(fmt::format("fault: {}", why));
  return LineStatus::kOk;
}

LineStatus Scenario::mmu_chain(const CommandCall& c) {
  const Args& a = c.a;
  const std::string& where = c.where;
  MmuState& m = *mmu_;
  Kernel& k = *kernel_;
  std::string usage = command_usage("chain");
  if (a.size() != 2 && a.size() != 3) return script_error(where, usage);
  Proc* p = nullptr;
  if (a.size() == 3 && a[1] != "kernel" && (p = find_proc(m, a[1])) == nullptr)
    return script_error(where, "no process " + a[1]);
  std::uint64_t va;
  if (auto r = mmu_address(where, a.back(), &va)) return *r;
  const vm::KernelSpaceConfig& kc = m.ks.config();
  phys_addr_t pa = 0;
  if (p == nullptr && m.ks.virt_to_phys(va, &pa)) {
    out_ << fmt::format(
        "virt_to_phys({}) = {} - PAGE_OFFSET {} + PHYS_OFFSET 0x{:x} = 0x{:x}   (direct map: arithmetic, no walk)\n",
        m.hx(va), m.hx(va), m.hx(kc.page_offset), kc.phys_offset, pa);
  } else {
    if (p != nullptr) p->as->sync_kernel();
    const vm::PageTable& pt = p != nullptr ? p->as->pgd() : m.ks.pgd();
    vm::Walk w = pt.translate(va, vm::AccessType::kRead, vm::Privilege::kKernel);
    if (!w.ok()) {
      failed(fmt::format("chain: {} is not mapped ({} at level {})", m.hx(va), vm::fault_name(w.fault), w.fault_level));
      return LineStatus::kOk;
    }
    pa = w.pa;
    out_ << fmt::format("walk({}) = 0x{:x}   (not in the direct map: the page tables say where; {} steps)\n", m.hx(va),
                        pa, w.nsteps);
  }
  const pfn_t pfn = PhysMem::phys_to_pfn(pa);
  out_ << fmt::format("phys_to_pfn(0x{:x}) = 0x{:x} >> 12 = 0x{:x}   (frame 0x{:x}, offset 0x{:03x})\n", pa, pa, pfn,
                      pfn, pa & 0xFFF);
  if (!k.phys().pfn_valid(pfn)) {
    failed(fmt::format("chain: PFN 0x{:x} is outside RAM (no page descriptor)", pfn));
    return LineStatus::kOk;
  }
  Page* pg = k.phys().pfn_to_page(pfn);
  out_ << fmt::format("pfn_to_page(0x{:x}) = &mem_map[0x{:x} - 0x{:x}] = {}   (struct page, {} bytes each)\n", pfn, pfn,
                      k.phys().base_pfn(), m.hx(k.kva(pg)), sizeof(Page));
  out_ << page_line(k, m, pa);
  out_ << fmt::format("page_to_pfn({}) = ({} - mem_map {}) / {} + 0x{:x} = 0x{:x}\n", m.hx(k.kva(pg)), m.hx(k.kva(pg)),
                      m.hx(k.kva(k.phys().mem_map())), sizeof(Page), k.phys().base_pfn(), k.phys().page_to_pfn(pg));
  std::uint64_t back = 0;
  m.ks.phys_to_virt(PhysMem::pfn_to_phys(pfn), &back);
  out_ << fmt::format(
      "pfn_to_phys(0x{:x}) = 0x{:x};  phys_to_virt(0x{:x}) = {} = page_to_virt; + offset 0x{:03x} = {}\n", pfn,
      PhysMem::pfn_to_phys(pfn), PhysMem::pfn_to_phys(pfn), m.hx(back), pa & 0xFFF, m.hx(back + (pa & 0xFFF)));
  m.have_last = true;
  m.last_va = va;
  m.last_pa = pa;
  return LineStatus::kOk;
}

LineStatus Scenario::mmu_tlb(const CommandCall& c) {
  const Args& a = c.a;
  const std::string& where = c.where;
  MmuState& m = *mmu_;
  if (a.size() >= 2 && a[1] == "flush") {
    if (a.size() == 2 || a[2] == "all") {
      unsigned n = m.tlb.flush_all();
      out_ << fmt::format("TLB flush all: {} entries invalidated\n", n);
    } else if (a.size() == 3) {
      Proc* p = find_proc(m, a[2]);
      if (p == nullptr) return script_error(where, "no process " + a[2]);
      unsigned n = m.tlb.flush_asid(p->as->asid());
      out_ << fmt::format("TLB flush ASID {} ({}): {} entries invalidated\n", p->as->asid(), a[2], n);
    } else {
      return script_error(where, "usage: tlb flush [PROC|all]");
    }
    return LineStatus::kOk;
  }
  if (a.size() == 1 || (a.size() == 2 && a[1] == "stats")) {
    StackText<1024> t;
    m.tlb.print_stats(t);
    out_ << t.data();
    return LineStatus::kOk;
  }
  return script_error(where, command_usage("tlb"));
}

std::span<const CommandRow> CommandTables::mmu() {
  using F = CommandFamily;
  static constexpr CommandRow kRows[] = {
      {"spawn", "spawn PROC [malloc=brk|simple|heap] [heap=SIZE]", "start a process with its own address space",
       F::kMmu, &Scenario::mmu_spawn},
      {"exit", "exit PROC", "end a process; its address space and tables go back", F::kMmu, &Scenario::mmu_exit},
      {"mmap", "mmap PROC SIZE [prot=rw|r|rx|rwx|none] [at=ADDR] [as LABEL]",
       "map anonymous memory into a process (pages come on first touch)", F::kMmu, &Scenario::mmu_mmap},
      {"munmap", "munmap LABEL", "unmap an mmap'd area", F::kMmu, &Scenario::mmu_free},
      {"malloc", "malloc PROC SIZE [as LABEL]", "allocate from the process's malloc", F::kMmu, &Scenario::mmu_malloc},
      {"free", "free LABEL", "free a malloc block", F::kMmu, &Scenario::mmu_free},
      {"touch", "touch PROC ADDR [read|write|exec] [user|kernel] [len=SIZE]",
       "access memory: demand paging, protection faults, the TLB", F::kMmu, &Scenario::mmu_touch},
      {"translate", "translate PROC|kernel VADDR [read|write|exec] [user|kernel]",
       "print each level of the page-table walk, the physical address, or the fault", F::kMmu,
       &Scenario::mmu_translate},
      {"chain", "chain [PROC|kernel] VADDR", "the address chain: virtual, physical, PFN, struct page", F::kMmu,
       &Scenario::mmu_chain},
      {"tlb", "tlb [stats] | tlb flush [PROC|all]", "the TLB's counters, or a flush", F::kMmu, &Scenario::mmu_tlb},
  };
  return kRows;
}

std::optional<std::int64_t> Scenario::value_mmu(const std::string& path, std::string* error) {
  if (!mmu_ || !mmu_->init_error.empty()) return std::nullopt;
  MmuState& m = *mmu_;
  Kernel& k = *kernel_;
  auto dot = path.find('.');
  std::string head = path.substr(0, dot);
  std::string rest = dot == std::string::npos ? "" : path.substr(dot + 1);
  auto as_int = [](std::uint64_t v) { return static_cast<std::int64_t>(v); };
  auto err = [&](const std::string& e) -> std::optional<std::int64_t> {
    *error = e;
    return std::nullopt;
  };
  if (head == "proc") {
    auto d = rest.rfind('.');
    std::string name = rest.substr(0, d), field = d == std::string::npos ? "" : rest.substr(d + 1);
    auto it = m.procs.find(name);
    if (it == m.procs.end()) return err("no process '" + name + "'");
    const vm::AddressSpace& as = *it->second.as;
    if (field == "bytes") return as_int(as.bytes());
    if (field == "rss") return as_int(as.data_frames() * k4K);
    if (field == "pagetables") return as_int(as.table_frames() * k4K);
    if (field == "faults") return as_int(as.faults());
    if (field == "vmas") return as_int(as.nr_vmas());
    if (field == "brk") return as_int(as.brk_end());
    if (field == "asid") return as_int(as.asid());
    return err("proc values are proc.NAME.bytes, .rss, .pagetables, .faults, .vmas, .brk, .asid");
  }
  if (head == "addr") {
    auto it = m.blocks.find(rest);
    if (it == m.blocks.end()) return err("no user block labelled '" + rest + "'");
    return as_int(it->second.addr);
  }
  if (head == "tlb") {
    const vm::TlbStats& s = m.tlb.stats();
    if (rest == "hits") return as_int(s.hits);
    if (rest == "misses") return as_int(s.misses);
    if (rest == "walks") return as_int(s.walks);
    if (rest == "lookups") return as_int(s.lookups);
    if (rest == "flushes") return as_int(s.flushes);
    if (rest == "entries") return as_int(m.tlb.valid_entries());
    return err("tlb values are tlb.hits, .misses, .walks, .lookups, .flushes, .entries");
  }
  if (head == "last" && (rest == "pa" || rest == "pfn" || rest == "va")) {
    if (!m.have_last) return err("no translation yet: last." + rest + " needs a translate, touch or chain before it");
    return as_int(rest == "pa" ? m.last_pa : rest == "pfn" ? m.last_pa >> 12 : m.last_va);
  }
  if (head == "vm") {
    const vm::KernelSpaceConfig& kc = m.ks.config();
    if (rest == "page_offset") return as_int(kc.page_offset);
    if (rest == "phys_offset") return as_int(kc.phys_offset);
    if (rest == "vmalloc_start") return as_int(kc.vmalloc_start);
    if (rest == "vmalloc_end") return as_int(kc.vmalloc_end);
    if (rest == "pagetables") {
      (void)m.sync();
      return as_int(m.ks.table_frames() * k4K);
    }
    if (rest == "task_size") return as_int(vm::default_layout(kc).task_size);
    return err("vm values are vm.page_offset, .phys_offset, .vmalloc_start, .vmalloc_end, .pagetables, .task_size");
  }
  static const char* const kConv[] = {"virt_to_phys", "phys_to_virt", "virt_to_pfn",  "phys_to_pfn", "pfn_to_phys",
                                      "pfn_to_virt",  "virt_to_page", "page_to_virt", "pfn_to_page", "page_to_pfn"};
  if (std::find_if(std::begin(kConv), std::end(kConv), [&](const char* c) { return head == c; }) == std::end(kConv))
    return std::nullopt;
  std::uint64_t x;
  if (!parse_u64(rest, &x)) return err(head + " takes a number: " + head + ".0xC0003012");
  const PhysMem& phys = k.phys();
  auto bad = [&](const char* what) { return err(fmt::format("{}.0x{:x}: {}", head, x, what)); };
  // Page descriptor "addresses" are the modelled kernel VAs of mem_map entries.
  auto page_va_to_pfn = [&](std::uint64_t pva, pfn_t* pfn) {
    phys_addr_t pa;
    if (!m.ks.virt_to_phys(pva, &pa)) return false;
    const phys_addr_t mm = phys.virt_to_phys(phys.mem_map());
    if (pa < mm || (pa - mm) % sizeof(Page) != 0 || (pa - mm) / sizeof(Page) >= phys.nr_pages()) return false;
    *pfn = phys.base_pfn() + static_cast<pfn_t>((pa - mm) / sizeof(Page));
    return true;
  };
  phys_addr_t pa = 0;
  std::uint64_t va = 0;
  pfn_t pfn = 0;
  if (head == "virt_to_phys" || head == "virt_to_pfn" || head == "virt_to_page") {
    if (!m.ks.virt_to_phys(x, &pa)) return bad("not in the direct map (lowmem): virt_to_phys is undefined there");
    if (head == "virt_to_phys") return as_int(pa);
    if (head == "virt_to_pfn") return as_int(pa >> 12);
    return as_int(k.kva(phys.pfn_to_page(PhysMem::phys_to_pfn(pa))));
  }
  if (head == "phys_to_virt") {
    if (!m.ks.phys_to_virt(x, &va)) return bad("not RAM");
    return as_int(va);
  }
  if (head == "phys_to_pfn") return as_int(x >> 12);
  if (head == "pfn_to_phys") return as_int(x << 12);
  if (head == "pfn_to_virt" || head == "pfn_to_page") {
    // (A PFN is 32 bits: 0x100000001 must not be taken for frame 1.)
    if (x > 0xffffffffu || !phys.pfn_valid(static_cast<pfn_t>(x))) return bad("no such frame in RAM");
    if (head == "pfn_to_page") return as_int(k.kva(phys.pfn_to_page(static_cast<pfn_t>(x))));
    m.ks.phys_to_virt(x << 12, &va);
    return as_int(va);
  }
  if (!page_va_to_pfn(x, &pfn)) return bad("not the address of a page descriptor in mem_map");
  if (head == "page_to_pfn") return as_int(pfn);
  m.ks.phys_to_virt(PhysMem::pfn_to_phys(pfn), &va);
  return as_int(va);
}

}  // namespace kmm::scenario
