# cancelclose: close() of a counted connection by a thread with a cancellation
# request pending (tests/integration/cancelclose.bats); also built with TSan
# for integration-tsan. TEST_BIN, TEST_CFLAGS, SAN_CC and TSAN_TEST_CFLAGS
# come from mk/tests.mk and mk/sanitize.mk (used in recipes only).
test-programs: $(BUILD)/tests/cancelclose $(BUILD)/tsan/tests/cancelclose

$(BUILD)/tests/cancelclose: tests/servers/cancelclose.c
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< -lpthread

$(BUILD)/tsan/tests/cancelclose: tests/servers/cancelclose.c
	@mkdir -p $(@D)
	$(SAN_CC) $(TSAN_TEST_CFLAGS) -o $@ $< -lpthread

# cancelearly.so: a cancellation request made by a library's constructor
# before libiplimit's (cancelclose.bats); uninstrumented, preloaded as is
# beside the sanitized builds too.
test-programs: $(BUILD)/tests/cancelearly.so $(BUILD)/tsan/tests/cancelearly.so

$(BUILD)/tests/cancelearly.so $(BUILD)/tsan/tests/cancelearly.so: tests/servers/cancelearly.c
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -shared -fPIC -o $@ $< -lpthread
