// kmm/persist/heap_file.h — a machine on persistent RAM: booting over a heap file.
//
// persist_boot is the boot of a machine whose RAM may be a file (BootConfig::backing; the
// essay is docs/PERSISTENCE.md). The file comes from pal/pal_file.h's pool and is opened:
//   new or empty  formatted: an ordinary Kernel::boot over the file's RAM (the file is the
//                 platform), then the named roots registered and the superblock says ready;
//   a machine     attached: the stored Kernel object checked, re-pointed and rebuilt in
//                 place (persist/attach.h), its modules dormant for the grace period;
//   anything else refused, with the file's own error.
// Without backing it is Kernel::boot. Kernel::shutdown detaches a machine booted here (the
// file keeps it, closed clean).
//
// Depends on: kernel/kernel.h, pal/pal_file.h. Never allocates (files come from a static
// pool). Invariant: a file's superblock says ready only once the Kernel object in it is whole.
#pragma once

#include "kernel/kernel.h"

namespace kmm {

// Boots cfg's machine: over its heap file when cfg.backing names one (format or attach),
// else as Kernel::boot. Null with *err set when it cannot.
Kernel* persist_boot(const BootConfig& cfg, BootError* err);

// Hash of the persistent layout of this build (struct sizes, limits); in the superblock. A
// file made by a build with another layout is refused, never misread.
std::uint64_t persist_layout_hash();

}  // namespace kmm
