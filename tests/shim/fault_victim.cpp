/* tests/shim/fault_victim.cpp — a program whose malloc is kmm (it links libkmm-preload.so), run
 * by ctest with KMM_OPTIONS=fail_slab=10:fail_platform=2:fail_verbose=0 (base/fault_inject.h):
 * of 1000 consecutive malloc(64) exactly 100 fail with ENOMEM (every 10th slab allocation),
 * of 4 consecutive 8 MiB mallocs (the shim's own mappings) exactly 2 fail, and everything
 * that did succeed is freed and still usable. Exit 0 when all of that holds; the line it
 * prints says what was seen. No stdio before the counts: nothing else allocates between. */
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

int main() {
  static void* small[1000];
  void* huge[4];
  int small_nulls = 0, huge_nulls = 0, bad_errno = 0;
  for (int i = 0; i < 4; ++i) {
    errno = 0;
    huge[i] = malloc(8u << 20);
    if (huge[i] == nullptr) {
      ++huge_nulls;
      if (errno != ENOMEM) ++bad_errno;
    } else {
      memset(huge[i], 0x5a, 8u << 20);
    }
  }
  for (int i = 0; i < 1000; ++i) {
    errno = 0;
    small[i] = malloc(64);
    if (small[i] == nullptr) {
      ++small_nulls;
      if (errno != ENOMEM) ++bad_errno;
    } else {
      memset(small[i], i & 0xff, 64);
    }
  }
  for (int i = 0; i < 1000; ++i) free(small[i]);
  for (int i = 0; i < 4; ++i) free(huge[i]);
  printf("fault_victim: %d of 1000 malloc(64) failed, %d of 4 malloc(8M) failed, %d without ENOMEM\n", small_nulls,
         huge_nulls, bad_errno);
  return small_nulls == 100 && huge_nulls == 2 && bad_errno == 0 ? 0 : 1;
}
