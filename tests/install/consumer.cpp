// A C++ program built against an installed kmm through find_package(kmm): kmm::preload.
#include <kmm/kmm.h>

#include <cstdio>
#include <string>
#include <vector>

int main() {
  if (kmm_active() != 1) {
    std::fprintf(stderr, "kmm is not the malloc\n");
    return 1;
  }
  std::vector<std::string> v(1000, std::string(50, 'x'));
  std::printf("kmm from C++: %zu strings\n", v.size());
  return 0;
}
