# Bare-metal 32-bit ARM (ARMv7-A, Thumb-2, soft float) with Debian's gcc-arm-none-eabi and
# newlib: the freestanding core and examples/firmware (issue 4, `make firmware`, docs/SIZE.md).
#   cmake -S . -B build-firmware -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-arm-none-eabi.cmake
# CMAKE_SYSTEM_NAME Generic tells the layers there is no OS: pal builds only the static-buffer
# platform, slab links no threads library. -ffreestanding makes __STDC_HOSTED__ 0, so
# base/config.h sets KMM_FREESTANDING=1 and KMM_HAVE_THREADS=0.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_CXX_COMPILER arm-none-eabi-g++)
set(CMAKE_SIZE arm-none-eabi-size CACHE FILEPATH "arm-none-eabi-size")
# No OS to link a test program against while CMake probes the compiler.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

# Cortex-A7 class (the ARMv7 short-descriptor MMU that vm/ models); Thumb-2 for size.
set(KMM_ARM_CPU_FLAGS "-march=armv7-a -mthumb -mfloat-abi=soft")
set(CMAKE_C_FLAGS_INIT "${KMM_ARM_CPU_FLAGS} -ffreestanding -ffunction-sections -fdata-sections")
# No exceptions, RTTI, thread-safe statics (no __cxa_guard_*) or global destructors
# registration (no __aeabi_atexit): nothing of the C++ runtime is linked.
set(CMAKE_CXX_FLAGS_INIT "${KMM_ARM_CPU_FLAGS} -ffreestanding -ffunction-sections -fdata-sections -fno-exceptions -fno-rtti -fno-threadsafe-statics -fno-use-cxa-atexit")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-Wl,--gc-sections")

set(CMAKE_POSITION_INDEPENDENT_CODE OFF)
set(CMAKE_FIND_ROOT_PATH /usr/lib/arm-none-eabi)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
