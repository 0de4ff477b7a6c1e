#!/usr/bin/env bash
# make mutate: plants each bug kept in tests/mutants/*.mutant in a scratch
# copy of the tree, rebuilds, runs the checks that should catch it, and ends
# with one line "N caught, M survived" (plus any mutant that no longer
# applies: a stale mutant is a failure of this run too).
#
# A mutant file:
#   # why this bug matters (comment lines start with #)
#   file: src/lib/interpose.c
#   find: <text that must occur exactly once in file, \n for a newline>
#   replace: <what replaces it>
#   build: lib cli            (optional; make targets, default "all")
#   check: bats --tap tests/integration/paths.bats -f 'errno'
# The mutant is caught when the check exits non-zero.
#
# MUTANTS="name other" runs only those; MUTATE_TIMEOUT bounds each check
# (default 600 s); MUTATE_JOBS runs that many mutants at once, each in a
# scratch tree of its own (default 1); MUTATE_LTO=1 builds the scratch
# trees with link-time optimisation as `make` does (default off: each
# mutant then recompiles one file and relinks in seconds, where an LTO link
# of the library takes a minute on a loaded 2-core machine; what a mutant
# breaks does not depend on it).
set -u
cd "$(dirname "$0")/../.." || exit 2
root=$PWD
work=$root/build/mutate
timeout_s=${MUTATE_TIMEOUT:-600}
jobs=${MUTATE_JOBS:-1}
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "MUTATE_JOBS: '$jobs' is not a count" >&2; exit 2; }
makevars=()
[ "${MUTATE_LTO:-0}" = 1 ] || makevars=(IL_LTO=)
mkdir -p "$work"
rm -rf "$work"/tree "$work"/tree.* "$work"/results.* "$work"/original*

field() { sed -n "s/^$1: //p" "$2" | head -n 1; }

mutants=()
for m in tests/mutants/*.mutant; do
    name=$(basename "$m" .mutant)
    if [ -n "${MUTANTS:-}" ] && [[ " $MUTANTS " != *" $name "* ]]; then continue; fi
    mutants+=("$m")
done
[ ${#mutants[@]} -gt 0 ] || { echo "no mutants" >&2; exit 2; }
[ "$jobs" -le ${#mutants[@]} ] || jobs=${#mutants[@]}

# make_tree DIR: a copy of the built tree (tar keeps the times, so each
# mutant rebuilds only what its change touches). Without LTO, the
# library's objects are rebuilt once here without it.
make_tree() {
    mkdir -p "$1" &&
        tar --exclude=./build/mutate --exclude=./.git -cf - . | tar -C "$1" -xf - || return 1
    if [ ${#makevars[@]} -gt 0 ]; then
        rm -f "$1"/build/lib/*.o "$1"/build/libiplimit.so
        (cd "$1" && make -s all "${makevars[@]}" >"$1.build.log" 2>&1) || return 1
    fi
}

# run_one TREE MUTANT: plants, builds, checks and restores; prints one
# line "caught|survived|stale|broken NAME ..." (the word first).
run_one() {
    local tree=$1 m=$2 name file find replace build check start result why
    name=$(basename "$m" .mutant)
    file=$(field file "$m") find=$(field find "$m") replace=$(field replace "$m")
    build=$(field build "$m") check=$(field check "$m")
    [ -n "$build" ] || build=all
    cp "$tree/$file" "$tree.original"
    if ! python3 - "$tree/$file" "$find" "$replace" <<'PY'
import sys
path, find, replace = sys.argv[1], sys.argv[2].replace('\\n', '\n'), sys.argv[3].replace('\\n', '\n')
text = open(path).read()
if text.count(find) != 1:
    sys.exit(1)
open(path, 'w').write(text.replace(find, replace))
PY
    then
        echo "stale   $name: '$find' does not occur exactly once in $file"
        return
    fi
    start=$(date +%s)
    # A mutant must build: one that does not tests nothing (a broken mutant
    # fails the run, like a stale one).
    # shellcheck disable=SC2086
    if ! (cd "$tree" && make -s $build "${makevars[@]}" >"$work/$name.build.log" 2>&1); then
        cp "$tree.original" "$tree/$file"
        echo "broken  $name: does not build (build/mutate/$name.build.log)"
        return
    elif (cd "$tree" && timeout "$timeout_s" bash -c "$check") >"$work/$name.log" 2>&1; then
        result=survived why="check passed"
    else
        result=caught why="check failed"
    fi
    cp "$tree.original" "$tree/$file"
    echo "$result $name ($why, $(($(date +%s) - start)) s)"
}

# Worker k takes mutants k, k + jobs, ... in its own tree; its lines go to
# the terminal as they come and to results.k for the summary.
worker() {
    local k=$1 tree=$work/tree.$1 i
    if ! make_tree "$tree"; then
        echo "broken  tree.$k: the scratch tree does not build (build/mutate/tree.$k.build.log)" |
            tee -a "$work/results.$k"
        return
    fi
    for ((i = k; i < ${#mutants[@]}; i += jobs)); do
        run_one "$tree" "${mutants[$i]}" | tee -a "$work/results.$k"
    done
    # Leave the scratch tree built from the unmutated sources.
    (cd "$tree" && make -s all "${makevars[@]}" >/dev/null 2>&1)
}

pids=()
for ((k = 0; k < jobs; k++)); do
    worker "$k" &
    pids+=($!)
done
wait "${pids[@]}"

results=$(cat "$work"/results.*)
caught=$(grep -c '^caught ' <<<"$results")
survived=$(grep -c '^survived ' <<<"$results")
stale=$(grep -cE '^(stale|broken) ' <<<"$results")
survivors=$(sed -n 's/^survived \([^ ]*\) .*/\1/p' <<<"$results" | sort | tr '\n' ' ')
stales=$(sed -nE 's/^(stale|broken) +([^ :]*):.*/\2/p' <<<"$results" | sort | tr '\n' ' ')
[ -z "$survivors" ] || echo "survived: ${survivors% }"
[ -z "$stales" ] || echo "stale or broken: ${stales% }"
echo "$caught caught, $survived survived, $stale stale or broken"
[ "$survived" -eq 0 ] && [ "$stale" -eq 0 ]
