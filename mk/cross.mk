# The library and two test servers built for aarch64, run under qemu-user by
# the suite `cross` (tests/cross/run.sh): the syscall() and vfork() entries
# are assembly per architecture, and both are checked on both. Built with
# test-programs wherever the cross compiler is installed (make check installs
# it: tests/deps.d/cross.txt).
CROSS_CC    ?= aarch64-linux-gnu-gcc
CROSS_BUILD  = $(BUILD)/aarch64

.PHONY: cross-aarch64
cross-aarch64:
	$(MAKE) BUILD=$(CROSS_BUILD) CC=$(CROSS_CC) CFLAGS="$(CFLAGS)" lib $(CROSS_BUILD)/tests/fdsafe \
	    $(CROSS_BUILD)/tests/spawner

ifneq ($(shell command -v $(CROSS_CC) 2>/dev/null),)
ifneq ($(BUILD),$(CROSS_BUILD))
test-programs: cross-aarch64
endif
endif
