// kmm/scenario/persist_commands.cpp — scenario commands and values for persistent RAM.
// See persist_commands.h for the list; the machinery is src/persist/. Family persist
// of the command table: the handlers of boot-complete, flush and root, and the table.
// Depends on: persist/fsck.h, pal/pal_file.h, scenario/ (interpreter, command table), fmt.
// Invariants: a failure of the machine (volatile RAM, no room for a root) sets last.failed
// and the run goes on; a wrong line is a script error.
#include "scenario/persist_commands.h"
#include "scenario/script_args.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <set>

#include "base/text.h"
#include "pal/pal_file.h"
#include "persist/fsck.h"
#include "scenario/command_table.h"

namespace kmm::scenario {

const char* persist_intern_path(const std::string& path) {
  static std::set<std::string> paths;
  return paths.insert(path).first->c_str();
}

bool persist_discard(const char* path, std::string* error) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;  // nothing there
  unsigned char hdr[sizeof(Superblock)] = {};
  ssize_t n = ::pread(fd, hdr, sizeof hdr, 0);
  if (n != 0 && (n < static_cast<ssize_t>(sizeof kHeapMagic) || std::memcmp(hdr, kHeapMagic, sizeof kHeapMagic) != 0)) {
    ::close(fd);
    *error = fmt::format("format=yes: {} is not a kmm heap; not removing it", path);
    return false;
  }
  // A heap another process has attached holds its lock (pal_file.cpp): removing it would leave
  // that process writing into a deleted file, everything lost at its exit (before stop 48 it
  // was removed all the same).
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    *error =
        fmt::format("format=yes: {} is attached by another live process (the file is locked); not removing it", path);
    return false;
  }
  bool removed = std::remove(path) == 0;
  ::close(fd);  // the lock held until the name is gone
  if (!removed) {
    *error = fmt::format("format=yes: cannot remove {}", path);
    return false;
  }
  return true;
}

int run_fsck(const std::string& path, std::ostream& out) {
  std::vector<char> buf(1 << 20);
  TextSink sink(buf.data(), buf.size());
  FsckResult r = persist_fsck(path.c_str(), sink, 200);
  out << sink.data();
  return r.status;
}

void persist_boot_banner(Kernel& k, std::ostream& out) {
  if (!k.persistent()) return;
  const AttachReport& r = k.attach_report();
  FilePlatform* fp = k.backing_file();
  if (r.boot_count <= 1) {
    out << fmt::format("persistent RAM: formatted {} ({}K at 0x{:x})\n", fp->path(), fp->ram_bytes() / 1024,
                       reinterpret_cast<std::uintptr_t>(fp->ram()));
    return;
  }
  out << fmt::format(
      "persistent RAM: attached {} (boot {}, {}), rebuilt in {} us: {} slabs, {} objects, {} large blocks, "
      "{} vmalloc areas\n",
      fp->path(), r.boot_count, r.was_clean ? "detached cleanly" : "after a crash", r.rebuild_ns / 1000, r.slabs,
      r.objects, r.large_blocks, r.vmalloc_areas);
  if (r.repaired_frames + r.orphan_vmalloc_frames + r.orphan_area_records + r.dropped_frames + r.empty_slabs_freed != 0)
    out << fmt::format(
        "persistent RAM: repaired {} half-written frames, freed {} orphan vmalloc frames and {} area records, "
        "{} empty slabs, gave back {} per-boot frames\n",
        r.repaired_frames, r.orphan_vmalloc_frames, r.orphan_area_records, r.empty_slabs_freed, r.dropped_frames);
  if (r.dormant_modules != 0)
    out << fmt::format("persistent RAM: {} module(s) dormant until loaded again ({})\n", r.dormant_modules,
                       k.config().boot_grace_ns != 0 ? fmt::format("grace {} ms", k.config().boot_grace_ns / 1000000)
                                                     : std::string("until boot-complete"));
}

LineStatus Scenario::cmd_boot_complete(const CommandCall& c) {
  if (c.a.size() != 1) return script_error(c.where, command_usage("boot-complete"));
  unsigned n = kernel_->boot_complete();
  out_ << fmt::format("boot complete: {} dormant module(s) not loaded again are gone\n", n);
  return LineStatus::kOk;
}

LineStatus Scenario::cmd_flush(const CommandCall&) {
  if (!kernel_->flush()) {
    out_ << "flush: the machine's RAM is volatile\n";
    last_failed_ = true;
  }
  return LineStatus::kOk;
}

// root set NAME LABEL|0 and root get NAME as LABEL.
LineStatus Scenario::cmd_root(const CommandCall& c) {
  const Args& a = c.a;
  Kernel& k = *kernel_;
  if (a.size() == 3 && a[1] == "set") return script_error(c.where, "usage: root set NAME LABEL");
  if (a.size() == 4 && a[1] == "set") {
    const void* p = nullptr;
    if (a[3] != "0") {
      auto it = blocks_.find(a[3]);
      if (it == blocks_.end() || it->second.host == nullptr)
        return script_error(c.where, "no kmalloc block labelled '" + a[3] + "'");
      p = it->second.host;
      // A root names a live block (one of RAM: not ZERO_SIZE_PTR, not freed, not another's).
      if (zero_or_null(p) || owner_now(it->second) == kOwnerFree || !stale_label(a[3], it->second).empty()) {
        out_ << fmt::format("root set: '{}' is not a live block\n", a[3]);
        last_failed_ = true;
        return LineStatus::kOk;
      }
    }
    if (!k.root_set(a[2].c_str(), p)) {
      out_ << fmt::format("root set: no room for '{}' (at most {} roots, names under {} characters)\n", a[2],
                          kMaxPersistRoots, kPersistRootNameLen);
      last_failed_ = true;
    }
    return LineStatus::kOk;
  }
  if (a.size() == 5 && a[1] == "get" && a[3] == "as") {
    void* p = k.root_get(a[2].c_str());
    if (p == nullptr) {
      out_ << fmt::format("root get: no root named '{}'\n", a[2]);
      last_failed_ = true;
      return LineStatus::kOk;
    }
    if (!label_ok(a[4])) return script_error(c.where, command_usage("root"));
    // A root is a value the heap file chose (docs/SECURITY.md): named a live block of this RAM
    // or refused, never turned into an address.
    if (!k.phys().owns(p) || k.owner_of(p) == kOwnerFree) {
      out_ << fmt::format("root get: root '{}' names no live block of this machine's RAM\n", a[2]);
      last_failed_ = true;
      return LineStatus::kOk;
    }
    Block b{Block::Kind::kKmalloc};
    b.host = p;
    b.va = k.kva(p);
    b.size = k.ksize(p);
    b.owner = k.owner_of(p);
    blocks_[a[4]] = b;
    out_ << fmt::format("{} = 0x{:08x} (root {}, {} bytes, owner {})\n", a[4], b.va, a[2], b.size,
                        k.modules().owner_name(k.owner_of(p)));
    return LineStatus::kOk;
  }
  return script_error(c.where, command_usage("root"));
}

std::span<const CommandRow> CommandTables::persist() {
  using F = CommandFamily;
  static constexpr CommandRow kRows[] = {
      {"boot-complete", "boot-complete", "end the grace period: dormant modules not loaded again are gone", F::kPersist,
       &Scenario::cmd_boot_complete},
      {"flush", "flush", "a flush point of persistent RAM (msync)", F::kPersist, &Scenario::cmd_flush},
      {"root", "root set NAME LABEL | root get NAME as LABEL", "a named persistent root: set it, or get it as LABEL",
       F::kPersist, &Scenario::cmd_root},
  };
  return kRows;
}

std::optional<std::int64_t> persist_value(Kernel& k, const std::string& head, const std::string& rest,
                                          std::string* error) {
  if (head == "root") return k.root_get(rest.c_str()) != nullptr ? 1 : 0;
  const AttachReport& r = k.attach_report();
  auto v = [](std::uint64_t x) { return static_cast<std::int64_t>(x); };
  if (rest == "boots") return v(k.persistent() ? r.boot_count : 0);
  if (rest == "repaired") return v(r.repaired_frames + r.orphan_vmalloc_frames + r.orphan_area_records);
  if (rest == "dormant") {
    unsigned n = 0;
    for (unsigned o = kOwnerFirstModule; o < kOwnerUntracked; ++o) {
      const Module* m = k.modules().module(static_cast<owner_t>(o));
      n += m != nullptr && m->state == ModuleState::kDormant;
    }
    return v(n);
  }
  if (rest == "clean") return v(r.was_clean ? 1 : 0);
  if (rest == "persistent") return v(k.persistent() ? 1 : 0);
  *error = "persist has boots, repaired, dormant, clean, persistent; not '" + rest + "'";
  return std::nullopt;
}

}  // namespace kmm::scenario
