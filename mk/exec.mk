# execserver: servers that exec their handlers or workers (tests/exec).
$(BUILD)/tests/execserver: tests/exec/execserver.c $(TEST_COMMON)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< tests/servers/common.c

test-programs: $(BUILD)/tests/execserver
