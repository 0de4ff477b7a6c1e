# Robustness suite (issue 5: reconciliation, crash safety, stress, floods).
# C helpers live in tests/robust/ and are built to build/tests/.
ROBUST_CFLAGS = -std=gnu11 -D_GNU_SOURCE -Isrc/lib -Wall -Wextra -Werror -O2 -g
ROBUST_PROGS  = $(BUILD)/tests/stress

$(BUILD)/tests/stress: tests/robust/stress.c src/lib/shm.h src/lib/keytab.h
	@mkdir -p $(@D)
	$(CC) $(ROBUST_CFLAGS) -o $@ $< -lpthread

test-programs: $(ROBUST_PROGS)

# Flood and exhaustion load (tests/robust/flood.bats, exhaust.bats).
ROBUST_PROGS += $(BUILD)/tests/ilflood

$(BUILD)/tests/ilflood: tests/robust/flood.c
	@mkdir -p $(@D)
	$(CC) $(ROBUST_CFLAGS) -o $@ $<

test-programs: $(BUILD)/tests/ilflood

# The stress test built with TSan for the sanitized suites (the library's
# TSan build needs its runtime linked into the program: mk/tests.mk);
# TSAN_TEST_CFLAGS comes from mk/tests.mk, SAN_CC from mk/sanitize.mk.
$(BUILD)/tsan/tests/stress: tests/robust/stress.c src/lib/shm.h src/lib/keytab.h
	@mkdir -p $(@D)
	$(SAN_CC) $(TSAN_TEST_CFLAGS) -Isrc/lib -o $@ $< -lpthread

test-programs: $(BUILD)/tsan/tests/stress
