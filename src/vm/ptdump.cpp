// kmm/vm/ptdump.cpp — Linux-style kernel_page_tables dump. See ptdump.h.
#include "vm/ptdump.h"

#include "vm/aarch64_desc.h"
#include "vm/armv7_desc.h"

namespace kmm::vm {
namespace {

struct Attrs {
  std::uint8_t level = 0;
  std::uint8_t size_shift = 0;
  bool user = false;
  bool write = false;
  bool exec = false;
  bool shared = false;
  bool global = true;
  const char* mem = "";
  const char* level_name = "";
  bool operator==(const Attrs& o) const {
    return level == o.level && size_shift == o.size_shift && user == o.user && write == o.write && exec == o.exec &&
           shared == o.shared && global == o.global && str_eq(mem, o.mem) && str_eq(level_name, o.level_name);
  }
};

Attrs attrs_of(Format f, const Leaf& leaf) {
  Attrs a;
  a.level = leaf.level;
  a.size_shift = leaf.size_shift;
  a.user = leaf.perms.user_read;
  a.write = a.user ? leaf.perms.user_write : leaf.perms.kernel_write;
  a.exec = a.user ? leaf.perms.user_exec : leaf.perms.kernel_exec;
  a.global = leaf.global;
  if (f == Format::kArmv7Short) {
    const auto v = static_cast<std::uint32_t>(leaf.desc);
    const armv7::Desc d = leaf.level == 1 ? armv7::decode_l1(v) : armv7::decode_l2(v);
    a.shared = d.s;
    a.mem = armv7::mem_type_text(d.tex, d.c, d.b);
    a.level_name =
        leaf.level == 1 ? (leaf.size_shift == 24 ? "SUPERSECT" : "SECTION") : (leaf.size_shift == 16 ? "LARGE" : "PTE");
  } else {
    const aarch64::Desc d = aarch64::decode(leaf.level, leaf.desc);
    a.shared = d.sh != 0;
    a.mem = aarch64::attr_indx_text(d.attr_indx);
    a.level_name = leaf.level == 1 ? "PUD" : leaf.level == 2 ? "PMD" : "PTE";
  }
  return a;
}

void print_size(std::uint64_t bytes, TextSink& out) {
  static const char kUnits[] = {'K', 'M', 'G', 'T'};
  std::uint64_t v = bytes >> 10;
  unsigned u = 0;
  while (u + 1 < sizeof kUnits && v != 0 && v % 1024 == 0) {
    v /= 1024;
    ++u;
  }
  out.u(v, 9).ch(kUnits[u]);
}

struct Dump {
  Format format = Format::kArmv7Short;
  unsigned digits = 8;
  std::uint64_t from = 0, to = 0;
  const PtdumpMarker* markers = nullptr;
  unsigned nr_markers = 0;
  unsigned next_marker = 0;
  TextSink* out = nullptr;
  bool open = false;
  std::uint64_t start = 0, end = 0;
  Attrs attrs;
  unsigned lines = 0;

  void flush() {
    if (!open) return;
    out->str("0x").hex(start, digits).str("-0x").hex(end, digits).ch(' ');
    print_size(end - start, *out);
    out->ch(' ').left(attrs.level_name, 9).ch(' ');
    out->str(attrs.user ? "USR " : "    ");
    out->str(attrs.write ? "RW " : "ro ");
    out->str(attrs.exec ? "x  " : "NX ");
    out->str(attrs.shared ? "SHD " : "    ");
    out->str(attrs.global ? "   " : "nG ");
    out->str(attrs.mem).nl();
    open = false;
    ++lines;
  }
  void markers_upto(std::uint64_t va) {
    while (next_marker < nr_markers && markers[next_marker].addr <= va) {
      flush();
      out->str("---[ ").str(markers[next_marker].name).str(" ]---").nl();
      ++next_marker;
    }
  }
  void leaf(const Leaf& l) {
    if (l.va < from || (to != 0 && l.va >= to)) return;
    markers_upto(l.va);
    const Attrs a = attrs_of(format, l);
    const std::uint64_t size = std::uint64_t{1} << l.size_shift;
    if (open && l.va == end && a == attrs) {
      end += size;
      return;
    }
    flush();
    open = true;
    start = l.va;
    end = l.va + size;
    attrs = a;
  }
};

void on_leaf(void* arg, const Leaf& l) {
  static_cast<Dump*>(arg)->leaf(l);
}

}  // namespace

unsigned ptdump(const PageTable& pt, std::uint64_t from, std::uint64_t to, const PtdumpMarker* markers,
                unsigned nr_markers, TextSink& out) {
  Dump d;
  d.format = pt.format();
  d.digits = pt.format() == Format::kArmv7Short ? 8u : 16u;
  d.from = from;
  d.to = to;
  d.markers = markers;
  d.nr_markers = nr_markers;
  d.out = &out;
  // Markers below `from` are not printed.
  while (d.next_marker < nr_markers && markers[d.next_marker].addr < from) ++d.next_marker;
  pt.visit(on_leaf, &d);
  d.flush();
  d.markers_upto(~std::uint64_t{0});
  return d.lines;
}

}  // namespace kmm::vm
