// kmm/scenario/scenario.h — the scenario interpreter: `kmm run FILE.kms` and `kmm shell`.
//
// A scenario is a transcript of a modelled machine, one command a line (the language is a
// CONTRACT, see DESIGN.md and docs/SCENARIOS.md). Each command is echoed after a prompt and
// followed by what it prints, like the paper's terminal sessions. Outcomes:
//   - a command that fails on the machine (out of memory, a bad free, rmmod of a module
//     that is not loaded) prints why, sets last.failed, and the run goes on;
//   - a false `expect` prints the values it compared; the run goes on and exits 1;
//   - a wrong line (unknown command, bad argument, unknown value) prints FILE:LINE: and
//     what is wrong, and the run stops with exit 2.
// Errors the core reports (double free, foreign pointer...) are printed into the transcript
// and refused; the interpreter runs the core with on_error=report so the machine survives.
//
// Commands are data: scenario/command_table.h's rows carry each command's handler, a member
// of Scenario defined in its family's file (scenario.cpp, common_commands.cpp,
// mmu_commands.cpp, nommu_commands.cpp, fault_commands.cpp, persist_commands.cpp).
//
// Depends on: kernel/, proc/, scenario/expr.h, scenario/command_table.h, the C++ standard library.
// Invariants: at most one machine at a time (kernel_); the process models' state belongs to
// it and is reset at each boot; blocks_ names only blocks of the current machine (or of the
// persistent heap it attached).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "kernel/kernel.h"

namespace kmm::scenario {

// Per-machine state of the process models, defined in their own files and reset at boot:
// scenario/mmu_commands.cpp (MMU machines: address spaces, translate, demand paging) and
// scenario/nommu_commands.cpp (mmu=off: uClinux process memory and its malloc strategies).
struct MmuState;
struct NommuState;
struct CommandCall;                       // scenario/command_table.h
enum class CommandFamily : std::uint8_t;  // scenario/command_table.h
// Deleters defined beside each state, so Scenario never needs their complete types.
struct ModelDeleter {
  void operator()(MmuState* s) const;
  void operator()(NommuState* s) const;
};

enum class LineStatus { kOk, kExpectFailed, kScriptError };

// Sees every line a Scenario ran, after it ran (report/run_report.h records a run this way).
// k is the machine after the line (null before the first boot).
class LineObserver {
 public:
  virtual void after_line(Kernel* k, const std::string& where, const std::string& line, LineStatus st) = 0;

 protected:
  ~LineObserver() = default;
};

struct Block {
  enum class Kind { kKmalloc, kVmalloc, kPages } kind;
  void* host = nullptr;  // kmalloc/pages: host address
  std::uint64_t va = 0;  // modelled kernel virtual address
  std::size_t size = 0;  // bytes asked
  bool freed = false;    // freed through its label (kfree, vfree, free_pages)
  // Whose the block is: its allocation's owner, or the one a transfer, not_leak or krealloc
  // through the label gave it. Memory whose owner is another now was reclaimed (and maybe
  // handed out again): Scenario::stale_label.
  owner_t owner = kOwnerFree;
};

class Scenario {
 public:
  Scenario(std::ostream& out, std::ostream& err);
  ~Scenario();
  Scenario(const Scenario&) = delete;
  Scenario& operator=(const Scenario&) = delete;

  // Runs one line; `where` is "FILE:LINE" for messages.
  LineStatus run_line(const std::string& line, const std::string& where);
  // Runs a whole script; returns the exit status (0 all expects held, 1 one failed, 2 the
  // script is wrong).
  int run_script(std::istream& in, const std::string& file);
  // Interactive: prompt, read, run; script errors do not end the session. `exit`, `quit` or
  // the end of input ends it; `help` prints a pointer to kmm help. Returns 1 when an expect
  // failed, else 0.
  int run_shell(std::istream& in, bool interactive);

  void set_echo(bool on) { echo_ = on; }
  void set_observer(LineObserver* o) { observer_ = o; }
  // Largest RAM a `boot` may ask for (fuzzing, untrusted scripts); 0: no limit.
  void set_max_ram(std::uint64_t bytes) { max_ram_ = bytes; }
  Kernel* kernel() { return kernel_; }
  std::optional<std::int64_t> value(const std::string& path, std::string* error);
  unsigned expects_failed() const { return expects_failed_; }

 private:
  using Args = std::vector<std::string>;
  LineStatus dispatch(const Args& a, const std::string& line, const std::string& where);
  std::optional<LineStatus> enter_family(CommandFamily f, const CommandCall& c);
  LineStatus script_error(const std::string& where, const std::string& msg);
  bool need_machine(const std::string& where, LineStatus* st);
  bool owner_arg(const std::string& name, owner_t* o);
  void failed(const std::string& msg);
  static std::uint64_t report_address(const void* p, void* arg);  // base/report.h's address hook
  owner_t owner_now(const Block& b);
  std::string stale_label(const std::string& label, const Block& b);
  void print_view(const std::string& path);

  // The commands, one handler per row of the families' tables (scenario/command_table.h);
  // each is defined in its family's file with the family's table.
  friend struct CommandTables;
  // family script (scenario.cpp)
  LineStatus cmd_echo(const CommandCall& c);
  LineStatus cmd_let(const CommandCall& c);
  LineStatus cmd_expect(const CommandCall& c);
  // family fault (fault_commands.cpp)
  LineStatus cmd_fail(const CommandCall& c);
  // family common (common_commands.cpp)
  LineStatus cmd_boot(const CommandCall& c);
  LineStatus cmd_reboot(const CommandCall& c);
  LineStatus cmd_module(const CommandCall& c);  // insmod, rmmod
  LineStatus cmd_lsmod(const CommandCall& c);
  LineStatus cmd_alloc(const CommandCall& c);  // kmalloc, kzalloc, vmalloc, alloc_pages
  LineStatus cmd_free(const CommandCall& c);   // kfree, vfree, free_pages
  LineStatus cmd_krealloc(const CommandCall& c);
  LineStatus cmd_idle(const CommandCall& c);
  LineStatus cmd_gc(const CommandCall& c);
  LineStatus cmd_protector(const CommandCall& c);
  LineStatus cmd_cat(const CommandCall& c);
  LineStatus cmd_dmesg(const CommandCall& c);
  LineStatus cmd_link(const CommandCall& c);      // link, unlink
  LineStatus cmd_transfer(const CommandCall& c);  // transfer, not_leak
  LineStatus cmd_map(const CommandCall& c);
  LineStatus cmd_check(const CommandCall& c);
  // The MMU model's invariants (mmu_commands.cpp): its tables synced, the kernel space, the
  // vmalloc pages against the areas, every process's address space, the TLB. "" when they
  // hold or there is no MMU model; else what is broken.
  std::string mmu_invariants();
  // Why an allocation of the machine failed: need is what the page pool was asked for (a
  // kmalloc's slab page, a large kmalloc's footprint), asked the caller's size (0: need).
  std::string alloc_failure_reason(std::uint64_t need, std::uint64_t asked = 0) const;
  std::string vmalloc_failure_reason(std::uint64_t asked) const;
  std::string injected_points() const;
  // family mmu (mmu_commands.cpp): dispatch calls mmu_enter first (the model there, its
  // tables synced)
  std::optional<LineStatus> mmu_enter(const CommandCall& c);
  std::optional<LineStatus> mmu_address(const std::string& where, const std::string& text, std::uint64_t* v);
  std::optional<LineStatus> mmu_view(const CommandCall& c);  // `cat` of the model's views
  LineStatus mmu_spawn(const CommandCall& c);
  LineStatus mmu_exit(const CommandCall& c);
  LineStatus mmu_mmap(const CommandCall& c);
  LineStatus mmu_malloc(const CommandCall& c);
  LineStatus mmu_free(const CommandCall& c);  // free, munmap
  LineStatus mmu_touch(const CommandCall& c);
  LineStatus mmu_translate(const CommandCall& c);
  LineStatus mmu_chain(const CommandCall& c);
  LineStatus mmu_tlb(const CommandCall& c);
  // family nommu (nommu_commands.cpp): dispatch calls nommu_enter first (the process model
  // started)
  std::optional<LineStatus> nommu_enter(const CommandCall& c);
  void nommu_say(const NommuState& st, const std::string& s);
  void nommu_fail(const NommuState& st, const std::string& s);
  LineStatus nommu_spawn(const CommandCall& c);
  LineStatus nommu_exit(const CommandCall& c);
  LineStatus nommu_malloc(const CommandCall& c);
  LineStatus nommu_free(const CommandCall& c);
  LineStatus nommu_realloc(const CommandCall& c);
  LineStatus nommu_ps(const CommandCall& c);
  LineStatus nommu_lookup(const CommandCall& c);  // the `nommu` command
  LineStatus nommu_frag(const CommandCall& c);
  LineStatus nommu_repeat(const CommandCall& c);
  LineStatus nommu_churn(const CommandCall& c);
  // family persist (persist_commands.cpp)
  LineStatus cmd_boot_complete(const CommandCall& c);
  LineStatus cmd_flush(const CommandCall& c);
  LineStatus cmd_root(const CommandCall& c);

  std::optional<std::int64_t> module_value(const std::string& rest, std::string* error);
  std::optional<std::int64_t> value_mmu(const std::string& path, std::string* error);
  std::optional<std::int64_t> value_nommu(const std::string& path, std::string* error);
  void reset_models();  // after boot/reboot: fresh state for the new machine
  void drop_models();   // before the machine shuts down

  std::ostream& out_;
  std::ostream& err_;
  bool echo_ = true;
  LineObserver* observer_ = nullptr;
  std::uint64_t max_ram_ = 0;
  Kernel* kernel_ = nullptr;
  BootConfig boot_cfg_;
  std::map<std::string, std::int64_t> vars_;
  std::map<std::string, Block> blocks_;
  // Names an insmod of this script loaded (on any machine it booted): module.NAME.* of any
  // other name, unless the machine's registry holds it (a persistent heap's), is an error.
  std::set<std::string> loaded_modules_;
  bool last_failed_ = false;
  unsigned expects_failed_ = 0;
  std::uint64_t injected_mark_[3] = {};  // failures each fault point injected before the current line ran
  std::unique_ptr<MmuState, ModelDeleter> mmu_;
  std::unique_ptr<NommuState, ModelDeleter> nommu_;
  // Counts reset_models and drop_models: a command that runs others (repeat) holds a model's
  // state by reference, which a boot or reboot among them destroys.
  std::uint64_t models_gen_ = 0;
};

// MMU machines: completes a boot configuration before Kernel::boot (pt=aarch64 without
// page_offset= takes arm64's PAGE_OFFSET) and checks what the MMU model needs (a PAGE_OFFSET
// the format can hold, ARMv7 on a 16M boundary...). Empty when fine, else the error.
// Defined in scenario/mmu_commands.cpp.
std::string mmu_boot_config(BootConfig* cfg, bool page_offset_given);

// Formats bytes as Linux-ish kB ("124 kB").
std::string kb(std::uint64_t bytes);

}  // namespace kmm::scenario
