// tests/scenario/test_command_table.cpp — the scenario command table (scenario/command_table.h) against
// the interpreter: every row is a command that a machine of its family runs (never "unknown
// command"), a row's usage is what the interpreter prints when the command is given wrong,
// the names a machine sees are unique, and a command of the other kind of machine is named
// as such in the "unknown command" error.
#include <gtest/gtest.h>

#include <set>
#include <sstream>
#include <string>

#include "scenario/command_table.h"
#include "scenario/scenario.h"
#include "script_run.h"

namespace kmm::scenario {
namespace {

using Result = test::ScriptRun;
using test::run;
using test::has;

// Each row, bare (no arguments), on each kind of machine its family runs on.
TEST(CommandTable, EveryRowIsACommandTheInterpreterRuns) {
  unsigned runs = 0, usages = 0;
  for (const CommandRow& r : command_table()) {
    for (bool mmu : {true, false}) {
      if (!family_applies(r.family, mmu)) continue;
      std::string boot = mmu ? "boot ram=16M\n" : "boot ram=16M mmu=off\n";
      Result res = run(boot + r.name + "\n");
      ++runs;
      EXPECT_FALSE(has(res.err, "unknown command")) << r.name << (mmu ? " (mmu)" : " (nommu)") << ": " << res.err;
      EXPECT_NE(find_command(r.name, mmu), nullptr) << r.name;
      // Given wrong, it says the usage of its row.
      if (has(res.err, "usage: ")) {
        ++usages;
        EXPECT_TRUE(has(res.err, std::string("error: usage: ") + r.usage)) << r.name << ": " << res.err;
      }
    }
  }
  EXPECT_GE(runs, command_table().size());
  EXPECT_GE(usages, 20u) << "most commands need arguments: their usage comes from the table";
}

TEST(CommandTable, NamesAreUniqueOnEachKindOfMachine) {
  for (bool mmu : {true, false}) {
    std::set<std::string> seen;
    for (const CommandRow& r : command_table()) {
      if (!family_applies(r.family, mmu)) continue;
      EXPECT_TRUE(seen.insert(r.name).second) << "duplicate " << r.name << (mmu ? " (mmu)" : " (nommu)");
    }
  }
  // Rows are grouped by family, in the order of CommandFamily (help prints them so).
  int last = -1;
  for (const CommandRow& r : command_table()) {
    EXPECT_GE(static_cast<int>(r.family), last) << r.name;
    last = static_cast<int>(r.family);
    EXPECT_FALSE(std::string(r.summary).empty()) << r.name;
    EXPECT_EQ(std::string(r.usage).rfind(r.name, 0), 0u) << "usage starts with the name: " << r.name;
  }
}

TEST(CommandTable, TheCoreLanguageIsInTheTable) {
  // DESIGN.md's CONTRACT commands.
  for (const char* c :
       {"boot", "insmod", "rmmod", "lsmod", "kmalloc", "kfree",    "vmalloc",   "vfree", "idle",   "cat", "spawn",
        "exit", "malloc", "free",  "link",  "unlink",  "transfer", "translate", "map",   "reboot", "let", "expect"}) {
    EXPECT_TRUE(find_command(c, true) != nullptr || find_command(c, false) != nullptr) << c;
  }
}

TEST(CommandTable, UnknownCommandErrorComesFromTheTable) {
  Result r = run("boot ram=16M\nkmallok kernel 64\n");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "t.kms:2: error: " + unknown_command_error("kmallok", true) + "\n");
  EXPECT_EQ(unknown_command_error("kmallok", true), "unknown command 'kmallok'");
  EXPECT_EQ(unknown_command_error("kmallok", false), "unknown command 'kmallok' (on a mmu=off machine)");

  Result nommu = run("boot ram=16M mmu=off\nmmap p 4K\n");
  EXPECT_EQ(nommu.code, 2);
  EXPECT_TRUE(has(nommu.err, "unknown command 'mmap' (on a mmu=off machine; mmap needs mmu=on)")) << nommu.err;
  Result mmu = run("boot ram=16M\nps\n");
  EXPECT_EQ(mmu.code, 2);
  EXPECT_TRUE(has(mmu.err, "unknown command 'ps' (ps is a command of mmu=off machines)")) << mmu.err;
}

TEST(CommandTable, UsageOfTheMachineKindsRow) {
  EXPECT_EQ(command_usage("free", CommandFamily::kNommu), "usage: free LABEL [by PROC]");
  EXPECT_EQ(command_usage("free", CommandFamily::kMmu), "usage: free LABEL");
  Result r = run("boot ram=16M mmu=off\nfree\n");
  EXPECT_TRUE(has(r.err, "t.kms:2: error: usage: free LABEL [by PROC]")) << r.err;
}

}  // namespace
}  // namespace kmm::scenario
