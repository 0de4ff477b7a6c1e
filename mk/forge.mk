# ilforge: publishes forged segments for tests/cli/forged.bats. Linked
# with the library's table code (no interposition).
FORGE_LIBOBJS = $(addprefix $(BUILD)/lib/,addrkey.o policy.o shm.o keytab.o real.o ratebucket.o)

$(BUILD)/tests/ilforge: tests/cli/forge.c $(FORGE_LIBOBJS) $(wildcard src/lib/*.h)
	@mkdir -p $(@D)
	$(CC) $(CLI_CFLAGS) -o $@ $< $(FORGE_LIBOBJS) -ldl

test-programs: $(BUILD)/tests/ilforge
