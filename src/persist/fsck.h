// kmm/persist/fsck.h — the offline check of a heap file (`kmm fsck FILE`).
//
// persist_boot formats or attaches a heap file (persist/heap_file.h; the essay is
// docs/PERSISTENCE.md). persist_fsck checks one offline: it maps the file
// privately (copy-on-write: nothing it does reaches the file), validates the superblock and
// the Kernel object, checks the authoritative state (roles in mem_map, owner bytes), runs the
// same rebuild an attach runs on the private copy and checks the result: every frame free
// exactly when no block holds it, no block both free and allocated, no overlap, counters that
// agree, no owner byte naming a module slot that is free, named roots that point at live
// blocks; on a cleanly detached heap, also that the stored lists and counters equal the
// rebuilt ones. Half-written roles left by a crash are repairs, not inconsistencies.
//
// Depends on: kernel/kernel.h, persist/attach.h, pal/pal_file.h. Never allocates. Invariant:
// the file is opened read-only and mapped MAP_PRIVATE; nothing reaches it.
#pragma once

#include "kernel/kernel.h"

namespace kmm {

class TextSink;

struct FsckResult {
  int status = 2;  // 0 clean, 1 inconsistent, 2 unusable file
  std::uint64_t inconsistencies = 0;
  std::uint64_t repairs = 0;  // what an attach would repair (crash artifacts)
  std::uint64_t frames = 0;   // frames checked
  AttachReport attach;
};

// Checks the heap file at path; writes a report (one line per finding, at most `max_lines`
// findings listed) into out.
FsckResult persist_fsck(const char* path, TextSink& out, unsigned max_lines = 50);

}  // namespace kmm
