// tests/scenario/test_persist_commands.cpp — the persistent-RAM scenario commands
// (src/scenario/persist_commands.cpp): named roots. `root set` names only a live block of the
// machine's RAM, `root get` turns only such a root back into a label (a root is a value the
// heap file chose, docs/SECURITY.md), and its label must be a label.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "scenario/scenario.h"
#include "script_run.h"

namespace kmm::scenario {
namespace {

using Result = test::ScriptRun;
using test::has;
using test::run;

std::string heap_path(const char* tag) {
  return "/tmp/kmm-persist-commands-" + std::string(tag) + "-" + std::to_string(::getpid()) + ".heap";
}

TEST(PersistCommands, ARootNamesOnlyALiveBlock) {
  // A zero-size block or a freed one was accepted as a root, and `root get` then printed the
  // kernel address of a pointer outside RAM (0xffff80e587400010) as a block.
  std::string path = heap_path("roots");
  std::remove(path.c_str());
  Result r = run("boot ram=16M backing=" + path +
                 " format=yes\n"
                 "kmalloc kernel 0 as z\nroot set r z\nexpect last.failed == 1\n"
                 "kmalloc kernel 100 as a\nkfree a\nroot set r a\nexpect last.failed == 1\n"
                 "kmalloc kernel 100 as b\nroot set r b\nexpect last.failed == 0\n"
                 "root get r as c\nexpect last.failed == 0 && ksize.c == 128\n"
                 "root get nothing as d\nexpect last.failed == 1\ncheck\n");
  std::remove(path.c_str());
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "root set: 'z' is not a live block")) << r.out;
  EXPECT_TRUE(has(r.out, "root set: 'a' is not a live block")) << r.out;
  EXPECT_FALSE(has(r.out, "0xffff")) << r.out;
}

TEST(PersistCommands, RootGetWantsALabel) {
  // `root get r as <b>x</b>` made a label no other command could name.
  Result r = run("boot ram=16M\nkmalloc kernel 100 as a\nroot set r a\nroot get r as <b>x</b>\n");
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_TRUE(has(r.err, "usage: root")) << r.err;
}

}  // namespace
}  // namespace kmm::scenario
