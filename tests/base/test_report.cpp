// tests/base/test_report.cpp — the report component: the one-line text (action, pointer,
// cache, size, detail), counting, the hook, the kReport policy returning to the caller, and
// death tests: the default policy aborts, and kCorruption aborts even under kReport.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "../common/report_capture.h"
#include "base/report.h"
#include "base/text.h"

namespace kmm {
namespace {

// Any address will do; truncated to 32 bits (0x2a401040) on a 32-bit target.
const void* const kPtr = reinterpret_cast<const void*>(static_cast<std::uintptr_t>(0x7f3c2a401040ull));

std::string hexptr(const void* p) {
  StackText<32> t;
  t.ptr(p);
  return t.data();
}

TEST(Report, TextNamesActionPointerCacheSize) {
  test::ReportCapture cap;
  report({ErrorKind::kDoubleFree, "kfree", kPtr, "kmalloc-64", 64, nullptr});
  EXPECT_EQ(cap.text(), "kmm: ERROR: double free in kfree: pointer " + hexptr(kPtr) + " (cache kmalloc-64, size 64)\n");
  EXPECT_EQ(report_count(), 1u);
  ASSERT_EQ(cap.count(), 1u);
  EXPECT_EQ(cap.last().kind, ErrorKind::kDoubleFree);
  EXPECT_EQ(cap.last().action, "kfree");
  EXPECT_EQ(cap.last().pointer, kPtr);
  EXPECT_EQ(cap.last().cache, "kmalloc-64");
  EXPECT_EQ(cap.last().size, 64u);
}

TEST(Report, OptionalPartsLeftOut) {
  test::ReportCapture cap;
  report({ErrorKind::kForeignPointer, "kfree", nullptr, nullptr, 0, "not inside this machine's memory"});
  EXPECT_EQ(cap.text(), "kmm: ERROR: free of a pointer kmm does not own in kfree: pointer " + hexptr(nullptr) +
                            ": not inside this machine's memory\n");
  cap.clear();
  report({ErrorKind::kSizeOverflow, "kcalloc", nullptr, nullptr, 4096, "x"});
  EXPECT_EQ(cap.text(),
            "kmm: ERROR: allocation size overflow in kcalloc: pointer " + hexptr(nullptr) + " (size 4096): x\n");
  cap.clear();
  report({ErrorKind::kWrongCache, nullptr, kPtr, "dentry", 0, nullptr});
  EXPECT_EQ(cap.text(), "kmm: ERROR: free into the wrong cache in ?: pointer " + hexptr(kPtr) + " (cache dentry)\n");
  EXPECT_EQ(report_count(), 3u);
}

TEST(Report, CountsAndResets) {
  test::ReportCapture cap;
  for (int k = 0; k < 5; ++k) report({ErrorKind::kBadArgument, "alloc_pages", nullptr, nullptr, 0, nullptr});
  EXPECT_EQ(report_count(), 5u);
  EXPECT_EQ(cap.count(), 5u);
  reset_report_count();
  EXPECT_EQ(report_count(), 0u);
}

TEST(Report, PolicyGetSet) {
  test::ReportCapture cap;
  EXPECT_EQ(on_error(), OnError::kReport);
  set_on_error(OnError::kAbort);
  EXPECT_EQ(on_error(), OnError::kAbort);
  set_on_error(OnError::kReport);
}

TEST(Report, KindNamesAreDistinct) {
  const ErrorKind kinds[] = {ErrorKind::kDoubleFree,    ErrorKind::kInvalidFree,  ErrorKind::kForeignPointer,
                             ErrorKind::kWrongCache,    ErrorKind::kSizeOverflow, ErrorKind::kCacheNotEmpty,
                             ErrorKind::kOwnerMismatch, ErrorKind::kBadArgument,  ErrorKind::kCorruption};
  for (ErrorKind a : kinds) {
    EXPECT_GT(str_len(error_kind_name(a)), 3u);
    for (ErrorKind b : kinds)
      if (a != b) {
        EXPECT_FALSE(str_eq(error_kind_name(a), error_kind_name(b)));
      }
  }
}

TEST(Report, WriteReportTextGoesToWriter) {
  test::ReportCapture cap;
  write_report_text("abc\n", 4);
  EXPECT_EQ(cap.text(), "abc\n");
  EXPECT_EQ(report_count(), 0u);
}

TEST(ReportDeathTest, DefaultPolicyAborts) {
  test::default_report_policy();
  EXPECT_DEATH(report({ErrorKind::kDoubleFree, "kfree", kPtr, "kmalloc-64", 64, nullptr}),
               "kmm: ERROR: double free in kfree: pointer 0x[0-9a-f]+ \\(cache kmalloc-64, size 64\\)"
               "(.|\n)*kmm: FATAL: stopping on the error above");
}

TEST(ReportDeathTest, CorruptionAbortsEvenUnderReport) {
  EXPECT_DEATH(
      {
        set_on_error(OnError::kReport);
        report({ErrorKind::kCorruption, "kmalloc", kPtr, "kmalloc-32", 32, "free list points outside its slab"});
      },
      "kmm: ERROR: heap corruption in kmalloc: pointer 0x[0-9a-f]+ \\(cache kmalloc-32, size 32\\): free list");
}

TEST(ReportDeathTest, FatalAborts) {
  EXPECT_DEATH(fatal("out of ideas"), "kmm: FATAL: out of ideas");
}

TEST(ReportDeathTest, HookRunsBeforeAbort) {
  EXPECT_DEATH(
      {
        test::default_report_policy();
        set_report_hook(
            [](const ErrorReport& r, void*) {
              write_report_text("HOOK:", 5);
              write_report_text(r.action, str_len(r.action));
            },
            nullptr);
        report({ErrorKind::kInvalidFree, "kmem_cache_free", kPtr, nullptr, 0, nullptr});
      },
      "HOOK:kmem_cache_free(.|\n)*FATAL");
}

}  // namespace
}  // namespace kmm
