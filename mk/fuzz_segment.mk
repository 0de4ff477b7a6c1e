# libFuzzer target for iplimit stat's attach and read path on forged
# segments (tests/fuzz/fuzz_segment.c): the library's table code and the
# CLI's reading and output code, built with the sanitizers of mk/fuzz.mk.
FUZZ_SEG_LIBOBJS = $(addprefix $(BUILD)/fuzz/lib/,addrkey.o policy.o shm.o keytab.o real.o ratebucket.o started.o)
FUZZ_SEG_CLI     = snapshot services out_text out_json out_prom policy_view summary util rate
FUZZ_SEG_CLIOBJS = $(FUZZ_SEG_CLI:%=$(BUILD)/fuzz/cli/%.o)

$(BUILD)/fuzz/cli/%.o: src/cli/%.c $(wildcard src/cli/*.h) $(wildcard src/lib/*.h)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -Isrc/lib -fsanitize=fuzzer-no-link -c $< -o $@

$(BUILD)/fuzz/fuzz_segment: tests/fuzz/fuzz_segment.c $(FUZZ_SEG_LIBOBJS) $(FUZZ_SEG_CLIOBJS)
	clang $(FUZZ_CFLAGS) -Isrc/lib -fsanitize=fuzzer -o $@ $< $(FUZZ_SEG_CLIOBJS) \
	    $(FUZZ_SEG_LIBOBJS) -ldl

fuzz-programs test-programs: $(BUILD)/fuzz/fuzz_segment
fuzz: $(BUILD)/fuzz/fuzz_segment
