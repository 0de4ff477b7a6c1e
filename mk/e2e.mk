# End-to-end tests against a real Kamailio (tests/e2e, issue 3).
# C helpers live in tests/e2e/ and are built to build/tests/.
E2E_CFLAGS = -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -g
E2E_PROGS  = $(BUILD)/tests/sipconn

$(BUILD)/tests/%: tests/e2e/%.c
	@mkdir -p $(@D)
	$(CC) $(E2E_CFLAGS) -o $@ $<

test-programs: $(E2E_PROGS)
