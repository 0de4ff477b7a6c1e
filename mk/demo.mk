# `make demo`: install what is missing, build, show the limiter at work.
.PHONY: demo
demo: deps
	$(MAKE) all test-programs
	@tests/demo.sh
