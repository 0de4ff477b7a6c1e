# C unit tests (tests/unit, docs/testing.md): one binary per module,
# build/tests/unit_NAME, linked with the library's objects (not the
# interposing ones: interpose, init, fdmap, limiter).
UNIT_TESTS   = addrkey policy config tables shm
UNIT_CFLAGS  = -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -O1 -g
UNIT_LIBOBJS = addrkey policy config keytab conntab shm real
UNIT_LIBS    = -lconfig -ldl -lpthread
UNIT_DEPS    = tests/unit/tap.c tests/unit/tap.h $(wildcard src/lib/*.h)
UNIT_BINS    = $(UNIT_TESTS:%=$(BUILD)/tests/unit_%)

$(UNIT_BINS): $(BUILD)/tests/unit_%: tests/unit/test_%.c $(UNIT_DEPS) \
              $(UNIT_LIBOBJS:%=$(BUILD)/lib/%.o)
	@mkdir -p $(@D)
	$(CC) $(UNIT_CFLAGS) -o $@ $< tests/unit/tap.c $(UNIT_LIBOBJS:%=$(BUILD)/lib/%.o) $(UNIT_LIBS)

.PHONY: unit
unit: $(UNIT_BINS)
	@tests/unit/run.sh $(BUILD)/tests

test-programs: $(UNIT_BINS)
