# SPDX-License-Identifier: GPL-2.0
# Helpers for the test cases; sourced by tests/run in the guest.

CONFIGFS=/sys/kernel/config/blkbounce
TOOLS=$REPO_ROOT/tests/tools/target/release
# The PI NVMe namespace the cases stack on.
NVME=/dev/nvme0n1

# Prints a figure line: it shows up in the suite's report under the case.
figure() {
	echo "  $*"
}

fail() {
	echo "FAILED: $*"
	return 1
}

module_loaded() {
	[ -d /sys/module/blkbounce ]
}

load_module() {
	module_loaded || insmod "$BLKBOUNCE_KO"
}

# Removes every blkbounce device, then the module.
unload_module() {
	module_loaded || return 0
	local d
	for d in "$CONFIGFS"/*/; do
		[ -d "$d" ] || continue
		echo 0 >"$d/enable" 2>/dev/null
		rmdir "$d"
	done
	rmmod blkbounce
}

# Writes VALUE to the attribute FILE; prints "ok" or the error text of the failed
# write (strerror of the errno, e.g. "Invalid argument").
attr_write() {
	local err
	if err=$({ printf '%s' "$2" >"$1"; } 2>&1); then
		echo ok
	else
		echo "${err##*: }"
	fi
}

# Expects writing VALUE to FILE to fail with error text ERR, and the kernel log to have
# gained a line matching PATTERN.
expect_refused() {
	local file=$1 value=$2 err=$3 pattern=$4 got before
	before=$(dmesg | wc -l)
	got=$(attr_write "$file" "$value")
	if [ "$got" != "$err" ]; then
		fail "writing '$value' to ${file#"$CONFIGFS"/}: expected '$err', got '$got'"
		return 1
	fi
	if ! dmesg | tail -n +$((before + 1)) | grep -qE "blkbounce: .*$pattern"; then
		fail "writing '$value' to ${file#"$CONFIGFS"/}: no kernel log line matching '$pattern'"
		return 1
	fi
	echo "refused as expected: ${file#"$CONFIGFS"/} <- '$value': $got"
}

# Creates device NAME over BACKING in MODE (default off), enables it and prints the
# disk's device path.
bb_create() {
	local name=$1 backing=$2 mode=${3:-off} dir=$CONFIGFS/$1
	mkdir "$dir" || return 1
	echo "$backing" >"$dir/backing" || return 1
	echo "$mode" >"$dir/mode" || return 1
	echo 1 >"$dir/enable" || return 1
	echo "/dev/$(cat "$dir/disk")"
}

# Disables and removes device NAME.
bb_remove() {
	echo 0 >"$CONFIGFS/$1/enable" && rmdir "$CONFIGFS/$1"
}

# Prints the value of counter KEY of device NAME.
bb_stat() {
	awk -v k="$2" '$1 == k {print $2}' "$CONFIGFS/$1/stats"
}

# Prints field KEY of a "key=value ..." line.
field() {
	tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"
}
