# `make demo`: install what is missing, build, show the limiter at work.
.PHONY: demo
demo:
	@tests/install-deps.sh build
	$(MAKE) lib $(BUILD)/tests/prefork $(BUILD)/tests/ilclient
	@tests/demo.sh
