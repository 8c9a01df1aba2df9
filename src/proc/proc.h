// kmm/proc/proc.h — Linux's own views of a machine, byte for byte in Linux's layouts.
//
//   /proc/meminfo        fs/proc/meminfo.c: "Label:" padded to 16, value width 8, " kB"
//   /proc/buddyinfo      mm/vmstat.c frag_show: "Node 0, zone   Normal" + "%6lu " per order
//   /proc/slabinfo       mm/slab_common.c, version 2.1 header and columns
//   /proc/modules        kernel/module.c m_show: "name size refcnt deps state address"
//   /proc/allocinfo      lib/alloc_tag.c (6.10): "%12llu %8llu <tag>" per module and site
//   /proc/vmallocinfo    mm/vmalloc.c s_show
//   /sys/kernel/debug/kmemleak               mm/kmemleak.c print_unreferenced
//   /sys/kernel/debug/extfrag/extfrag_index  and .../unusable_index
//   /sys/kernel/debug/failslab, fail_page_alloc, fail_platform: the fault-injection
//                        attributes (Documentation/fault-injection), one per line
// Every number is read from the machine when the view is made; nothing is cached or faked.
// Each view is also available as JSON (path + ".json", or proc_json()).
//
// Depends on: kernel/ and everything below it. Writes into a TextSink: no allocation.
#pragma once

#include "kernel/kernel.h"

namespace kmm {

struct MeminfoField {
  const char* name;
  std::uint64_t value;  // kB, or a count for the HugePages_ lines
  bool kb;
};
inline constexpr unsigned kMaxMeminfoFields = 64;
// Fills fields in /proc/meminfo's order; returns how many.
unsigned meminfo_fields(Kernel& k, MeminfoField* fields);
// Value of one meminfo field (kB); false when there is no such field.
bool meminfo_value(Kernel& k, const char* name, std::uint64_t* kb);

// Writes the view at `path` into out; false when the path is not one kmm provides.
bool proc_read(Kernel& k, const char* path, TextSink& out);
// The same data as JSON for the view at path (without ".json"); false when unknown.
bool proc_json(Kernel& k, const char* path, TextSink& out);
// The paths proc_read knows, null-terminated.
const char* const* proc_paths();

void print_meminfo(Kernel& k, TextSink& out);
void print_buddyinfo(Kernel& k, TextSink& out);
void print_slabinfo(Kernel& k, TextSink& out);
void print_modules(Kernel& k, TextSink& out);
void print_allocinfo(Kernel& k, TextSink& out);
void print_vmallocinfo(Kernel& k, TextSink& out);
void print_kmemleak(Kernel& k, TextSink& out);
void print_extfrag(Kernel& k, TextSink& out, bool unusable);

// Slab totals in kB: reclaimable and unreclaimable.
void slab_kb(Kernel& k, std::uint64_t* reclaimable, std::uint64_t* unreclaimable);

}  // namespace kmm
