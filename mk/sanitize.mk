# The library and the unit tests built with clang sanitizers (docs/testing.md):
#   build/asan/  -fsanitize=address,undefined
#   build/tsan/  -fsanitize=thread
# Each holds lib/*.o and tests/unit_* (built by test-programs; the suites
# unit-asan and unit-tsan run them) and libiplimit.so (`make asan-lib`,
# `make tsan-lib`; both part of test-programs, for the suites
# integration-asan and integration-tsan). build/tsan/tests/ also holds the
# test servers, execserver and ilclient built with TSan (mk/tests.mk).
# The runtime comes from libclang-rt-14-dev.
# The unit tests (shared with mk/unit.mk, read after this file).
UNIT_TESTS   = $(patsubst tests/unit/test_%.c,%,$(wildcard tests/unit/test_*.c))
UNIT_LIBOBJS = addrkey policy rulecache config keytab conntab sockid shm real forklock ratebucket proxyhdr
UNIT_LIBS    = -lconfig -ldl -lpthread
UNIT_DEPS    = tests/unit/tap.c $(wildcard tests/unit/*.h) $(wildcard src/lib/*.h)

SAN_CC       = clang
SAN_BASE     = -std=gnu11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer $(IL_WARN)
SAN_asan     = -fsanitize=address,undefined -fno-sanitize-recover=undefined
SAN_tsan     = -fsanitize=thread
SANITIZERS   = asan tsan

# $(1): asan or tsan
define IL_SANITIZED
$(BUILD)/$(1)/lib/%.o: src/lib/%.c $(wildcard src/lib/*.h)
	@mkdir -p $$(@D)
	$(SAN_CC) $(SAN_BASE) $(SAN_$(1)) -fPIC -fvisibility=hidden -c $$< -o $$@

$(BUILD)/$(1)/libiplimit.so: $(LIB_SRCS:src/lib/%.c=$(BUILD)/$(1)/lib/%.o) src/lib/symbols.map
	$(SAN_CC) $(SAN_$(1)) -shared -o $$@ $(LIB_SRCS:src/lib/%.c=$(BUILD)/$(1)/lib/%.o) \
	    -Wl,--version-script=src/lib/symbols.map -ldl -lpthread

$(BUILD)/$(1)/tests/unit_%: tests/unit/test_%.c $(UNIT_DEPS) \
                            $(UNIT_LIBOBJS:%=$(BUILD)/$(1)/lib/%.o)
	@mkdir -p $$(@D)
	$(SAN_CC) $(SAN_BASE) $(SAN_$(1)) -Werror -o $$@ $$< tests/unit/tap.c \
	    $(UNIT_LIBOBJS:%=$(BUILD)/$(1)/lib/%.o) $(UNIT_LIBS)

.PHONY: $(1) $(1)-lib
$(1): $(UNIT_TESTS:%=$(BUILD)/$(1)/tests/unit_%)
$(1)-lib: $(BUILD)/$(1)/libiplimit.so
endef
$(foreach s,$(SANITIZERS),$(eval $(call IL_SANITIZED,$(s))))

test-programs: $(SANITIZERS) $(SANITIZERS:%=$(BUILD)/%/libiplimit.so)
