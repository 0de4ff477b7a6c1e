# `make deb`: build/deb/iplimit_VERSION_ARCH.deb from debian/, built by
# dpkg-buildpackage in a scratch copy of the tree (build/deb/iplimit-VERSION),
# so the tree itself stays clean. VERSION is the one place the version is
# written; debian/changelog and `iplimit --version` must agree with it
# (tests/deb checks both).
IL_VERSION := $(shell cat VERSION 2>/dev/null)
DEB_ARCH   := $(shell dpkg --print-architecture 2>/dev/null)
DEB_DIR     = $(BUILD)/deb
DEB_FILE    = $(DEB_DIR)/iplimit_$(IL_VERSION)_$(DEB_ARCH).deb

.PHONY: deb
deb:
	@tests/install-deps.sh deb
	rm -rf "$(DEB_DIR)"
	mkdir -p "$(DEB_DIR)/iplimit-$(IL_VERSION)"
	tar --exclude=./build --exclude=./.git -cf - . | tar -C "$(DEB_DIR)/iplimit-$(IL_VERSION)" -xf -
	cd "$(DEB_DIR)/iplimit-$(IL_VERSION)" && dpkg-buildpackage -us -uc -b
	@echo "built $(DEB_FILE)"
