# Benchmarks (issue 6): `make bench` builds the library, the test servers
# and the bench programs, installs what the benchmarks need, and runs
# bench/run.sh (bounded: about 10-15 minutes on 2 cores).  Not part of
# `make check`.  Results: build/bench/results.txt and results.md; the
# method and the figures are in BENCHMARKS.md.
BENCH_BIN    = $(BUILD)/bench
BENCH_CFLAGS = -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -g
BENCH_PROGS  = $(BENCH_BIN)/ilbench $(BENCH_BIN)/ilhold $(BENCH_BIN)/cgdrive $(BENCH_BIN)/twmake \
               $(BENCH_BIN)/pagedrive $(BENCH_BIN)/acceptlat.so $(BENCH_BIN)/passthru.so
# Debian packages the benchmarks use (valgrind for callgrind, nftables for
# the kernel comparison, kamailio for the real-server row, jq for reading
# `iplimit stat --json` in the recdelay and reccost sections, strace for the
# syscalls section).
BENCH_DEBS   = valgrind nftables iproute2 kamailio procps jq strace

.PHONY: bench bench-programs bench-deps
# Builds only what the benchmark runs (the library, the CLI for the held-set
# check, four test servers, the test client, the bench programs).
bench: bench-deps
	$(MAKE) lib cli $(BUILD)/tests/prefork $(BUILD)/tests/evloop $(BUILD)/tests/errsleep \
	    $(BUILD)/tests/ilclient bench-programs
	bench/run.sh

bench-programs: $(BENCH_PROGS)

$(BENCH_BIN)/%: bench/%.c
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) -o $@ $<

# The accept-timing shim of the recdelay section, preloaded before the library.
$(BENCH_BIN)/acceptlat.so: bench/acceptlat.c
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) -shared -fPIC -o $@ $< -ldl

# Section cpu's pass-through interposer (and its idle-thread variants).
$(BENCH_BIN)/passthru.so: bench/passthru.c
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) -shared -fPIC -fvisibility=hidden -o $@ $< -ldl -lpthread

bench-deps:
	@missing=; for p in $(BENCH_DEBS); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "bench-deps: installing$$missing"; \
	    if [ "$$(id -u)" -ne 0 ]; then echo "bench-deps: not root: install$$missing by hand" >&2; exit 1; fi; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
