# Section "pages" of bench/run.sh (sourced by it): the memory pages the
# library touches on the way of one accepted-and-closed connection.
#
# Why pages: a preforked server's workers take turns on a CPU, and where
# the CPU has no tagged TLB (no PCID, as in this machine's VM) every switch
# between them empties the TLB; each page touched afterwards costs a page
# walk. Instructions do not show that cost and the VM has no hardware
# counters to count TLB misses, so the pages are counted instead, exactly:
# valgrind's lackey traces every instruction and data access of
# bench/pagedrive (PAGES_CYCLES accept+close cycles on loopback); an
# access counts for the library when the instruction that made it is in
# the library's image. Per cycle (from one entry of the library's accept
# to the next), the distinct 4 KiB pages of: the library's code; its own
# data (.data, .bss, the GOT); and everything else it reads or writes (the
# stack, thread-local storage, the fd map, the shared segment's header,
# statistics stripe, key and connection slots). Reported: the medians over
# the cycles (the first 5 and the last are left out: start-up).
# PAGES_BASE_LIB=/path/libiplimit.so adds a row for another build (or any
# interposer that defines accept: bench/passthru.so for the bare cost).
# PAGES_GRAIN=B counts units of B bytes instead of 4 KiB pages (64: cache
# lines). Also reported: the locked instructions per cycle (the lock-prefixed
# instructions and xchg with memory of objdump's disassembly of the library
# that the trace executes).
# PAGES_INTERVAL=S runs with IPLIMIT_RECONCILE_INTERVAL=S (default 0, off;
# 3600: the reconciler thread in the process, its runs an hour apart).
# Public tools only: valgrind (lackey), awk. Under a minute.

PAGES_CYCLES=${PAGES_CYCLES:-40}

# pages_of LIB: "code data other total locked" medians per cycle, or
# "NA NA NA NA NA".
pages_of() {
    local lib=$1 trace=$TMP/pages.trace where=$TMP/pages.lib locks=$TMP/pages.locks
    objdump -d --no-show-raw-insn "$lib" 2>/dev/null |
        awk -F'\t' 'NF >= 2 && ($2 ~ /^lock / || ($2 ~ /^xchg / && $2 ~ /\(/)) { sub(":", "", $1); gsub(" ", "", $1); print $1 }' >"$locks"
    env IPLIMIT_LOG=none IPLIMIT_RECONCILE_INTERVAL="${PAGES_INTERVAL:-0}" IPLIMIT_MAX=3 LD_PRELOAD="$lib" \
        valgrind --tool=lackey --trace-mem=yes --log-file="$trace" \
        "$BIN/pagedrive" "$PAGES_CYCLES" >"$where" 2>"$TMP/pages.err" || { echo NA NA NA NA NA; return; }
    awk -v grain="${PAGES_GRAIN:-4096}" 'function hex(s,   i, v) { v = 0; s = tolower(s)
                for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
                return v }
        function page(a) { return int(a / grain) }
        FILENAME == ARGV[1] { if ($1 == "lib") { base = hex($2); end = hex($3); entry = hex($4) } next }
        FILENAME == ARGV[2] { lock[hex($1)] = 1; next }
        /^I / { split(substr($0, 4), f, ","); a = hex(f[1])
                if (a == entry) { n++ }
                inlib = a >= base && a < end
                if (inlib && n) { code[n, page(a)] = 1; if ((a - base) in lock) locked[n]++ }
                next }
        /^ [LSM] / { if (!inlib || !n) next
                split(substr($0, 4), f, ","); a = hex(f[1])
                if (a >= base && a < end) data[n, page(a)] = 1; else other[n, page(a)] = 1 }
        function per(arr, out,   k, s) { for (k in arr) { split(k, s, SUBSEP); out[s[1]]++ } }
        function median(v, lo, hi,   m, i, j, t, x) { m = 0
                for (i = lo; i <= hi; i++) x[m++] = v[i] + 0
                for (i = 0; i < m; i++) for (j = i + 1; j < m; j++) if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t }
                return m % 2 ? x[(m - 1) / 2] : (x[m / 2 - 1] + x[m / 2]) / 2 }
        END { if (n < 8) { print "NA NA NA NA NA"; exit }
              per(code, c); per(data, d); per(other, o)
              for (i = 6; i < n; i++) t[i] = c[i] + d[i] + o[i]
              print median(c, 6, n - 1), median(d, 6, n - 1), median(o, 6, n - 1), median(t, 6, n - 1),
                  median(locked, 6, n - 1) }' \
        "$where" "$locks" "$trace"
}

section_pages() {
    command -v valgrind >/dev/null || { md "## Pages touched per connection: skipped (no valgrind)"; md ""; return; }
    log "pages: valgrind lackey, $PAGES_CYCLES accept+close cycles"
    local rows=("this build|$LIB") row name lib c d o t l unit
    [ -n "${PAGES_BASE_LIB:-}" ] && rows+=("base|$PAGES_BASE_LIB")
    unit=$([ "${PAGES_GRAIN:-4096}" == 4096 ] && echo "Pages" || echo "Units of ${PAGES_GRAIN} bytes")
    md "## $unit the library touches per accepted-and-closed connection (valgrind lackey, medians over $PAGES_CYCLES cycles)"
    md ""
    md "| library | code | its data (.data, .bss, GOT) | other (stack, TLS, fd map, segment) | total | locked instructions |"
    md "|---|---|---|---|---|---|"
    for row in "${rows[@]}"; do
        name=${row%%|*} lib=${row#*|}
        read -r c d o t l <<<"$(pages_of "$lib")"
        record pages "$name" 1 grain="${PAGES_GRAIN:-4096}" code="$c" data="$d" other="$o" total="$t" locked="$l"
        md "| $name | $c | $d | $o | $t | $l |"
    done
    md ""
}
