# SPDX-License-Identifier: GPL-2.0
#
# blkbounce: the module is built by Kbuild (see Kbuild); these targets drive the toolchain,
# the kernels, the VM and the tests. KERNEL selects the kernel flavour: test or bench.

KERNEL ?= test

# make stress: seconds of load (the README quotes a 10-minute run).
DURATION ?= 600

# make xfstests: an xfstests checkout (built if it is not), the filesystem, the lower PI
# device, blkbounce's mode (raw: none, the control) and the kernel (bench by default);
# TESTS: check's arguments, tests/xfstests/blkbounce.group when empty.
XFSTESTS_DIR ?=
TESTS ?=
FSTYP ?= xfs
LOWER ?= scsi_debug
MODE ?= auto

.PHONY: all toolchain kernel module install install-tool uninstall-tool dkms-source reboot-test clippy fmt fmt-check tools check stress testbed bench xfstests demo clean

all: module

toolchain:
	scripts/setup-toolchain

kernel:
	scripts/build-kernel $(KERNEL)

# make module KDIR=/path/to/kernel/build builds against that kernel instead; then
# make install KDIR=... (as root; INSTALL_MOD_PATH=, DEPMOD=true) installs that build into
# the kernel's module tree, under extra/, and runs depmod.
KDIR ?=
BUILD_MODULE = scripts/build-module $(if $(KDIR),--kdir $(KDIR),$(KERNEL))
export INSTALL_MOD_PATH DEPMOD

module:
	$(BUILD_MODULE)

install:
	$(if $(KDIR),,$(error make install needs KDIR=<kernel build tree>, after make module KDIR=...))
	scripts/build-module --kdir $(KDIR) --install

# make install-tool (as root, after make tools) installs blkbouncectl into $(PREFIX)/sbin,
# its systemd unit into /etc/systemd/system and its udev rule (/dev/blkbounce/NAME) into
# /etc/udev/rules.d, under DESTDIR if given. It does not build:
# under sudo, neither the user's cargo nor their crates are at hand.
PREFIX ?= /usr/local
DESTDIR ?=

install-tool:
	@test -x tool/target/release/blkbouncectl || { echo "blkbouncectl is not built: run make tools first" >&2; exit 1; }
	install -D -m 755 tool/target/release/blkbouncectl $(DESTDIR)$(PREFIX)/sbin/blkbouncectl
	sed 's|/usr/local/sbin/blkbouncectl|$(PREFIX)/sbin/blkbouncectl|' tool/systemd/blkbounce.service | \
		install -D -m 644 /dev/stdin $(DESTDIR)/etc/systemd/system/blkbounce.service
	sed 's|/usr/local/sbin/blkbouncectl|$(PREFIX)/sbin/blkbouncectl|' tool/udev/60-blkbounce.rules | \
		install -D -m 644 /dev/stdin $(DESTDIR)/etc/udev/rules.d/60-blkbounce.rules

# make uninstall-tool (as root) removes what install-tool installed, with the same PREFIX
# and DESTDIR, and the unit's link if it was left enabled; then systemctl daemon-reload.
uninstall-tool:
	rm -f $(DESTDIR)$(PREFIX)/sbin/blkbouncectl $(DESTDIR)/etc/systemd/system/blkbounce.service \
		$(DESTDIR)/etc/systemd/system/sysinit.target.wants/blkbounce.service \
		$(DESTDIR)/etc/udev/rules.d/60-blkbounce.rules

# make dkms-source (as root) makes $(DKMS_SOURCE)/blkbounce-<version> for dkms add.
DKMS_SOURCE ?= /usr/src

dkms-source:
	scripts/dkms-source $(DKMS_SOURCE)

clippy:
	CLIPPY=1 $(BUILD_MODULE)

fmt:
	rustfmt --edition 2021 rust/blkbounce.rs
	cargo fmt --manifest-path tests/tools/Cargo.toml
	cargo fmt --manifest-path tool/Cargo.toml

fmt-check:
	rustfmt --edition 2021 --check rust/blkbounce.rs
	cargo fmt --manifest-path tests/tools/Cargo.toml --check
	cargo fmt --manifest-path tool/Cargo.toml --check

tools:
	scripts/build-tools

check:
	scripts/check

stress:
	BLKBOUNCE_STRESS_SECONDS=$(DURATION) scripts/check stress/001

# The emulators' own behaviour, without blkbounce: what the PI devices of the test VM do
# under overlapping writes and with WRITE SAME (tests/testbed/).
testbed:
	scripts/check testbed/001 testbed/002

# Two boots: devices made and saved with blkbouncectl in the first come back in the second.
reboot-test:
	scripts/reboot-test

bench:
	scripts/bench

xfstests:
	FSTYP=$(FSTYP) LOWER=$(LOWER) MODE=$(MODE) \
		KERNEL=$(if $(filter command line environment,$(origin KERNEL)),$(KERNEL),bench) \
		scripts/xfstests "$(XFSTESTS_DIR)" $(TESTS)

demo:
	scripts/demo

clean:
	rm -rf tests/tools/target tool/target .build
