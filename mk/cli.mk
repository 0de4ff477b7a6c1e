# The iplimit command (src/cli), its man pages and `make install` (issue 4).
# build/iplimit links the library's own objects for config parsing and the
# shared table, never the ones that interpose libc.
CLI        = $(BUILD)/iplimit
CLI_SRCS   = $(wildcard src/cli/*.c)
CLI_OBJS   = $(CLI_SRCS:src/cli/%.c=$(BUILD)/cli/%.o)
CLI_LIBOBJS = $(addprefix $(BUILD)/lib/,addrkey.o config.o policy.o shm.o keytab.o real.o ratebucket.o started.o)
IL_VERSION := $(shell cat VERSION)
CLI_CFLAGS = -std=gnu11 -D_GNU_SOURCE $(CPPFLAGS) -Isrc/lib $(IL_WARN) -DIL_LIBDIR='"$(LIBDIR)"' \
             -DIL_VERSION='"$(IL_VERSION)"' $(CFLAGS)

.PHONY: cli install uninstall
all: cli
cli: $(CLI)

$(BUILD)/cli/%.o: src/cli/%.c $(wildcard src/cli/*.h) $(wildcard src/lib/*.h)
	@mkdir -p $(@D)
	$(CC) $(CLI_CFLAGS) -c $< -o $@

$(BUILD)/cli/main.o: VERSION

$(CLI): $(CLI_OBJS) $(CLI_LIBOBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJS) $(CLI_LIBOBJS) -ldl

# make install [PREFIX=/usr/local] [LIBDIR=PREFIX/lib] [DESTDIR=...];
# make uninstall with the same. The Debian package sets LIBDIR to the
# multiarch directory, so that LD_PRELOAD=libiplimit.so finds it by name.
PREFIX    ?= /usr/local
LIBDIR    ?= $(PREFIX)/lib
DESTDIR   ?=
INST_BIN   = $(DESTDIR)$(PREFIX)/bin
INST_LIB   = $(DESTDIR)$(LIBDIR)
INST_MAN   = $(DESTDIR)$(PREFIX)/share/man
INST_DOC   = $(DESTDIR)$(PREFIX)/share/doc/iplimit
MAN_PAGES  = man1/iplimit.1 man5/iplimit.conf.5 man8/libiplimit.8
EXAMPLES   = iplimit.conf kamailio.service.d/iplimit.conf

install: $(LIB) $(CLI)
	install -d "$(INST_BIN)" "$(INST_LIB)" "$(INST_MAN)/man1" "$(INST_MAN)/man5" \
	    "$(INST_MAN)/man8" "$(INST_DOC)/examples/kamailio.service.d"
	install -m 0755 $(LIB) "$(INST_LIB)/libiplimit.so"
	install -m 0755 $(CLI) "$(INST_BIN)/iplimit"
	$(foreach p,$(MAN_PAGES),install -m 0644 man/$(notdir $(p)) "$(INST_MAN)/$(p)";)
	$(foreach e,$(EXAMPLES),install -m 0644 conf/$(e) "$(INST_DOC)/examples/$(e)";)

uninstall:
	rm -f "$(INST_BIN)/iplimit" "$(INST_LIB)/libiplimit.so"
	rm -f $(foreach p,$(MAN_PAGES),"$(INST_MAN)/$(p)")
	rm -f $(foreach e,$(EXAMPLES),"$(INST_DOC)/examples/$(e)")
	-rmdir "$(INST_DOC)/examples/kamailio.service.d" "$(INST_DOC)/examples" "$(INST_DOC)" \
	    2>/dev/null
