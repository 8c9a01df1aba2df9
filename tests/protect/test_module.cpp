// tests/protect/test_module.cpp — the module registry on its own: insmod/rmmod states
// (Free -> Live -> Gone -> Free only through release), the refusals (already loaded, not
// loaded, table full, bad names), new owner ids on reload, owner_name and dead_owners.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "protect/module.h"

namespace kmm {
namespace {

class ModuleTest : public ::testing::Test {
 protected:
  void SetUp() override { reg->init(); }
  std::unique_ptr<ModuleRegistry> reg = std::make_unique<ModuleRegistry>();
};

TEST_F(ModuleTest, LoadMakesLiveModuleWithFirstModuleId) {
  owner_t o = kOwnerFree;
  ASSERT_EQ(reg->load("m_test", 16384, 100, &o), ModuleError::kOk);
  EXPECT_EQ(o, kOwnerFirstModule);
  const Module* m = reg->module(o);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->state, ModuleState::kLive);
  EXPECT_STREQ(m->name, "m_test");
  EXPECT_EQ(m->core_size, 16384u);
  EXPECT_EQ(m->address, 0xbf000000ull);
  EXPECT_EQ(m->load_ns, 100u);
  EXPECT_EQ(m->instance, 0u);
  EXPECT_EQ(reg->find_live("m_test"), o);
  EXPECT_TRUE(reg->is_live_owner(o));
  EXPECT_EQ(reg->nr_live(), 1u);
  EXPECT_EQ(reg->nr_gone(), 0u);
}

TEST_F(ModuleTest, LoadAddressesAdvanceByPageRoundedSize) {
  owner_t a, b, c;
  ASSERT_EQ(reg->load("a", 5000, 0, &a), ModuleError::kOk);
  ASSERT_EQ(reg->load("b", 0, 0, &b), ModuleError::kOk);
  ASSERT_EQ(reg->load("c", 4096, 0, &c), ModuleError::kOk);
  EXPECT_EQ(reg->module(a)->address, 0xbf000000ull);
  EXPECT_EQ(reg->module(b)->address, 0xbf002000ull);  // 5000 rounds to 8K
  EXPECT_EQ(reg->module(c)->address, 0xbf003000ull);  // size 0 takes one page
}

TEST_F(ModuleTest, AHugeCoreSizeNeitherWrapsNorOverlapsTheNextModule) {
  // insmod m size=0x7ffffffffffff000: the next address wrapped past 2^64 and later modules
  // showed addresses overlapping earlier ones.
  owner_t a, b, c;
  ASSERT_EQ(reg->load("a", 0x7ffffffffffff000ull, 0, &a), ModuleError::kOk);
  ASSERT_EQ(reg->load("b", 16384, 0, &b), ModuleError::kOk);
  ASSERT_EQ(reg->load("c", 16384, 0, &c), ModuleError::kOk);
  EXPECT_EQ(reg->module(a)->address, 0xbf000000ull);
  EXPECT_GT(reg->module(b)->address, reg->module(a)->address);
  EXPECT_EQ(reg->module(c)->address, reg->module(b)->address + 16384);
}

TEST_F(ModuleTest, UnloadMakesGoneNotFree) {
  owner_t o, u;
  ASSERT_EQ(reg->load("m_test", 16384, 0, &o), ModuleError::kOk);
  ASSERT_EQ(reg->unload("m_test", 500, &u), ModuleError::kOk);
  EXPECT_EQ(u, o);
  const Module* m = reg->module(o);
  ASSERT_NE(m, nullptr) << "a Gone module keeps its slot until release";
  EXPECT_EQ(m->state, ModuleState::kGone);
  EXPECT_EQ(m->unload_ns, 500u);
  EXPECT_EQ(reg->find_live("m_test"), kOwnerFree);
  EXPECT_FALSE(reg->is_live_owner(o));
  EXPECT_STREQ(reg->owner_name(o), "m_test") << "a gone module's blocks still name it";
  EXPECT_EQ(reg->nr_live(), 0u);
  EXPECT_EQ(reg->nr_gone(), 1u);

  bool dead[kMaxOwners];
  EXPECT_EQ(reg->dead_owners(dead), 1u);
  for (unsigned i = 0; i < kMaxOwners; ++i) EXPECT_EQ(dead[i], i == o) << "owner " << i;

  // A Gone slot is not reused by a later insmod while it is Gone.
  owner_t other;
  ASSERT_EQ(reg->load("other", 0, 0, &other), ModuleError::kOk);
  EXPECT_NE(other, o);
}

TEST_F(ModuleTest, AHeldGoneModuleIsNotDeadUntilItsLastHoldGoes) {
  owner_t o, u;
  ASSERT_EQ(reg->load("worker", 0, 0, &o), ModuleError::kOk);
  ASSERT_TRUE(reg->hold(o));
  ASSERT_TRUE(reg->hold(o));
  EXPECT_EQ(reg->holds(o), 2u);
  ASSERT_EQ(reg->unload("worker", 10, &u), ModuleError::kOk);
  EXPECT_FALSE(reg->hold(o)) << "a Gone module takes no new hold";
  EXPECT_EQ(reg->module(o)->state, ModuleState::kGone);
  bool dead[kMaxOwners];
  EXPECT_EQ(reg->dead_owners(dead), 0u);
  EXPECT_FALSE(dead[o]);
  EXPECT_EQ(reg->nr_gone(), 0u) << "nothing for the collector while a thread works for it";
  reg->release(o);
  EXPECT_EQ(reg->module(o)->state, ModuleState::kGone) << "a held slot is never reused";
  reg->unhold(o);
  EXPECT_EQ(reg->dead_owners(dead), 0u);
  reg->unhold(o);
  EXPECT_EQ(reg->dead_owners(dead), 1u);
  EXPECT_TRUE(dead[o]);
  EXPECT_EQ(reg->nr_gone(), 1u);
  reg->unhold(o);  // one too many: ignored
  EXPECT_EQ(reg->holds(o), 0u);
  EXPECT_FALSE(reg->hold(kOwnerKernel));
  EXPECT_FALSE(reg->hold(kOwnerUntracked));
}

TEST_F(ModuleTest, AForksChildKeepsOnlyItsOwnThreadsHolds) {
  owner_t a, b, u;
  ASSERT_EQ(reg->load("a", 0, 0, &a), ModuleError::kOk);
  ASSERT_EQ(reg->load("b", 0, 0, &b), ModuleError::kOk);
  ASSERT_TRUE(reg->hold(a));  // another thread's
  ASSERT_TRUE(reg->hold(b));  // the forking thread's
  ASSERT_EQ(reg->unload("b", 0, &u), ModuleError::kOk);
  const owner_t mine[] = {b, kOwnerKernel};
  reg->reset_holds(mine, 2);
  EXPECT_EQ(reg->holds(a), 0u);
  EXPECT_EQ(reg->holds(b), 1u) << "kept though b is Gone now";
  bool dead[kMaxOwners];
  EXPECT_EQ(reg->dead_owners(dead), 0u);
}

TEST_F(ModuleTest, ReleaseOnlyFreesGoneSlots) {
  owner_t o;
  ASSERT_EQ(reg->load("m", 0, 0, &o), ModuleError::kOk);
  reg->release(o);  // Live: release must not touch it
  ASSERT_NE(reg->module(o), nullptr);
  EXPECT_EQ(reg->module(o)->state, ModuleState::kLive);
  owner_t u;
  ASSERT_EQ(reg->unload("m", 0, &u), ModuleError::kOk);
  reg->release(o);
  EXPECT_EQ(reg->module(o), nullptr);
  EXPECT_STREQ(reg->owner_name(o), "?");
  EXPECT_EQ(reg->nr_gone(), 0u);
  // The freed slot is the first free one again.
  owner_t again;
  ASSERT_EQ(reg->load("n", 0, 0, &again), ModuleError::kOk);
  EXPECT_EQ(again, o);
  // Out-of-range owners are ignored.
  reg->release(kOwnerKernel);
  reg->release(kOwnerUntracked);
  EXPECT_EQ(reg->nr_live(), 1u);
}

TEST_F(ModuleTest, DoubleInsmodRefused) {
  owner_t o, o2 = 77;
  ASSERT_EQ(reg->load("m_test", 0, 0, &o), ModuleError::kOk);
  EXPECT_EQ(reg->load("m_test", 0, 0, &o2), ModuleError::kAlreadyLoaded);
  EXPECT_EQ(o2, 77) << "refused load must not write an owner";
  EXPECT_EQ(reg->nr_live(), 1u);
  EXPECT_STREQ(module_error_text(ModuleError::kAlreadyLoaded), "module is already loaded");
}

TEST_F(ModuleTest, RmmodOfModuleNotLoaded) {
  owner_t o;
  EXPECT_EQ(reg->unload("nothing", 0, &o), ModuleError::kNotLoaded);
  ASSERT_EQ(reg->load("m", 0, 0, &o), ModuleError::kOk);
  ASSERT_EQ(reg->unload("m", 0, &o), ModuleError::kOk);
  EXPECT_EQ(reg->unload("m", 0, &o), ModuleError::kNotLoaded) << "a Gone module is not loaded";
  EXPECT_STREQ(module_error_text(ModuleError::kNotLoaded), "module is not loaded");
}

TEST_F(ModuleTest, ReloadGivesNewOwnerWhileOldIsGone) {
  owner_t first, gone, second;
  ASSERT_EQ(reg->load("m_test", 0, 0, &first), ModuleError::kOk);
  ASSERT_EQ(reg->unload("m_test", 0, &gone), ModuleError::kOk);
  ASSERT_EQ(reg->load("m_test", 0, 0, &second), ModuleError::kOk);
  EXPECT_NE(first, second);
  EXPECT_EQ(reg->module(first)->state, ModuleState::kGone);
  EXPECT_EQ(reg->module(second)->state, ModuleState::kLive);
  EXPECT_EQ(reg->module(second)->instance, 1u);
  EXPECT_EQ(reg->find_live("m_test"), second);
  EXPECT_STREQ(reg->owner_name(first), "m_test");
  EXPECT_STREQ(reg->owner_name(second), "m_test");
  // Unloading the second time hits the live instance, not the gone one.
  owner_t u;
  ASSERT_EQ(reg->unload("m_test", 0, &u), ModuleError::kOk);
  EXPECT_EQ(u, second);
  EXPECT_EQ(reg->nr_gone(), 2u);
}

TEST_F(ModuleTest, TableFull) {
  owner_t o;
  for (unsigned i = 0; i < kMaxModules; ++i) {
    std::string name = "mod" + std::to_string(i);
    ASSERT_EQ(reg->load(name.c_str(), 0, 0, &o), ModuleError::kOk) << i;
    EXPECT_EQ(o, static_cast<owner_t>(kOwnerFirstModule + i));
  }
  EXPECT_EQ(o, kOwnerUntracked - 1);
  EXPECT_EQ(reg->load("one_more", 0, 0, &o), ModuleError::kTableFull);
  EXPECT_EQ(reg->nr_live(), kMaxModules);
  // Gone slots still count as taken.
  ASSERT_EQ(reg->unload("mod7", 0, &o), ModuleError::kOk);
  EXPECT_EQ(reg->load("one_more", 0, 0, &o), ModuleError::kTableFull);
  reg->release(static_cast<owner_t>(kOwnerFirstModule + 7));
  ASSERT_EQ(reg->load("one_more", 0, 0, &o), ModuleError::kOk);
  EXPECT_EQ(o, kOwnerFirstModule + 7);
}

TEST_F(ModuleTest, BadNames) {
  owner_t o;
  EXPECT_EQ(reg->load("", 0, 0, &o), ModuleError::kBadName);
  EXPECT_EQ(reg->load("kernel", 0, 0, &o), ModuleError::kBadName);
  // The names of owners that are not modules: their rows would pass for the untracked owner's
  // and a free slot's.
  EXPECT_EQ(reg->load("untracked", 0, 0, &o), ModuleError::kBadName);
  EXPECT_EQ(reg->load("?", 0, 0, &o), ModuleError::kBadName);
  std::string longest(kModuleNameLen - 1, 'x');
  std::string too_long(kModuleNameLen, 'x');
  EXPECT_EQ(reg->load(too_long.c_str(), 0, 0, &o), ModuleError::kBadName);
  EXPECT_EQ(reg->load(longest.c_str(), 0, 0, &o), ModuleError::kOk);
  EXPECT_EQ(std::string(reg->owner_name(o)), longest);
  EXPECT_EQ(reg->nr_live(), 1u);
}

TEST_F(ModuleTest, OwnerNames) {
  EXPECT_STREQ(reg->owner_name(kOwnerKernel), "kernel");
  EXPECT_STREQ(reg->owner_name(kOwnerUntracked), "untracked");
  EXPECT_STREQ(reg->owner_name(kOwnerFree), "?");
  EXPECT_STREQ(reg->owner_name(kOwnerFirstModule), "?") << "free slot";
  owner_t o;
  ASSERT_EQ(reg->load("alpha", 0, 0, &o), ModuleError::kOk);
  EXPECT_STREQ(reg->owner_name(o), "alpha");
  EXPECT_TRUE(reg->is_live_owner(kOwnerKernel));
  EXPECT_TRUE(reg->is_live_owner(kOwnerUntracked));
  EXPECT_FALSE(reg->is_live_owner(kOwnerFree));
  EXPECT_EQ(reg->module(kOwnerKernel), nullptr);
}

TEST_F(ModuleTest, MarkReportedSticksToTheInstance) {
  owner_t o, u, again;
  ASSERT_EQ(reg->load("m", 0, 0, &o), ModuleError::kOk);
  ASSERT_EQ(reg->unload("m", 0, &u), ModuleError::kOk);
  reg->mark_reported(o);
  EXPECT_TRUE(reg->module(o)->leaks_reported);
  reg->release(o);
  ASSERT_EQ(reg->load("m", 0, 0, &again), ModuleError::kOk);
  EXPECT_EQ(again, o);
  EXPECT_FALSE(reg->module(again)->leaks_reported) << "a new instance starts unreported";
  EXPECT_EQ(reg->module(again)->instance, 0u) << "the earlier instance was released";
}

}  // namespace
}  // namespace kmm
