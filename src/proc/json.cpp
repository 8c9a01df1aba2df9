// kmm/proc/json.cpp — the /proc views as JSON objects (same numbers, machine-readable).
#include "base/fault_inject.h"
#include "base/text.h"
#include "proc/proc.h"

namespace kmm {
namespace {

// A persistent heap's module loaded before the reboot and not yet claimed is "dormant", not
// "gone" (docs/PERSISTENCE.md): its memory is kept through the boot grace period.
const char* module_state_json(ModuleState s) {
  switch (s) {
    case ModuleState::kLive:
      return "live";
    case ModuleState::kDormant:
      return "dormant";
    default:
      return "gone";
  }
}

void key(TextSink& out, const char* k, bool* first) {
  if (!*first) out.ch(',');
  *first = false;
  out.ch('"').str(k).str("\":");
}

// One character of a JSON string: quotes, backslashes and control characters escaped (a
// module's name, a kernel log line). Bytes from 0x80 pass as they are.
void json_char(TextSink& out, char c) {
  if (c == '"' || c == '\\') {
    out.ch('\\').ch(c);
  } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
    out.str("\\u00").hex(static_cast<unsigned char>(c), 2);
  } else {
    out.ch(c);
  }
}

void json_string(TextSink& out, const char* s) {
  out.ch('"');
  for (; *s; ++s) json_char(out, *s);
  out.ch('"');
}

// extfrag_index / unusable_index: the eleven orders' indices, as the text view prints them
// (thousandths, three decimals; -1.000 where Linux prints it).
void json_extfrag(Kernel& k, TextSink& out, bool unusable) {
  std::uint64_t nr[kNrOrders];
  k.zone().free_blocks(nr);
  out.str("{\"node\":0,\"zone\":\"Normal\",\"index\":[");
  for (unsigned o = 0; o < kNrOrders; ++o) {
    if (o) out.ch(',');
    out.fixed(unusable ? unusable_index(nr, o) : fragmentation_index(nr, o), 3);
  }
  out.str("]}\n");
}

void json_meminfo(Kernel& k, TextSink& out) {
  bool first = true;
  MeminfoField f[kMaxMeminfoFields];
  unsigned n = meminfo_fields(k, f);
  out.ch('{');
  for (unsigned i = 0; i < n; ++i) {
    key(out, f[i].name, &first);
    out.u(f[i].value);
  }
  out.str("}\n");
}

void json_buddyinfo(Kernel& k, TextSink& out) {
  std::uint64_t nr[kNrOrders];
  k.zone().free_blocks(nr);
  out.str("{\"node\":0,\"zone\":\"Normal\",\"free\":[");
  for (unsigned o = 0; o < kNrOrders; ++o) {
    if (o) out.ch(',');
    out.u(nr[o]);
  }
  out.str("],\"free_pages\":")
      .u(k.zone().free_pages())
      .str(",\"largest_free_pages\":")
      .u(k.zone().largest_free_block());
  out.str(",\"watermarks\":{\"min\":").u(k.zone().watermarks().min).str(",\"low\":").u(k.zone().watermarks().low);
  out.str(",\"high\":").u(k.zone().watermarks().high).str("}}\n");
}

void json_slabinfo(Kernel& k, TextSink& out) {
  bool first = true;
  out.ch('[');
  for (unsigned id = 0; id < k.slab().nr_cache_ids(); ++id) {
    KmemCache* c = k.slab().cache(id);
    if (c == nullptr) continue;
    if (!first) out.ch(',');
    first = false;
    out.str("{\"name\":");
    json_string(out, c->name);
    out.str(",\"active_objs\":").u(c->active_objects()).str(",\"num_objs\":").u(c->total_objects());
    out.str(",\"objsize\":")
        .u(c->size)
        .str(",\"objperslab\":")
        .u(c->objects)
        .str(",\"pagesperslab\":")
        .u(1u << c->order);
    out.str(",\"num_slabs\":").u(c->nr_slabs.load()).ch('}');
  }
  out.str("]\n");
}

void json_owners(Kernel& k, TextSink& out, bool allocinfo) {
  bool first = true;
  OwnerTally t[kMaxOwners];
  k.usage(t);
  out.ch('[');
  for (unsigned o = 1; o < kMaxOwners; ++o) {
    const Module* m = k.modules().module(static_cast<owner_t>(o));
    bool show = o == kOwnerKernel ? true : m != nullptr;
    if (!show || (allocinfo && t[o].objects == 0)) continue;
    if (!first) out.ch(',');
    first = false;
    out.str("{\"owner\":");
    json_string(out, k.modules().owner_name(static_cast<owner_t>(o)));
    out.str(",\"state\":\"").str(m == nullptr ? "kernel" : module_state_json(m->state)).ch('"');
    out.str(",\"objects\":").u(t[o].objects).str(",\"bytes\":").u(t[o].bytes);
    if (m != nullptr) out.str(",\"holds\":").u(k.modules().holds(static_cast<owner_t>(o)));  // scopes' threads
    out.ch('}');
  }
  out.str("]\n");
}

void json_kmemleak(Kernel& k, TextSink& out) {
  const CollectorStats& s = k.collector().stats();
  out.str("{\"mode\":\"").str(protector_mode_name(k.collector().mode())).str("\",\"passes\":").u(s.passes);
  out.str(",\"leak_objects\":").u(s.leak_objects).str(",\"leak_bytes\":").u(s.leak_bytes);
  out.str(",\"referenced_objects\":").u(s.referenced_objects).str(",\"referenced_bytes\":").u(s.referenced_bytes);
  out.str(",\"reclaimed_objects\":")
      .u(s.reclaimed_objects)
      .str(",\"reclaimed_bytes\":")
      .u(s.reclaimed_bytes)
      .str("}\n");
}

void json_vmallocinfo(Kernel& k, TextSink& out) {
  bool first = true;
  out.ch('[');
  for (const VmArea* a = k.vmalloc_space().areas(); a != nullptr; a = a->next) {
    if (!first) out.ch(',');
    first = false;
    out.str("{\"start\":").u(a->addr).str(",\"end\":").u(a->addr + a->size).str(",\"size\":").u(a->size);
    out.str(",\"requested\":").u(a->requested).str(",\"pages\":").u(a->nr_pages).str(",\"owner\":");
    json_string(out, k.modules().owner_name(a->owner));
    out.ch('}');
  }
  out.str("]\n");
}

// {"lines": [...]}, the ring's lines oldest first.
void json_dmesg(Kernel& k, TextSink& out) {
  out.str("{\"lines\":[");
  bool in_line = false, first_line = true;
  k.for_each_log_char([&](char c) {
    if (!in_line) {
      if (!first_line) out.ch(',');
      out.ch('"');
      in_line = true;
      first_line = false;
    }
    if (c == '\n') {
      out.ch('"');
      in_line = false;
    } else {
      json_char(out, c);
    }
  });
  if (in_line) out.ch('"');
  out.str("]}\n");
}

// A fault point's attributes (/sys/kernel/debug/failslab and the like); false when path names
// none.
bool json_fault(const char* path, TextSink& out) {
  for (unsigned i = 0; i < kNrFaultPoints; ++i) {
    auto pt = static_cast<FaultPoint>(i);
    StackText<64> want;
    want.str("/sys/kernel/debug/").str(fault_point_name(pt));
    if (!str_eq(path, want.data())) continue;
    const FaultAttr& a = fault_attr(pt);
    out.str("{\"name\":\"").str(a.name).str("\",\"enabled\":").str(a.enabled.load() ? "true" : "false");
    out.str(",\"interval\":").u(a.interval.load()).str(",\"probability_ppm\":").u(a.probability_ppm.load());
    out.str(",\"times\":").i(a.times.load()).str(",\"space\":").i(a.space.load()).str(",\"seed\":").u(a.seed.load());
    out.str(",\"verbose\":")
        .u(a.verbose.load())
        .str(",\"calls\":")
        .u(a.calls.load())
        .str(",\"failures\":")
        .u(a.failures.load());
    out.str("}\n");
    return true;
  }
  return false;
}

}  // namespace

bool proc_json(Kernel& k, const char* path, TextSink& out) {
  if (str_eq(path, "/proc/meminfo"))
    json_meminfo(k, out);
  else if (str_eq(path, "/proc/buddyinfo"))
    json_buddyinfo(k, out);
  else if (str_eq(path, "/proc/slabinfo"))
    json_slabinfo(k, out);
  else if (str_eq(path, "/proc/modules") || str_eq(path, "/proc/allocinfo"))
    json_owners(k, out, str_eq(path, "/proc/allocinfo"));
  else if (str_eq(path, "/proc/vmallocinfo"))
    json_vmallocinfo(k, out);
  else if (str_eq(path, "/sys/kernel/debug/kmemleak"))
    json_kmemleak(k, out);
  else if (str_eq(path, "/sys/kernel/debug/extfrag/extfrag_index"))
    json_extfrag(k, out, false);
  else if (str_eq(path, "/sys/kernel/debug/extfrag/unusable_index"))
    json_extfrag(k, out, true);
  else if (str_eq(path, "/proc/dmesg"))
    json_dmesg(k, out);
  else
    return json_fault(path, out);
  return true;
}

}  // namespace kmm
