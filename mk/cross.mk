# The library and one test server built for aarch64, run under qemu-user by
# the suite `cross` (tests/cross/run.sh): the syscall() entry is assembly per
# architecture, and its variadic forwarding is checked on both. Built with
# test-programs wherever the cross compiler is installed (make check installs
# it: tests/deps.d/cross.txt).
CROSS_CC    ?= aarch64-linux-gnu-gcc
CROSS_BUILD  = $(BUILD)/aarch64

.PHONY: cross-aarch64
cross-aarch64:
	$(MAKE) BUILD=$(CROSS_BUILD) CC=$(CROSS_CC) CFLAGS="$(CFLAGS)" lib $(CROSS_BUILD)/tests/fdsafe

ifneq ($(shell command -v $(CROSS_CC) 2>/dev/null),)
ifneq ($(BUILD),$(CROSS_BUILD))
test-programs: cross-aarch64
endif
endif
