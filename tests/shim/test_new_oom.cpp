// tests/shim/test_new_oom.cpp — operator new out of memory under kmm keeps the standard's
// contract (issue 20): the new-handler is called in a loop; with none, the throwing forms
// throw std::bad_alloc and the nothrow forms return null; a handler that throws makes a
// nothrow form return null; a handler that frees memory lets the allocation succeed.
// Runs with KMM_OPTIONS=ram=64M (tests/shim/CMakeLists.txt), so that RAM can run out.
#include <gtest/gtest.h>

#include <cstdint>
#include <new>
#include <vector>

#include "kmm/kmm.h"

namespace {

constexpr std::size_t kAbsurd = SIZE_MAX / 4;  // no mapping can hold it

int g_calls = 0;
int g_give_up_after = 0;

void counting_handler() {
  if (++g_calls >= g_give_up_after) std::set_new_handler(nullptr);
}

void throwing_handler() {
  ++g_calls;
  throw std::bad_alloc();
}

class NewOom : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(kmm_active());
    g_calls = 0;
  }
  void TearDown() override { std::set_new_handler(nullptr); }
};

void* volatile g_sink;

TEST_F(NewOom, ThrowingFormsThrowBadAlloc) {
  EXPECT_THROW(g_sink = ::operator new(kAbsurd), std::bad_alloc);
  EXPECT_THROW(g_sink = ::operator new[](kAbsurd), std::bad_alloc);
  EXPECT_THROW(g_sink = ::operator new (kAbsurd, std::align_val_t{64}), std::bad_alloc);
  EXPECT_THROW(g_sink = ::operator new[](kAbsurd, std::align_val_t{8192}), std::bad_alloc);
}

TEST_F(NewOom, NothrowFormsReturnNull) {
  EXPECT_EQ(::operator new(kAbsurd, std::nothrow), nullptr);
  EXPECT_EQ(::operator new[](kAbsurd, std::nothrow), nullptr);
  EXPECT_EQ(::operator new (kAbsurd, std::align_val_t{64}, std::nothrow), nullptr);
  EXPECT_EQ(::operator new[](kAbsurd, std::align_val_t{8192}, std::nothrow), nullptr);
}

TEST_F(NewOom, HandlerIsCalledInALoopUntilItGivesUp) {
  for (int form = 0; form < 4; ++form) {
    g_calls = 0;
    g_give_up_after = 3;
    std::set_new_handler(counting_handler);
    try {
      switch (form) {
        case 0:
          g_sink = ::operator new(kAbsurd);
          break;
        case 1:
          g_sink = ::operator new[](kAbsurd);
          break;
        case 2:
          g_sink = ::operator new (kAbsurd, std::align_val_t{64});
          break;
        default:
          g_sink = ::operator new[](kAbsurd, std::align_val_t{64});
          break;
      }
      ADD_FAILURE() << "form " << form << " did not throw";
    } catch (const std::bad_alloc&) {
    }
    EXPECT_EQ(g_calls, 3) << "form " << form;
  }
}

TEST_F(NewOom, NothrowFormsCallTheHandlerAndReturnNullWhenItThrows) {
  std::set_new_handler(throwing_handler);
  EXPECT_EQ(::operator new(kAbsurd, std::nothrow), nullptr);
  EXPECT_EQ(::operator new[](kAbsurd, std::nothrow), nullptr);
  EXPECT_EQ(::operator new (kAbsurd, std::align_val_t{64}, std::nothrow), nullptr);
  EXPECT_EQ(::operator new[](kAbsurd, std::align_val_t{64}, std::nothrow), nullptr);
  EXPECT_EQ(g_calls, 4);
}

// RAM (ram=64M) runs out for 4 MiB blocks; a handler that frees one lets the next succeed.
std::vector<void*>* g_reserve;
void freeing_handler() {
  ++g_calls;
  if (g_reserve->empty()) {
    std::set_new_handler(nullptr);
    return;
  }
  ::operator delete(g_reserve->back());
  g_reserve->pop_back();
}

TEST_F(NewOom, HandlerThatFreesMemoryLetsNewSucceed) {
  constexpr std::size_t kBlock = 4u << 20;  // the largest block kmm's RAM serves
  std::vector<void*> held;
  held.reserve(64);
  try {
    for (int i = 0; i < 64; ++i) held.push_back(::operator new(kBlock));
    FAIL() << "64 blocks of 4 MiB fitted in ram=64M";
  } catch (const std::bad_alloc&) {
  }
  ASSERT_GE(held.size(), 2u);
  g_reserve = &held;
  std::set_new_handler(freeing_handler);
  void* p = ::operator new(kBlock);  // out of memory: the handler frees one, the retry succeeds
  EXPECT_NE(p, nullptr);
  EXPECT_EQ(g_calls, 1);
  ::operator delete(p);
  for (void* q : held) ::operator delete(q);
}

}  // namespace
