# libFuzzer targets (tests/fuzz, docs/testing.md): env, file, cidr, proxyhdr.
# build/fuzz/fuzz_TARGET is built by test-programs; `make fuzz` runs each for
# FUZZ_SECONDS (default 60); the suite `fuzz` runs each for 20 s.
FUZZ_TARGETS = env file cidr proxyhdr
FUZZ_SAN     = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  = -std=gnu11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer $(IL_WARN) $(FUZZ_SAN)
FUZZ_LIBOBJS = addrkey policy config proxyhdr
FUZZ_OBJS    = $(FUZZ_LIBOBJS:%=$(BUILD)/fuzz/lib/%.o)
FUZZ_BINS    = $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz_%)
FUZZ_SECONDS ?= 60

$(BUILD)/fuzz/lib/%.o: src/lib/%.c $(wildcard src/lib/*.h)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BINS): $(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJS) $(wildcard src/lib/*.h)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJS) -lconfig

.PHONY: fuzz fuzz-programs
fuzz-programs: $(FUZZ_BINS)

fuzz: $(FUZZ_BINS)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh

test-programs: $(FUZZ_BINS)
