# SPDX-License-Identifier: GPL-2.0
# Shared settings for the blkbounce scripts; sourced, never run.

# Everything built or downloaded lives outside the checkout, so that a second run (and CI on
# the same machine) reuses it.
# DKMS may run us from a service without HOME.
HOME=${HOME:-/root}
BLKBOUNCE_CACHE=${BLKBOUNCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/blkbounce}

# The kernel blkbounce targets, as Debian ships its source (package linux-source-7.3).
KERNEL_SERIES=7.3
KERNEL_VERSION=${KERNEL_VERSION:-7.3.4}
KERNEL_SRC=$BLKBOUNCE_CACHE/src/linux-$KERNEL_VERSION
# The apt suite that carries linux-source-7.3 and a rust-src matching the machine's rustc.
EXTRA_SUITE=${EXTRA_SUITE:-trixie-backports}

LLVM_SUFFIX=-19
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm$LLVM_SUFFIX/lib}
# virtme-ng's virtual environment, where the machine's Python refuses pip (setup-toolchain),
# and a directory first in PATH with a link to its vng alone.
VIRTME_VENV=$BLKBOUNCE_CACHE/venv
export PATH=$BLKBOUNCE_CACHE/bin:$HOME/.cargo/bin:$PATH

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() {
	printf '%s: error: %s\n' "${0##*/}" "$*" >&2
	exit 1
}

log() {
	printf '%s: %s\n' "${0##*/}" "$*" >&2
}

# rustc's version, e.g. 1.95.0.
rustc_version() {
	rustc --version | awk '{print $2}'
}

# Where the core library source for the machine's rustc is unpacked.
rust_lib_src() {
	echo "$BLKBOUNCE_CACHE/src/rust-src-$(rustc_version)/usr/src/rustc-$(rustc_version)/library"
}

# Bumped when scripts/build-kernel changes what it builds.
KERNEL_BUILD_FORMAT=1

# Prints the directory that holds the installed QEMU's qemu-plugin.h (setup-toolchain).
qemu_plugin_include() {
	echo "$BLKBOUNCE_CACHE/src/qemu-plugin-$(dpkg-query -W -f='${source:Version}' qemu-system-x86 | tr ':' '_')"
}

# The build directory of one kernel flavour (test or bench): keyed by kernel version, the
# flavour's configuration fragments, the build format and the compiler versions.
kernel_build_dir() {
	local flavour=$1 key
	key=$(
		{
			echo "$KERNEL_VERSION"
			cat "$REPO_ROOT/scripts/kconfig/common.config" \
				"$REPO_ROOT/scripts/kconfig/$flavour.config"
			echo "$KERNEL_BUILD_FORMAT"
			rustc --version
			clang$LLVM_SUFFIX --version 2>/dev/null | head -1
		} | sha256sum | cut -c1-12
	)
	echo "$BLKBOUNCE_CACHE/kernel/$KERNEL_VERSION-$flavour-$key"
}

# The module's version: the git revision it is built from (with -dirty for local changes),
# else the VERSION file of a release tarball (as DKMS builds it), else "unknown".
module_version() {
	git -C "$REPO_ROOT" describe --always --dirty --abbrev=12 2>/dev/null ||
		cat "$REPO_ROOT/VERSION" 2>/dev/null || echo unknown
}

# Arguments common to every make call on the kernel tree.
kernel_make_args() {
	echo "LLVM=$LLVM_SUFFIX RUST_LIB_SRC=$(rust_lib_src)"
}
