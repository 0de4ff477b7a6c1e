# `make check`: install what the tests need, build everything, run every suite.
# Suites are listed in tests/suites; SUITES="unit integration" runs a subset.
.PHONY: check check-only
check: deps
	$(MAKE) all test-programs
	@tests/run-all.sh

check-only: all test-programs
	@tests/run-all.sh

# Other fragments add their programs to this target.
.PHONY: test-programs
