// tests/common/temp_dir.h — a test fixture with a fresh directory under /tmp of its own: mode
// 0755 (a program the test runs as another user may traverse it), removed with everything in
// it after the test; and whether a setuid bit can take effect there (not on a nosuid mount).
// Depends on: GoogleTest, POSIX (mkdtemp, statvfs), <filesystem>.
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace kmm::test {

class TempDirTest : public ::testing::Test {
 protected:
  explicit TempDirTest(const char* prefix) : prefix_(prefix) {}
  void SetUp() override {
    std::string tmpl = std::string("/tmp/") + prefix_ + "-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  // The directory is on a nosuid mount: a setuid copy made there would run with the caller's
  // rights, and a test of secure execution would prove nothing (it skips).
  bool on_nosuid_mount() const {
    struct statvfs vfs;
    return statvfs(dir_.c_str(), &vfs) == 0 && (vfs.f_flag & ST_NOSUID) != 0;
  }

  std::string dir_;

 private:
  const char* prefix_;
};

}  // namespace kmm::test
