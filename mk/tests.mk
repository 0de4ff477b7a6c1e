# Test servers and the test client for the integration suite (tests/README.md).
TEST_BIN     = $(BUILD)/tests
TEST_CFLAGS  = -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -g
TEST_SERVERS = prefork evloop kamlike threaded forker
TEST_SERVER_BINS = $(TEST_SERVERS:%=$(TEST_BIN)/%)
TEST_COMMON  = tests/servers/common.c tests/servers/common.h

test-programs: $(TEST_SERVER_BINS) $(TEST_BIN)/ilclient

$(TEST_SERVER_BINS): $(TEST_BIN)/%: tests/servers/%.c $(TEST_COMMON)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< tests/servers/common.c -lpthread

$(TEST_BIN)/ilclient: tests/tools/ilclient.c
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $<
