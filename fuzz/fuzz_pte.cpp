// kmm/fuzz/fuzz_pte.cpp — libFuzzer harness for the page-table descriptor decoders (issue 10d).
//
// Input: a level byte and a descriptor value. Every value must decode without crashing, print
// with describe(), and decoding must be a canonical form: re-encoding a decoded descriptor and
// decoding that again gives the same description (an encoder may refuse, never disagree).
#include <cstdint>
#include <cstring>

#include "base/text.h"
#include "vm/aarch64_desc.h"
#include "vm/armv7_desc.h"

using namespace kmm;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 9) return 0;
  std::uint8_t sel = data[0];
  std::uint64_t v;
  std::memcpy(&v, data + 1, sizeof v);
  StackText<1024> a, b;
  if ((sel & 1) == 0) {
    auto v32 = static_cast<std::uint32_t>(v);
    bool l1 = (sel & 2) == 0;
    vm::armv7::Desc d = l1 ? vm::armv7::decode_l1(v32) : vm::armv7::decode_l2(v32);
    vm::armv7::describe(d, a);
    std::uint32_t re;
    if (l1 ? vm::armv7::encode_l1(d, &re) : vm::armv7::encode_l2(d, &re)) {
      vm::armv7::Desc d2 = l1 ? vm::armv7::decode_l1(re) : vm::armv7::decode_l2(re);
      vm::armv7::describe(d2, b);
      if (std::strcmp(a.data(), b.data()) != 0) __builtin_trap();
    }
  } else {
    unsigned level = (sel >> 1) & 3;
    vm::aarch64::Desc d = vm::aarch64::decode(level, v);
    vm::aarch64::describe(level, d, a);
    std::uint64_t re;
    if (vm::aarch64::encode(level, d, &re)) {
      vm::aarch64::Desc d2 = vm::aarch64::decode(level, re);
      vm::aarch64::describe(level, d2, b);
      if (std::strcmp(a.data(), b.data()) != 0) __builtin_trap();
    }
  }
  return 0;
}
