# SPDX-License-Identifier: GPL-2.0
#
# blkbounce: the module is built by Kbuild (see Kbuild); these targets drive the toolchain,
# the kernels, the VM and the tests. KERNEL selects the kernel flavour: test or bench.

KERNEL ?= test

.PHONY: all toolchain kernel module clippy fmt fmt-check tools check demo clean

all: module

toolchain:
	scripts/setup-toolchain

kernel:
	scripts/build-kernel $(KERNEL)

module:
	scripts/build-module $(KERNEL)

clippy:
	CLIPPY=1 scripts/build-module $(KERNEL)

fmt:
	rustfmt --edition 2021 rust/blkbounce.rs
	cargo fmt --manifest-path tests/tools/Cargo.toml

fmt-check:
	rustfmt --edition 2021 --check rust/blkbounce.rs
	cargo fmt --manifest-path tests/tools/Cargo.toml --check

tools:
	scripts/build-tools

check:
	scripts/check

demo:
	scripts/demo

clean:
	rm -rf tests/tools/target
