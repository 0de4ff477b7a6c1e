# iplimit: per-source TCP connection limits for unmodified servers (LD_PRELOAD).
# `make` builds build/libiplimit.so; `make check` installs test deps and runs every suite.

CC      ?= cc
CFLAGS  ?= -O2 -g
BUILD   ?= build
IL_WARN  = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
# Link-time optimisation inlines the small helpers that one job per file
# spreads over files (key compare, reconcile tick, ...): 660 -> 555
# instructions added per accepted connection (BENCHMARKS.md). gcc only:
# clang's needs a linker plugin that Debian's clang does not bring.
IL_LTO  ?= $(if $(findstring clang,$(shell $(CC) --version 2>/dev/null)),,-flto=auto)
# -fno-plt: the library's calls into libc go through the GOT (bound at load,
# -z now) instead of a PLT stub: one jump less, and the stub's page is not
# touched on the way of a connection (src/lib/hot.h).
IL_CFLAGS = -std=gnu11 -D_GNU_SOURCE $(CPPFLAGS) -fPIC -fno-plt -fvisibility=hidden $(IL_WARN) $(IL_LTO) $(CFLAGS)

LIB_SRCS = $(wildcard src/lib/*.c)
LIB_OBJS = $(LIB_SRCS:src/lib/%.c=$(BUILD)/lib/%.o)
LIB      = $(BUILD)/libiplimit.so

.PHONY: all lib check demo bench clean deps
all: lib

lib: $(LIB)

$(BUILD)/lib/%.o: src/lib/%.c $(wildcard src/lib/*.h)
	@mkdir -p $(@D)
	$(CC) $(IL_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS) src/lib/symbols.map
	$(CC) $(IL_CFLAGS) $(LDFLAGS) -shared -o $@ $(LIB_OBJS) \
	    -Wl,--version-script=src/lib/symbols.map -Wl,-z,now -Wl,-z,relro -ldl -lpthread

deps:
	@tests/install-deps.sh

clean:
	rm -rf $(BUILD)

# Each part of the project adds its own targets and suites in mk/*.mk.
include $(sort $(wildcard mk/*.mk))
