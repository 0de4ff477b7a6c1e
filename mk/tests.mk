# Test servers and the test client for the integration suite (tests/README.md).
TEST_BIN     = $(BUILD)/tests
TEST_CFLAGS  = -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -g
TEST_SERVERS = prefork evloop kamlike threaded forker probe forkrace fdsafe handoff rawclone errsleep spawner
TEST_SERVER_BINS = $(TEST_SERVERS:%=$(TEST_BIN)/%)
TEST_COMMON  = tests/servers/common.c tests/servers/common.h

test-programs: $(TEST_SERVER_BINS) $(TEST_BIN)/ilclient $(TEST_BIN)/proxyclient

$(TEST_SERVER_BINS): $(TEST_BIN)/%: tests/servers/%.c $(TEST_COMMON)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< tests/servers/common.c -lpthread

$(TEST_BIN)/ilclient: tests/tools/ilclient.c
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $<

# proxyclient: a load balancer sending PROXY headers (tests/integration/proxy.bats).
$(TEST_BIN)/proxyclient: tests/tools/proxyclient.c
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $<

# evloop-clash: evloop exporting functions with libconfig's names (-rdynamic,
# tests/servers/confclash.c), for tests/integration/config.bats.
test-programs: $(TEST_BIN)/evloop-clash

$(TEST_BIN)/evloop-clash: tests/servers/evloop.c tests/servers/confclash.c $(TEST_COMMON)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -rdynamic -o $@ $< tests/servers/confclash.c tests/servers/common.c

# The same programs built with clang -fsanitize=thread into build/tsan/tests/,
# for the suite integration-tsan (tests/integration-tsan.sh): TSan needs the
# host program instrumented; build/tsan/libiplimit.so preloaded into it uses
# the runtime linked into the program. SAN_* come from mk/sanitize.mk.
TSAN_TEST_BIN  = $(BUILD)/tsan/tests
TSAN_TEST_PROGS = $(TEST_SERVERS:%=$(TSAN_TEST_BIN)/%) $(TSAN_TEST_BIN)/ilclient \
                  $(TSAN_TEST_BIN)/proxyclient \
                  $(TSAN_TEST_BIN)/execserver $(TSAN_TEST_BIN)/evloop-clash
TSAN_TEST_CFLAGS = $(filter-out -O2,$(TEST_CFLAGS)) -O1 -fno-omit-frame-pointer $(SAN_tsan)

test-programs: $(TSAN_TEST_PROGS)

$(TEST_SERVERS:%=$(TSAN_TEST_BIN)/%): $(TSAN_TEST_BIN)/%: tests/servers/%.c $(TEST_COMMON)
	@mkdir -p $(@D)
	$(SAN_CC) $(TSAN_TEST_CFLAGS) -o $@ $< tests/servers/common.c -lpthread

$(TSAN_TEST_BIN)/execserver: tests/exec/execserver.c $(TEST_COMMON)
	@mkdir -p $(@D)
	$(SAN_CC) $(TSAN_TEST_CFLAGS) -o $@ $< tests/servers/common.c

$(TSAN_TEST_BIN)/ilclient: tests/tools/ilclient.c
	@mkdir -p $(@D)
	$(SAN_CC) $(TSAN_TEST_CFLAGS) -o $@ $<

$(TSAN_TEST_BIN)/proxyclient: tests/tools/proxyclient.c
	@mkdir -p $(@D)
	$(SAN_CC) $(TSAN_TEST_CFLAGS) -o $@ $<

$(TSAN_TEST_BIN)/evloop-clash: tests/servers/evloop.c tests/servers/confclash.c $(TEST_COMMON)
	@mkdir -p $(@D)
	$(SAN_CC) $(TSAN_TEST_CFLAGS) -rdynamic -o $@ $< tests/servers/confclash.c tests/servers/common.c
