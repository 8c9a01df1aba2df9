// Tests of src/pal/pal_file.cpp, the heap-file backend of persistent RAM: what open() makes
// of a file left at each moment of a first format, and that a file kmm did not write is
// refused untouched.
#include "pal/pal_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace kmm {
namespace {

constexpr std::uint64_t kRam = std::uint64_t{4} << 20;

std::string temp_path(const char* tag) {
  return std::string("/tmp/kmm-pal-file-") + tag + "-" + std::to_string(::getpid()) + ".heap";
}

TEST(FilePlatform, AFileLeftBetweenOpenAndReserveIsFormattedAgain) {
  // A SIGKILL after open() grew the new file and before reserve() wrote the full superblock:
  // the file must say "formatting" (kmm's own), so the next open formats it again.
  std::string path = temp_path("early");
  ::unlink(path.c_str());
  {
    FilePlatform fp;
    ASSERT_EQ(fp.open(path.c_str(), kRam), FileOpenResult::kFormat) << fp.error();
    fp.close(false);  // what the kill leaves: no reserve, no ready superblock
  }
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), kHeapHeaderBytes + kRam);
  {
    FilePlatform fsck;
    EXPECT_EQ(fsck.open(path.c_str(), 0, /*read_only=*/true), FileOpenResult::kError);
    EXPECT_NE(std::strstr(fsck.error(), "unfinished format"), nullptr) << fsck.error();
    fsck.close(false);
  }
  {
    FilePlatform fp;
    EXPECT_EQ(fp.open(path.c_str(), kRam), FileOpenResult::kFormat) << fp.error();
    fp.close(false);
  }
  ::unlink(path.c_str());
}

TEST(FilePlatform, AFileKmmDidNotWriteIsRefusedAndLeftAsItWas) {
  std::string path = temp_path("foreign");
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  char text[8192];
  std::memset(text, 'x', sizeof text);
  ASSERT_EQ(::write(fd, text, sizeof text), static_cast<ssize_t>(sizeof text));
  ::close(fd);
  FilePlatform fp;
  EXPECT_EQ(fp.open(path.c_str(), kRam), FileOpenResult::kError);
  EXPECT_NE(std::strstr(fp.error(), "not a kmm heap"), nullptr) << fp.error();
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(sizeof text)) << "not grown";
  fd = ::open(path.c_str(), O_RDONLY);
  char back[sizeof text];
  ASSERT_EQ(::read(fd, back, sizeof back), static_cast<ssize_t>(sizeof back));
  ::close(fd);
  EXPECT_EQ(std::memcmp(back, text, sizeof text), 0) << "not a byte written";
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace kmm
