# The two entry points of README.md, and the builds CI runs.
#   make demo   set up, build, and run the main job (the paper's experiment)
#   make test   set up, build, and run every test: unit, death, stress; ASan+UBSan (clang);
#               TSan stress (gcc); the protector as a Linux module in a qemu guest
#   make linux  build/linux/kmm_protect.ko for Debian's stock kernel (docs/LINUX.md)
JOBS    ?= $(shell nproc)
CMAKE   ?= cmake
BUILD   ?= build

.PHONY: all setup build demo test test-release test-asan test-tsan fuzz-build fuzz-ci fuzz bench format clean \
        test-arm test-arm-quick firmware soak \
        linux test-linux demo-linux

all: build

setup:
	@bash scripts/setup-debian.sh

build: setup
	$(CMAKE) -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKMM_WERROR=ON
	$(CMAKE) --build $(BUILD) -j $(JOBS)

demo: build
	./$(BUILD)/bin/kmm demo

test: test-release test-asan test-tsan fuzz-ci test-arm-quick test-linux
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
	$(CMAKE) --build build-tsan -j $(JOBS) --target kmm-stress-tests
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -L stress --timeout 900

# libFuzzer harnesses (clang 14, ASan+UBSan): the engine as an operation sequence, the
# scenario interpreter, the page-table decoders, the trace reader, hostile heap files (patches
# to a real heap image, checksums recomputed, then fsck and attach). Each run starts from a copy
# of the checked-in corpus in fuzz/corpus/ (libFuzzer writes new inputs into its corpus folder).
FUZZERS      = engine scenario pte trace heapimage
FUZZ_SECONDS ?= 60
fuzz-build: setup
	CC=clang-14 CXX=clang++-14 $(CMAKE) -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DKMM_FUZZ=ON -DKMM_SANITIZE=address,undefined -DKMM_BUILD_TESTS=OFF -DKMM_BUILD_BENCH=OFF \
	  -DKMM_BUILD_TOOLS=OFF -DKMM_WERROR=ON
	$(CMAKE) --build build-fuzz -j $(JOBS) --target $(addprefix kmm-fuzz-,$(FUZZERS))

fuzz-ci: fuzz-build
	@for f in $(FUZZERS); do \
	  rm -rf build-fuzz/corpus/$$f && mkdir -p build-fuzz/corpus/$$f && cp fuzz/corpus/$$f/* build-fuzz/corpus/$$f/ && \
	  echo "fuzz $$f: $(FUZZ_SECONDS) s" && \
	  if ./build-fuzz/bin/kmm-fuzz-$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 build-fuzz/corpus/$$f \
	       > build-fuzz/fuzz-$$f.log 2>&1; then \
	    grep -E "stat::number_of_executed_units|stat::new_units_added" build-fuzz/fuzz-$$f.log; \
	  else tail -40 build-fuzz/fuzz-$$f.log; echo "fuzz $$f FAILED"; exit 1; fi; \
	done

# The longer run: ten minutes a harness.
fuzz:
	$(MAKE) fuzz-ci FUZZ_SECONDS=600

# The soak (issue 10, docs/RELIABILITY.md "Soak"): mixed workloads on several threads with
# the collector on for SOAK_SECONDS (default ten minutes) in the release build; passes when
# every invariant held, nothing leaked and RSS stayed flat. Not part of `make test` (ctest runs
# a 6-second version, soak.short). Run at low priority: `nice make soak`.
SOAK_SECONDS ?= 600
SOAK_ARGS    ?=
soak: setup
	$(CMAKE) -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKMM_WERROR=ON
	$(CMAKE) --build $(BUILD) -j $(JOBS) --target kmm-soak
	./$(BUILD)/bin/kmm-soak --seconds $(SOAK_SECONDS) $(SOAK_ARGS)

# 32-bit ARM (issue 4, docs/ARM.md): the core and its unit tests cross-built for armhf and run
# under qemu-arm (full: every test folder; quick: base pal phys page slab arm, the job make test
# runs), then the host and armhf page-table outputs compared byte for byte. Installs what it needs.
test-arm:
	JOBS=$(JOBS) bash scripts/test-arm.sh full

test-arm-quick:
	JOBS=$(JOBS) bash scripts/test-arm.sh quick

# Bare-metal ARM: the freestanding core linked into examples/firmware, run under qemu-arm, and
# its size per layer written into docs/SIZE.md.
firmware:
	JOBS=$(JOBS) bash scripts/firmware-arm.sh

# The protector in a real kernel (issue 17, docs/LINUX.md): kmm_protect.ko built against
# Debian's stock 6.1 kernel headers (installed when missing), then proven in a qemu guest
# booting that kernel with slub_debug: the paper's experiment, kmemleak-test's patterns,
# insmod/rmmod cycles under load, the overhead benchmark. demo-linux prints the paper's table
# from the real kernel, stock and protected side by side.
linux:
	JOBS=$(JOBS) bash scripts/linux-build.sh

test-linux:
	JOBS=$(JOBS) bash scripts/linux-guest-test.sh test

demo-linux:
	JOBS=$(JOBS) bash scripts/linux-guest-test.sh demo

bench: build
	./$(BUILD)/bin/kmm-bench-kmalloc

format:
	find src tools tests bench examples fuzz -name '*.h' -o -name '*.cpp' | xargs clang-format -i

clean:
	rm -rf $(BUILD) build-asan build-tsan build-arm build-arm-quick build-firmware
