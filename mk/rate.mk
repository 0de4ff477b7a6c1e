# ilchurn: a client in a reconnect loop, for the new-connection rate tests
# (tests/integration/rate.bats); also built with TSan for integration-tsan.
# TEST_BIN, TEST_CFLAGS, SAN_CC and TSAN_TEST_CFLAGS come from mk/tests.mk
# and mk/sanitize.mk (used in recipes only, so the order of reading is free).
test-programs: $(BUILD)/tests/ilchurn $(BUILD)/tsan/tests/ilchurn

$(BUILD)/tests/ilchurn: tests/tools/ilchurn.c
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $<

$(BUILD)/tsan/tests/ilchurn: tests/tools/ilchurn.c
	@mkdir -p $(@D)
	$(SAN_CC) $(TSAN_TEST_CFLAGS) -o $@ $<
