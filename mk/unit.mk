# C unit tests (tests/unit, docs/testing.md): one binary per module,
# build/tests/unit_NAME, linked with the library's objects (not the
# interposing ones: interpose, init, fdmap, limiter).
# UNIT_TESTS, UNIT_LIBOBJS, UNIT_LIBS and UNIT_DEPS are set in mk/sanitize.mk,
# which make reads first and which builds the same tests with sanitizers.
UNIT_CFLAGS  = -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -O1 -g
UNIT_BINS    = $(UNIT_TESTS:%=$(BUILD)/tests/unit_%)

$(UNIT_BINS): $(BUILD)/tests/unit_%: tests/unit/test_%.c $(UNIT_DEPS) \
              $(UNIT_LIBOBJS:%=$(BUILD)/lib/%.o)
	@mkdir -p $(@D)
	$(CC) $(UNIT_CFLAGS) -o $@ $< tests/unit/tap.c $(UNIT_LIBOBJS:%=$(BUILD)/lib/%.o) $(UNIT_LIBS)

.PHONY: unit
unit: $(UNIT_BINS)
	@tests/unit/run.sh $(BUILD)/tests

test-programs: $(UNIT_BINS)
