# `make mutate`: plants each bug kept in tests/mutants/*.mutant in a scratch
# copy of the tree and runs the checks that must catch it (docs/testing.md).
# Not part of `make check`: it rebuilds and reruns suites once per mutant.
# MUTANTS="name ..." runs only those.
.PHONY: mutate
mutate: all test-programs
	@tests/mutants/run.sh
