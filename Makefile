# The two entry points of README.md, and the builds CI runs.
#   make demo   set up, build, and run the main job (the paper's experiment)
#   make test   set up, build, and run every test: unit, death, stress; ASan+UBSan (clang);
#               TSan stress (gcc)
JOBS    ?= $(shell nproc)
CMAKE   ?= cmake
BUILD   ?= build

.PHONY: all setup build demo test test-release test-asan test-tsan bench format clean

all: build

setup:
	@bash scripts/setup-debian.sh

build: setup
	$(CMAKE) -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKMM_WERROR=ON
	$(CMAKE) --build $(BUILD) -j $(JOBS)

demo: build
	./$(BUILD)/bin/kmm demo

test: test-release test-asan test-tsan
	@echo "make test: all suites passed"

test-release: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

# Unit and death tests under AddressSanitizer + UBSan, built with clang 14 (so both
# compilers build the tree in CI).
test-asan: setup
	CC=clang-14 CXX=clang++-14 $(CMAKE) -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug \
	  -DKMM_WERROR=ON -DKMM_SANITIZE=address,undefined -DKMM_BUILD_BENCH=OFF
	$(CMAKE) --build build-asan -j $(JOBS)
	cd build-asan && ctest --output-on-failure -j $(JOBS) -L unit --timeout 900

# The multi-threaded stress tests under ThreadSanitizer.
test-tsan: setup
	$(CMAKE) -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DKMM_WERROR=ON -DKMM_SANITIZE=thread -DKMM_BUILD_BENCH=OFF -DKMM_BUILD_TOOLS=OFF
	$(CMAKE) --build build-tsan -j $(JOBS)
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -L stress --timeout 900

bench: build
	./$(BUILD)/bin/kmm-bench-kmalloc

format:
	find src tools tests bench examples -name '*.h' -o -name '*.cpp' | xargs clang-format -i

clean:
	rm -rf $(BUILD) build-asan build-tsan
