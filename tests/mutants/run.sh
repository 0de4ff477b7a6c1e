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
# (default 600 s).
set -u
cd "$(dirname "$0")/../.."
root=$PWD
work=$root/build/mutate
tree=$work/tree
timeout_s=${MUTATE_TIMEOUT:-600}
mkdir -p "$work"

# The scratch copy carries the built tree along (tar keeps the times), so
# each mutant rebuilds only what its change touches.
rm -rf "$tree" && mkdir -p "$tree" || exit 1
tar --exclude=./build/mutate --exclude=./.git -cf - . | tar -C "$tree" -xf - || exit 1

field() { sed -n "s/^$1: //p" "$2" | head -n 1; }

caught=0 survived=0 stale=0
survivors=() stales=()
for m in tests/mutants/*.mutant; do
    name=$(basename "$m" .mutant)
    if [ -n "${MUTANTS:-}" ] && [[ " $MUTANTS " != *" $name "* ]]; then continue; fi
    file=$(field file "$m") find=$(field find "$m") replace=$(field replace "$m")
    build=$(field build "$m") check=$(field check "$m")
    [ -n "$build" ] || build=all
    cp "$tree/$file" "$work/original"
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
        stale=$((stale + 1)); stales+=("$name")
        continue
    fi
    start=$(date +%s)
    # A mutant must build: one that does not tests nothing (a broken mutant
    # fails the run, like a stale one).
    if ! (cd "$tree" && make -s $build >"$work/$name.build.log" 2>&1); then
        cp "$work/original" "$tree/$file"
        echo "broken  $name: does not build (build/mutate/$name.build.log)"
        stale=$((stale + 1)); stales+=("$name")
        continue
    elif (cd "$tree" && timeout "$timeout_s" bash -c "$check") >"$work/$name.log" 2>&1; then
        result=survived; why="check passed"
    else
        result=caught; why="check failed"
    fi
    cp "$work/original" "$tree/$file"
    echo "$result $name ($why, $(( $(date +%s) - start )) s)"
    if [ "$result" = caught ]; then caught=$((caught + 1)); else
        survived=$((survived + 1)); survivors+=("$name"); fi
done
# Leave the scratch tree built from the unmutated sources.
(cd "$tree" && make -s all >/dev/null 2>&1)

[ ${#survivors[@]} -eq 0 ] || echo "survived: ${survivors[*]}"
[ ${#stales[@]} -eq 0 ] || echo "stale or broken: ${stales[*]}"
echo "$caught caught, $survived survived, $stale stale or broken"
[ "$survived" -eq 0 ] && [ "$stale" -eq 0 ]
