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
// Depends on: kernel/, proc/, scenario/expr.h, the C++ standard library.
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

namespace kmm::sim {

// Per-machine state of the process models, defined in their own files and reset at boot:
// scenario/mmu_commands.cpp (MMU machines: address spaces, translate, demand paging) and
// scenario/nommu_commands.cpp (mmu=off: uClinux process memory and its malloc strategies).
struct MmuState;
struct NommuState;
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
  // Interactive: prompt, read, run; script errors do not end the session.
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
  LineStatus script_error(const std::string& where, const std::string& msg);
  bool need_machine(const std::string& where, LineStatus* st);
  bool owner_arg(const std::string& name, owner_t* o);
  void failed(const std::string& msg);
  void print_view(const std::string& path);

  LineStatus cmd_boot(const Args& a, const std::string& where);
  LineStatus cmd_alloc(const Args& a, const std::string& where);
  LineStatus cmd_free(const Args& a, const std::string& where);
  LineStatus cmd_link(const Args& a, const std::string& where, bool set);
  LineStatus cmd_map(const Args& a, const std::string& where);
  std::string alloc_failure_reason(std::uint64_t asked) const;
  // Command families of the process models. Each returns nullopt for a command it does not
  // handle. Called after boot's machine exists; the state is (re)made by reset_models().
  std::optional<LineStatus> dispatch_mmu(const Args& a, const std::string& line, const std::string& where);
  std::optional<LineStatus> dispatch_nommu(const Args& a, const std::string& line, const std::string& where);
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
};

// MMU machines: completes a boot configuration before Kernel::boot (pt=aarch64 without
// page_offset= takes arm64's PAGE_OFFSET) and checks what the MMU model needs (a PAGE_OFFSET
// the format can hold, ARMv7 on a 16M boundary...). Empty when fine, else the error.
// Defined in scenario/mmu_commands.cpp.
std::string mmu_boot_config(BootConfig* cfg, bool page_offset_given);

// Formats bytes as Linux-ish kB ("124 kB").
std::string kb(std::uint64_t bytes);

}  // namespace kmm::sim
