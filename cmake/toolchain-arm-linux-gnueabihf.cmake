# Cross build for 32-bit ARM Linux (armhf: ARMv7-A, hard float, Thumb-2) with Debian's
# g++-arm-linux-gnueabihf; tests and tools run under qemu-arm (Debian's qemu-user) with the
# target's libraries from /usr/arm-linux-gnueabihf. Used by `make test-arm` (issue 4):
#   cmake -S . -B build-arm -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-arm-linux-gnueabihf.cmake
# GoogleTest is built for the target from Debian's sources in /usr/src/googletest
# (KMM_GTEST_FROM_SOURCE, on by default in a cross build; see tests/CMakeLists.txt).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR arm)

set(KMM_ARM_TRIPLE arm-linux-gnueabihf)
set(CMAKE_C_COMPILER ${KMM_ARM_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${KMM_ARM_TRIPLE}-g++)

# Target libraries and packages: the cross sysroot, then the multiarch armhf paths (Debian's
# armhf -dev packages, e.g. libfmt-dev:armhf, install under /usr/lib/arm-linux-gnueabihf).
set(CMAKE_FIND_ROOT_PATH /usr/${KMM_ARM_TRIPLE})
set(CMAKE_LIBRARY_ARCHITECTURE ${KMM_ARM_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# Runs target executables (tests, gtest_discover_tests) under user-mode emulation.
find_program(KMM_QEMU_ARM qemu-arm)
if(KMM_QEMU_ARM)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${KMM_QEMU_ARM} -L /usr/${KMM_ARM_TRIPLE})
endif()
