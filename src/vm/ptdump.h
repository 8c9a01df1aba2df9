// kmm/vm/ptdump.h — a page-table dump in the style of Linux's
// /sys/kernel/debug/kernel_page_tables (arch/arm/mm/dump.c, arch/arm64/mm/ptdump.c).
//
// How it works. PageTable::visit() hands over every leaf in VA order; runs of leaves that
// are virtually contiguous, at the same level and with the same attributes are merged into
// one line:
//     0xc0000000-0xcc000000         192M SECTION  RW NX SHD     MEM/NORMAL-WBWA
// (range, size in the largest exact unit, the level's name, then: USR when user mode may
// touch it, RW or ro, x or NX for the owner, SHD shareable, nG not global, the memory type).
// Markers ("---[ vmalloc() Area ]---") are printed before the first range at or above their
// address, as Linux's address_markers are; a range crossing a marker is cut there.
//
// Depends on: base/text.h, vm/walk.h, vm/armv7_desc.h, vm/aarch64_desc.h. No heap: the
// merge state is one struct on the stack.
#pragma once

#include "base/text.h"
#include "vm/walk.h"

namespace kmm::vm {

struct PtdumpMarker {
  std::uint64_t addr;
  const char* name;
};

// Dumps the leaves of pt with va in [from, to) (to == 0: to the end). markers sorted by addr.
// Returns the number of lines of ranges printed.
unsigned ptdump(const PageTable& pt, std::uint64_t from, std::uint64_t to, const PtdumpMarker* markers,
                unsigned nr_markers, TextSink& out);

}  // namespace kmm::vm
