// kmm/vm/vm_types.cpp — names of the MMU model's shared enums, and mapping sizes as text.
// Depends on: vm_types.h.
#include "vm/vm_types.h"

namespace kmm::vm {

const char* format_name(Format f) {
  switch (f) {
    case Format::kArmv7Short:
      return "armv7";
    case Format::kAarch64Gran4k:
      return "aarch64";
  }
  return "?";
}

const char* access_name(AccessType a) {
  switch (a) {
    case AccessType::kRead:
      return "read";
    case AccessType::kWrite:
      return "write";
    case AccessType::kExec:
      return "exec";
  }
  return "?";
}

const char* mem_type_name(MemType t) {
  switch (t) {
    case MemType::kNormal:
      return "normal";
    case MemType::kNormalUncached:
      return "normal-nc";
    case MemType::kDevice:
      return "device";
    case MemType::kStronglyOrdered:
      return "strongly-ordered";
  }
  return "?";
}

void mapping_size_text(TextSink& out, unsigned shift) {
  if (shift >= 30) {
    out.u(std::uint64_t{1} << (shift - 30)).ch('G');
  } else if (shift >= 20) {
    out.u(std::uint64_t{1} << (shift - 20)).ch('M');
  } else {
    out.u(std::uint64_t{1} << (shift - 10)).ch('K');
  }
}

}  // namespace kmm::vm
