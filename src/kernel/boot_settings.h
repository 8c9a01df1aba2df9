// kmm/kernel/boot_settings.h — the machine settings two front ends type, each named once:
// the scenario `boot KEY=VALUE` line (scenario/boot_options.h) and KMM_OPTIONS
// (shim/options_table.h) both take a shared key's name, syntax, default and help lines from
// its row here, and neither table repeats them as literals. `kmm exec`'s flags for the same
// settings (tools/kmm/exec_commands.cpp) take their help from these rows and are checked by
// the KMM_OPTIONS parser.
//
// A row is the setting as BootConfig holds it: ram_bytes, protector, gc_delay_ns and the
// hardening options (slab/hardening.h). Each table keeps what is its own: the kind of value
// in its help, the parser it runs (the same one for the hardening keys: set_hardening_option),
// and its error messages (the scenario's are the scenario language's, byte for byte).
//
// Two defaults a row: a modelled machine boots as BootConfig{} says (the stock kernel of the
// paper: protector off, 192 MB of RAM), a process under the preload as shim::Options{} says
// (protect=report, ram=0: the default reservation). They are the same text except where the
// row says otherwise; so are the two help lines (ram= means RAM on a machine and the address
// space reserved in a process, and takes different values: one line for both read as if a
// boot line's ram=0 meant 8G); tests/scenario/test_boot_options.cpp checks that every key both tables
// accept has a row here, that both tables show the row's syntax, help and their default, and
// which rows differ in default.
//
// Depends on: protect/protector_mode.h (the mode names and the gc_delay default, named once
// there). Constant data only: no constructor runs (KMM_OPTIONS is read inside malloc).
// Invariants: a row's syntax is what both tables print; its defaults parse, in their table,
// to BootConfig{}'s and shim::Options{}'s values (each table's own tests check that).
#pragma once

#include "protect/protector_mode.h"

namespace kmm {

struct BootSetting {
  const char* boot_key;         // scenario `boot KEY=`
  const char* options_key;      // KMM_OPTIONS `KEY=`
  const char* syntax;           // "SIZE", "DURATION", "on|off", a choice's words joined by '|'
  const char* machine_default;  // a modelled machine's (BootConfig{}), as typed
  const char* process_default;  // a process's under the preload (shim::Options{}), as typed
  const char* machine_help;     // one line: the scenario boot line's
  const char* process_help;     // one line: KMM_OPTIONS's and kmm exec's (the same where the meaning is)
};

inline constexpr BootSetting kBootSettingRam = {
    .boot_key = "ram",
    .options_key = "ram",
    .syntax = "SIZE",
    .machine_default = "192M",
    .process_default = "0",
    .machine_help = "RAM of the machine (at least 256K)",
    .process_help =
        "the address space reserved for blocks up to 4 MiB "
        "(0: 8G, 1G on 32-bit hosts; else 64M or more)",
};
inline constexpr BootSetting kBootSettingProtector = {
    .boot_key = "protector",
    .options_key = "protect",
    .syntax = kProtectorModeSyntax,
    .machine_default = protector_mode_name(ProtectorMode::kOff),
    .process_default = protector_mode_name(ProtectorMode::kReport),
    .machine_help = "what the kernel memory protector does with an unloaded module's (a plug-in's) leaks",
    .process_help = "what the kernel memory protector does with an unloaded module's (a plug-in's) leaks",
};
inline constexpr BootSetting kBootSettingGcDelay = {
    .boot_key = "gc_delay",
    .options_key = "gc_delay",
    .syntax = "DURATION",
    .machine_default = kDefaultGcDelayText,
    .process_default = kDefaultGcDelayText,
    .machine_help = "how long a leak of an unloaded module (a plug-in) waits before the collector takes it",
    .process_help = "how long a leak of an unloaded module (a plug-in) waits before the collector takes it",
};
// Hardening (slab/hardening.h, docs/RELIABILITY.md): one name everywhere, off by default
// everywhere.
constexpr BootSetting hardening_setting(const char* key, const char* syntax, const char* off, const char* help,
                                        const char* process_help = nullptr) {
  return BootSetting{key, key, syntax, off, off, help, process_help != nullptr ? process_help : help};
}
inline constexpr BootSetting kBootSettingFreelistHardened = hardening_setting(
    "freelist_hardened", "on|off", "off", "free links stored encoded and checked (SLUB's FREELIST_HARDENED)");
inline constexpr BootSetting kBootSettingRedzone = hardening_setting(
    "redzone", "on|off", "off", "red zones after every object and after the size asked for (slub_debug=Z)");
inline constexpr BootSetting kBootSettingPoison =
    hardening_setting("poison", "on|off", "off", "freed objects poisoned, checked when taken again (slub_debug=P)");
// At most 1G (slab/hardening.h's kMaxQuarantineBytes: more is a bad value), and at most a
// quarter of the RAM (SlabAllocator::init cuts it; both front ends say so in a warning).
inline constexpr BootSetting kBootSettingQuarantine = hardening_setting(
    "quarantine", "SIZE", "0",
    "freed objects wait in a FIFO of this many bytes before reuse (at most 1G; more than a quarter of RAM is "
    "cut to a quarter, with a warning)",
    "freed objects wait in a FIFO of this many bytes before reuse (at most 1G; more than a quarter of ram is "
    "cut to a quarter, with a warning)");
inline constexpr BootSetting kBootSettingGuardPages =
    hardening_setting("guard_pages", "on|off", "off",
                      "an inaccessible page after every page-level block (in a process: every block over 8 KiB)");

// Every row.
inline constexpr const BootSetting* kBootSettings[] = {
    &kBootSettingRam,     &kBootSettingProtector, &kBootSettingGcDelay,    &kBootSettingFreelistHardened,
    &kBootSettingRedzone, &kBootSettingPoison,    &kBootSettingQuarantine, &kBootSettingGuardPages,
};

}  // namespace kmm
