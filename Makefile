# Thin wrapper over CMake. `make` builds, `make test` runs every suite on a
# normal (gcc) build and on an ASan+UBSan (clang) build, `make demo` runs the
# main job on a file-backed device under build/.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CTEST_ARGS ?= --output-on-failure -j $(JOBS)

.PHONY: all deps build build-asan test test-normal test-asan demo bench clean install crash-nightly fuzz

all: build

deps:
	@scripts/deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo

$(ASAN_BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DBS_SANITIZE=ON

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j $(JOBS)

test-normal: build
	cd $(BUILD) && ctest $(CTEST_ARGS)

test-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest $(CTEST_ARGS)

test: test-normal test-asan

# The tour: init, import, (snapshot, clone), write, export, compare, check,
# info, all through blobcli on a file-backed store under $(BUILD)/.
demo: build
	scripts/blobcli-tour.sh $(BUILD)

bench: build
	$(BUILD)/bin/devperf --file $(BUILD)/devperf.img

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)

# Library (static and shared), headers, blobstore.pc, blobcli and its man
# page under $(PREFIX); DESTDIR stages the tree (packaging).
PREFIX ?= /usr/local
install: build
	DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)

# Loader fuzzer (docs/reliability.md "Loader fuzzing"): fuzz_bs_load of the
# clang ASan build (its fuzzer build) for FUZZ_SECONDS on one core. The
# corpus grows in $(FUZZ_WORK)/corpus, seeded from tests/fuzz/corpus (never
# written); crashes land in $(FUZZ_WORK)/artifacts/. FUZZ_FORK keeps a long
# run going after a finding (one forked worker): look for artifacts when it
# ends. FUZZ_FORK= stops at the first finding instead.
FUZZ_WORK    ?= $(ASAN_BUILD)/fuzz
FUZZ_SECONDS ?= 3600
FUZZ_FLAGS   ?= -timeout=5 -rss_limit_mb=512 -malloc_limit_mb=64 -max_len=2048
FUZZ_FORK    ?= -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1
fuzz: build-asan
	mkdir -p $(FUZZ_WORK)/corpus $(FUZZ_WORK)/artifacts
	cp -n tests/fuzz/corpus/* $(FUZZ_WORK)/corpus/
	$(ASAN_BUILD)/bin/fuzz_bs_load $(FUZZ_FLAGS) $(FUZZ_FORK) -dict=tests/fuzz/fuzz_bs_load.dict \
		-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
		-artifact_prefix=$(FUZZ_WORK)/artifacts/ $(FUZZ_WORK)/corpus

# Crash-state harness at nightly size (docs/reliability.md "Crash-state
# harness"): every workload under FIFO, LIFO and 16 RANDOM orders, seq-3
# triples, 14000 W2 seeds, sharded over all cores.
crash-nightly: build
	$(BUILD)/bin/crashtest --nightly --jobs $(JOBS)
