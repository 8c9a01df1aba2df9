// kmm/persist/attach.h — attach: the machine stored in a heap file, checked, re-pointed and
// rebuilt in place, then wired as boot wires a machine.
//
// A heap file is input from outside: its checksum proves only that the superblock is whole
// (docs/SECURITY.md). So before anything is written, stored() checks the Kernel object the
// superblock names — this build's layout, where it lies, that it describes this file, every
// part's stored configuration (bools that are bools, caches create() could make, pointers to
// caches that are caches in use) — and re-sets the pointers between its parts. attach() then
// re-sets what points out of RAM (the platform, locks, the log listener), rebuilds everything
// derived from the authoritative part (persist/rebuild.cpp), makes the modules that were
// Live dormant for the boot grace period (the kernel ends it: Kernel::boot_complete), and
// ends with Kernel::wire_parts, the wiring boot ends with, plus the named roots.
//
// KernelImage is the Kernel's one friend: the persistence layer rebuilds the object's
// private parts. Its functions are the stored Kernel's, not a live machine's API.
//
// Depends on: kernel/kernel.h, pal/pal_file.h. Never allocates. Invariants: nothing is
// written to the file or its RAM before stored() accepted the object; after attach the
// superblock says "not clean" until the machine detaches.
#pragma once

#include "kernel/kernel.h"
#include "pal/pal_file.h"

namespace kmm {

class KernelImage {
 public:
  // The Kernel object of an opened heap file (fp->open returned kAttach), checked as above
  // and its pointers between parts re-set; null with *why set when it cannot be attached.
  // fsck calls it on its private copy before it reads the stored counters.
  static Kernel* stored(FilePlatform* fp, const Superblock& sb, const char** why);
  // Attaches to the machine in fp and rebuilds it. Null with *err set when it cannot.
  static Kernel* attach(FilePlatform* fp, const BootConfig& cfg, BootError* err);
  // A fresh machine booted over fp (format): its file, its roots, its first boot.
  static void formatted(Kernel& k, FilePlatform* fp);
  // Format failed after boot: the machine is no longer the file's (shutdown gives the RAM
  // back instead of detaching).
  static void forget_file(Kernel& k) { k.backing_ = nullptr; }
  static const PersistRoot* roots(const Kernel& k) { return k.roots_; }

 private:
  static const char* check(Kernel& k, std::uint64_t kernel_offset);
  static void repoint(Kernel& k, FilePlatform* fp, const BootConfig& cfg);
  // persist/rebuild.cpp: everything derived, from what is authoritative, in passes.
  static void rebuild(Kernel& k);
  static std::uint64_t rebuild_roles(Kernel& k);
  static void rebuild_vmalloc(Kernel& k);
  static void rebuild_slabs(Kernel& k);
  static void register_roots(Kernel& k);  // persist/roots.cpp
};

// Copies a message into a static buffer (the file's own messages die with the file).
const char* persist_keep_error(const char* what);

}  // namespace kmm
