// tests/scenario/test_boot_options.cpp — the table of the scenario `boot` options
// (scenario/boot_options.h): names unique, every default applies and leaves BootConfig as
// constructed, each choice's words set their value and a bad word gives the error built from
// them (the messages are the scenario language's, byte for byte), the keys KMM_OPTIONS takes
// too agree with its table (kernel/boot_settings.h's rows), and docs/SCENARIOS.md's boot
// options list exactly the table's keys.
#include "scenario/boot_options.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "kernel/boot_settings.h"
#include "pal/pal_file.h"
#include "protect/protector_mode.h"
#include "scenario/persist_commands.h"
#include "shim/options_table.h"

namespace kmm::scenario {
namespace {

// Every field the table can set, BootConfig against BootConfig.
void expect_same(const BootConfig& a, const BootConfig& b, const std::string& what) {
  EXPECT_EQ(a.ram_bytes, b.ram_bytes) << what;
  EXPECT_EQ(a.phys_offset, b.phys_offset) << what;
  EXPECT_EQ(a.page_offset, b.page_offset) << what;
  EXPECT_EQ(a.reserved_bytes, b.reserved_bytes) << what;
  EXPECT_EQ(a.kmalloc_max, b.kmalloc_max) << what;
  EXPECT_EQ(a.min_free_kbytes, b.min_free_kbytes) << what;
  EXPECT_EQ(a.gc_slice_pages, b.gc_slice_pages) << what;
  EXPECT_EQ(a.gc_delay_ns, b.gc_delay_ns) << what;
  EXPECT_EQ(a.tlb_entries, b.tlb_entries) << what;
  EXPECT_EQ(a.tlb_ways, b.tlb_ways) << what;
  EXPECT_EQ(a.region_record_bytes, b.region_record_bytes) << what;
  EXPECT_EQ(a.boot_grace_ns, b.boot_grace_ns) << what;
  EXPECT_EQ(a.kmalloc, b.kmalloc) << what;
  EXPECT_EQ(a.protector, b.protector) << what;
  EXPECT_EQ(a.paper_table, b.paper_table) << what;
  EXPECT_EQ(a.cross_free, b.cross_free) << what;
  EXPECT_EQ(a.mmu, b.mmu) << what;
  EXPECT_EQ(a.pt, b.pt) << what;
  EXPECT_EQ(a.page_alloc, b.page_alloc) << what;
  EXPECT_EQ(a.range_direction, b.range_direction) << what;
  EXPECT_EQ(a.backing, b.backing) << what;
  EXPECT_EQ(a.hardening.freelist_hardened, b.hardening.freelist_hardened) << what;
  EXPECT_EQ(a.hardening.redzone, b.hardening.redzone) << what;
  EXPECT_EQ(a.hardening.poison, b.hardening.poison) << what;
  EXPECT_EQ(a.hardening.guard_pages, b.hardening.guard_pages) << what;
  EXPECT_EQ(a.hardening.quarantine_bytes, b.hardening.quarantine_bytes) << what;
}

std::string apply(const char* key, const std::string& v, BootConfig* cfg) {
  const BootOptionRow* row = find_boot_option(key);
  if (row == nullptr) return std::string("no row ") + key;
  return apply_boot_option(*row, v, cfg);
}

TEST(BootOptions, NoKeyListedTwice) {
  std::set<std::string> names;
  for (std::size_t i = 0; i < boot_option_row_count(); ++i)
    EXPECT_TRUE(names.insert(boot_option_rows()[i].name).second) << boot_option_rows()[i].name;
  EXPECT_EQ(names.size(), 27u);
  EXPECT_EQ(find_boot_option("bogus"), nullptr);
  EXPECT_EQ(find_boot_option("RAM"), nullptr);
}

TEST(BootOptions, EveryDefaultParsesToBootConfigsDefault) {
  std::set<std::string> untyped;
  for (std::size_t i = 0; i < boot_option_row_count(); ++i) {
    const BootOptionRow& r = boot_option_rows()[i];
    if (r.default_value == nullptr) {
      untyped.insert(r.name);
      continue;
    }
    BootConfig cfg;
    EXPECT_EQ(apply_boot_option(r, r.default_value, &cfg), "") << r.name << "=" << r.default_value;
    expect_same(cfg, BootConfig{}, std::string(r.name) + "=" + r.default_value);
  }
  // BootConfig's default of these two is "not given": min_free_kbytes's 0 is Linux's formula
  // (a typed 0 turns watermarks off), backing's null is volatile RAM.
  EXPECT_EQ(untyped, (std::set<std::string>{"min_free_kbytes", "backing"}));
}

// The errors of the choice and on/off rows are generated from their words; these are the
// scenario language's messages as they were when each row had its own if-chain.
TEST(BootOptions, EachChoiceRowsBadValueGivesTheGeneratedMessage) {
  const std::pair<const char*, const char*> want[] = {
      {"kmalloc", "kmalloc= takes pow2 or kmalloc2, not 'x'"},
      {"protector", "protector= takes off, report, reclaim or reclaim-unreachable, not 'x'"},
      {"tracker", "tracker= takes owner or paper-table, not 'x'"},
      {"cross_free", "cross_free= takes allow, report or refuse, not 'x'"},
      {"mmu", "mmu= takes on or off, not 'x'"},
      {"pt", "pt= takes armv7 or aarch64, not 'x'"},
      {"page_alloc", "page_alloc= takes buddy or range, not 'x'"},
      {"direction", "direction= takes seed, source or bottom-up, not 'x'"},
      {"format", "format= takes yes or no, not 'x'"},
      {"freelist_hardened", "freelist_hardened= takes on or off, not 'x'"},
      {"redzone", "redzone= takes on or off, not 'x'"},
      {"poison", "poison= takes on or off, not 'x'"},
      {"guard_pages", "guard_pages= takes on or off, not 'x'"},
  };
  std::set<std::string> checked;
  for (auto [key, message] : want) {
    BootConfig cfg;
    EXPECT_EQ(apply(key, "x", &cfg), message);
    checked.insert(key);
  }
  for (std::size_t i = 0; i < boot_option_row_count(); ++i) {
    const BootOptionRow& r = boot_option_rows()[i];
    if (r.kind != BootOptionKind::kChoice && r.kind != BootOptionKind::kOnOff) continue;
    EXPECT_TRUE(checked.count(r.name)) << r.name << ": a choice row without its message here";
    EXPECT_EQ(r.bad_value, nullptr) << r.name << ": a choice's error is generated";
  }
  BootConfig cfg;
  EXPECT_EQ(apply("mmu", "1", &cfg), "mmu= takes on or off, not '1'");  // strictly its words
  EXPECT_EQ(apply("kmalloc", "", &cfg), "kmalloc= takes pow2 or kmalloc2, not ''");
}

// Every word of every choice row applies; each sets what its name says.
TEST(BootOptions, EachChoiceWordSetsItsValue) {
  for (std::size_t i = 0; i < boot_option_row_count(); ++i) {
    const BootOptionRow& r = boot_option_rows()[i];
    if (r.kind != BootOptionKind::kChoice) continue;
    std::stringstream words(r.syntax);
    for (std::string w; std::getline(words, w, '|');) {
      BootConfig cfg;
      EXPECT_EQ(apply_boot_option(r, w, &cfg), "") << r.name << "=" << w;
    }
  }
  BootConfig c;
  EXPECT_EQ(apply("kmalloc", "kmalloc2", &c), "");
  EXPECT_EQ(c.kmalloc, KmallocPolicy::kKmalloc2);
  for (std::size_t m = 0; m < kNrProtectorModes; ++m) {
    EXPECT_EQ(apply("protector", kProtectorModeNames[m], &c), "");
    EXPECT_EQ(c.protector, static_cast<ProtectorMode>(m));
  }
  EXPECT_EQ(apply("tracker", "paper-table", &c), "");
  EXPECT_TRUE(c.paper_table);
  EXPECT_EQ(apply("cross_free", "report", &c), "");
  EXPECT_EQ(c.cross_free, CrossFree::kReport);
  EXPECT_EQ(apply("cross_free", "refuse", &c), "");
  EXPECT_EQ(c.cross_free, CrossFree::kRefuse);
  EXPECT_EQ(apply("mmu", "off", &c), "");
  EXPECT_FALSE(c.mmu);
  EXPECT_EQ(apply("pt", "aarch64", &c), "");
  EXPECT_EQ(c.pt, PtFormat::kAarch64);
  EXPECT_EQ(apply("page_alloc", "range", &c), "");
  EXPECT_EQ(c.page_alloc, PageAllocKind::kRange);
  EXPECT_EQ(apply("direction", "source", &c), "");
  EXPECT_EQ(c.range_direction, RangeDirection::kSource);
  EXPECT_EQ(apply("direction", "bottom-up", &c), "");
  EXPECT_EQ(c.range_direction, RangeDirection::kBottomUp);
}

// The numbers: ranges, the messages (byte for byte), and what a value sets.
TEST(BootOptions, NumbersDurationsAndHardening) {
  BootConfig c;
  EXPECT_EQ(apply("ram", "64M", &c), "");
  EXPECT_EQ(c.ram_bytes, 64u << 20);
  EXPECT_EQ(apply("ram", "-1", &c), "bad ram size '-1'");
  EXPECT_EQ(apply("reserved", "x", &c), "bad reserved size 'x'");
  EXPECT_EQ(apply("phys_offset", "zz", &c), "bad phys_offset 'zz'");
  EXPECT_EQ(apply("page_offset", "0xffff000000000000", &c), "");  // above INT64_MAX
  EXPECT_EQ(c.page_offset, 0xffff000000000000ull);
  EXPECT_EQ(apply("page_offset", "junk", &c), "bad page_offset 'junk'");
  EXPECT_EQ(apply("min_free_kbytes", "0", &c), "");
  EXPECT_EQ(c.min_free_kbytes, ~std::uint64_t{0});
  EXPECT_EQ(apply("gc_slice", "0", &c), "bad gc_slice '0'");
  EXPECT_EQ(apply("gc_slice", "1073741825", &c), "bad gc_slice '1073741825'");
  EXPECT_EQ(apply("gc_slice", "1073741824", &c), "");
  EXPECT_EQ(apply("tlb", "0", &c), "tlb= takes 1..512 entries, not '0'");
  EXPECT_EQ(apply("tlb", "513", &c), "tlb= takes 1..512 entries, not '513'");
  EXPECT_EQ(apply("tlb", "512", &c), "");
  EXPECT_EQ(c.tlb_entries, 512u);
  EXPECT_EQ(apply("tlb_ways", "513", &c), "bad tlb_ways '513' (0: fully associative)");
  EXPECT_EQ(apply("region_record", "4097", &c), "bad region_record '4097'");
  EXPECT_EQ(apply("gc_delay", "1min", &c), "");
  EXPECT_EQ(c.gc_delay_ns, 60'000'000'000ull);
  EXPECT_EQ(apply("gc_delay", "abc", &c), "bad gc_delay 'abc' (e.g. 5s, 500ms)");
  EXPECT_EQ(apply("boot_grace", "x", &c), "bad boot_grace 'x' (e.g. 10s)");
  EXPECT_EQ(apply("freelist_hardened", "1", &c), "");  // slab/hardening.h's switch words
  EXPECT_TRUE(c.hardening.freelist_hardened);
  EXPECT_EQ(apply("quarantine", "64K", &c), "");
  EXPECT_EQ(c.hardening.quarantine_bytes, 64u << 10);
  EXPECT_EQ(apply("quarantine", "2G", &c), "quarantine= takes a size up to 1G (0, 64K, 1M), not '2G'");
  EXPECT_EQ(apply("backing", "", &c), "backing= takes a file's path, not nothing");  // was ": No such file"
}

// The keys the scenario `boot` line shares with KMM_OPTIONS (kernel/boot_settings.h): every
// key both tables accept has one row there, and both tables show that row's syntax and help
// and its default for their kind of machine, so the two cannot drift apart.
TEST(BootOptions, KeysSharedWithKmmOptionsAgree) {
  std::set<std::pair<std::string, std::string>> shared;  // {boot key, KMM_OPTIONS key}
  for (const BootSetting* s : kBootSettings) {
    const BootOptionRow* b = find_boot_option(s->boot_key);
    const shim::OptionRow* o = shim::find_option_row(s->options_key, std::strlen(s->options_key));
    ASSERT_NE(b, nullptr) << s->boot_key << ": a shared row the scenario does not take";
    ASSERT_NE(o, nullptr) << s->options_key << ": a shared row KMM_OPTIONS does not take";
    EXPECT_STREQ(b->syntax, s->syntax) << s->boot_key;
    EXPECT_STREQ(o->syntax, s->syntax) << s->options_key;
    EXPECT_STREQ(b->help, s->machine_help) << s->boot_key;
    EXPECT_STREQ(o->meaning, s->process_help) << s->options_key;
    ASSERT_NE(b->default_value, nullptr) << s->boot_key;
    EXPECT_STREQ(b->default_value, s->machine_default) << s->boot_key;
    EXPECT_STREQ(o->default_value, s->process_default) << s->options_key;
    EXPECT_FALSE(o->hidden) << s->options_key;
    shared.insert({s->boot_key, s->options_key});
  }
  // A key both tables take under one name is a shared row (a new one must be added there).
  for (std::size_t i = 0; i < boot_option_row_count(); ++i) {
    const char* name = boot_option_rows()[i].name;
    if (shim::find_option_row(name, std::strlen(name)) != nullptr) {
      EXPECT_TRUE(shared.count({name, name})) << name << ": in both tables, not in kernel/boot_settings.h";
    }
  }
  // The one key named differently: the protector's mode (both names are the interfaces').
  EXPECT_TRUE(shared.count({"protector", "protect"}));
  EXPECT_EQ(shared.size(), 8u);
  // Where a modelled machine and a process boot differently, and only there: the paper's stock
  // kernel has the protector off and 192 MB of RAM; a process gets protect=report and the
  // default reservation.
  std::set<std::string> differ;
  for (const BootSetting* s : kBootSettings)
    if (std::strcmp(s->machine_default, s->process_default) != 0) differ.insert(s->boot_key);
  EXPECT_EQ(differ, (std::set<std::string>{"protector", "ram"}));
  // And their help lines, only where the value means or takes something else: ram= (RAM, at
  // least 256K; the reservation, 0 or 64M and more) and quarantine= (a quarter of RAM, of ram).
  std::set<std::string> help_differs;
  for (const BootSetting* s : kBootSettings)
    if (std::strcmp(s->machine_help, s->process_help) != 0) help_differs.insert(s->boot_key);
  EXPECT_EQ(help_differs, (std::set<std::string>{"quarantine", "ram"}));
}

// docs/SCENARIOS.md's "### boot options" section: every `KEY=...` it names, against the table.
TEST(BootOptions, ScenarioDocListsExactlyTheTable) {
  std::ifstream doc(KMM_SOURCE_DIR "/docs/SCENARIOS.md");
  ASSERT_TRUE(doc) << "docs/SCENARIOS.md not found under " KMM_SOURCE_DIR;
  std::string section, line;
  bool in_section = false;
  while (std::getline(doc, line)) {
    if (!in_section) {
      in_section = line == "### boot options";
      continue;
    }
    if (line.rfind("#", 0) == 0) break;  // the next heading
    section += line + "\n";
  }
  std::set<std::string> documented;
  for (std::size_t at = section.find('`'); at != std::string::npos; at = section.find('`', at)) {
    std::size_t end = section.find('`', at + 1);
    ASSERT_NE(end, std::string::npos) << "unclosed ` in docs/SCENARIOS.md's boot options";
    std::string code = section.substr(at + 1, end - at - 1);
    std::size_t eq = code.find('=');
    if (eq != std::string::npos && eq != 0) documented.insert(code.substr(0, eq));
    at = end + 1;
  }
  ASSERT_FALSE(documented.empty()) << "no boot options section in docs/SCENARIOS.md";
  std::set<std::string> keys;
  for (std::size_t i = 0; i < boot_option_row_count(); ++i) keys.insert(boot_option_rows()[i].name);
  for (const std::string& k : keys) EXPECT_TRUE(documented.count(k)) << k << ": in the table, not in SCENARIOS.md";
  for (const std::string& k : documented) EXPECT_TRUE(keys.count(k)) << k << ": in SCENARIOS.md, not in the table";
}

}  // namespace
// boot ... format=yes removes the heap file first (persist_discard): never one that another
// live process has attached (its lock is held), which would go on writing into a deleted file
// and lose everything at its exit (before stop 48 it was removed all the same).
TEST(BootOptions, FormatYesLeavesAHeapAnotherProcessHasAttached) {
  std::string path = "/tmp/kmm-format-yes-" + std::to_string(::getpid()) + ".heap";
  ::unlink(path.c_str());
  FilePlatform attached;  // another open file: to flock, another process
  ASSERT_EQ(attached.open(path.c_str(), std::uint64_t{4} << 20), FileOpenResult::kFormat) << attached.error();
  std::string error;
  EXPECT_FALSE(persist_discard(path.c_str(), &error));
  EXPECT_NE(error.find("attached by another live process"), std::string::npos) << error;
  EXPECT_EQ(::access(path.c_str(), F_OK), 0) << "removed";
  attached.close(false);
  error.clear();
  EXPECT_TRUE(persist_discard(path.c_str(), &error)) << error;
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "a heap no one holds is removed";
}

}  // namespace kmm::scenario
