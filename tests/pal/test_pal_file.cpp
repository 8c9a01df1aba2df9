// Tests of src/pal/pal_file.cpp, the heap-file backend of persistent RAM: what open() makes
// of a file left at each moment of a first format, that a file kmm did not write is refused
// untouched, the rules of who may attach (a new heap 0600, no symbolic link, never a file
// another user owns or may write), and that a fork's child does not drop its parent's lock.
#include "pal/pal_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

// Who may attach (stop 48; before it a new heap was 0644, a symbolic link was followed and
// formatted over its target, and a file another user owned and could write was attached).
TEST(FilePlatform, ANewHeapIsItsOwnersAloneAndNoLinkIsFollowed) {
  std::string path = temp_path("mode");
  ::unlink(path.c_str());
  {
    FilePlatform fp;
    ASSERT_EQ(fp.open(path.c_str(), kRam), FileOpenResult::kFormat) << fp.error();
    fp.close(false);
  }
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // Writable by others: refused, the file as it was.
  ASSERT_EQ(::chmod(path.c_str(), 0666), 0);
  {
    FilePlatform fp;
    EXPECT_EQ(fp.open(path.c_str(), kRam), FileOpenResult::kError);
    EXPECT_NE(std::strstr(fp.error(), "writable by other users"), nullptr) << fp.error();
  }
  // Readable by others: attached (attach logs that it is), and said so here.
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  {
    FilePlatform fp;
    EXPECT_NE(fp.open(path.c_str(), kRam), FileOpenResult::kError) << fp.error();
    EXPECT_TRUE(fp.readable_by_others());
    fp.close(false);
  }
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  {
    FilePlatform fp;
    EXPECT_NE(fp.open(path.c_str(), kRam), FileOpenResult::kError) << fp.error();
    EXPECT_FALSE(fp.readable_by_others());
    fp.close(false);
  }
  // A link to a file of the user's: never formatted over, whether its target is there or not.
  std::string target = temp_path("target"), link = temp_path("link");
  ::unlink(target.c_str());
  ::unlink(link.c_str());
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  {
    FilePlatform fp;
    EXPECT_EQ(fp.open(link.c_str(), kRam), FileOpenResult::kError);
    EXPECT_NE(std::strstr(fp.error(), "symbolic link"), nullptr) << fp.error();
  }
  EXPECT_NE(::access(target.c_str(), F_OK), 0) << "a dangling link's target was created";
  int fd = ::open(target.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  ::close(fd);
  {
    FilePlatform fp;
    EXPECT_EQ(fp.open(link.c_str(), kRam), FileOpenResult::kError);
  }
  ASSERT_EQ(::stat(target.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 0) << "an empty file of the user's, formatted through a link";
  ::unlink(link.c_str());
  ::unlink(target.c_str());
  // Another user's file (root can make one): refused.
  if (::geteuid() == 0 && ::chown(path.c_str(), 65534, 65534) == 0) {
    FilePlatform fp;
    EXPECT_EQ(fp.open(path.c_str(), kRam), FileOpenResult::kError);
    EXPECT_NE(std::strstr(fp.error(), "owned by another user"), nullptr) << fp.error();
  }
  ::unlink(path.c_str());
}

// A flock belongs to the open file, which a fork's child shares: the child's close must not
// unlock it (nor mark the heap clean) while the parent is attached. Before stop 48 it did, and
// a third process attached the parent's live heap and handed its blocks out again.
TEST(FilePlatform, AForksChildClosingLeavesTheParentsLock) {
  std::string path = temp_path("fork");
  ::unlink(path.c_str());
  FilePlatform fp;
  ASSERT_EQ(fp.open(path.c_str(), kRam), FileOpenResult::kFormat) << fp.error();
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    fp.close(true);
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  {
    FilePlatform other;  // another open file: another process, as far as flock is concerned
    EXPECT_EQ(other.open(path.c_str(), kRam), FileOpenResult::kError);
    EXPECT_NE(std::strstr(other.error(), "attached by another live process"), nullptr) << other.error();
  }
  fp.close(false);
  {
    FilePlatform other;
    EXPECT_EQ(other.open(path.c_str(), kRam), FileOpenResult::kFormat) << other.error();
    other.close(false);
  }
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace kmm
