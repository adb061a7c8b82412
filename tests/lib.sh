# SPDX-License-Identifier: GPL-2.0
# Helpers for the test cases; sourced by tests/run in the guest.

CONFIGFS=/sys/kernel/config/blkbounce
TOOLS=$REPO_ROOT/tests/tools/target/release
# Prints the device path of namespace NSID of the NVMe controller with serial SERIAL
# (scripts/vm-run names them), or fails. Controller numbers depend on probe order.
nvme_ns() {
	local ctrl ns serial nsid
	# Every case sources this file: builtins only, as an exec costs much in the guest.
	for ctrl in /sys/class/nvme/nvme*; do
		read -r serial 2>/dev/null <"$ctrl/serial" || continue
		[ "${serial// /}" = "$1" ] || continue
		for ns in "$ctrl"/nvme*n*; do
			read -r nsid 2>/dev/null <"$ns/nsid" || continue
			[ "$nsid" = "$2" ] && echo "/dev/${ns##*/}" && return 0
		done
	done
	return 1
}

# The PI NVMe namespaces the cases stack on: NVME always, NVME2 when vm-run gave a second
# namespace (--nvme-count 2); SPARE_NVME is the one of the spare controller (--spare-nvme).
NVME=$(nvme_ns blkbounce-pi 1)
NVME2=$(nvme_ns blkbounce-pi 2)
SPARE_NVME=$(nvme_ns blkbounce-spare 1)
# The disk's name under /sys/block.
NVME_DISK=${NVME#/dev/}

# scsi_debug, the second PI device: a RAM-backed SCSI disk of the guest kernel with T10
# DIF type 1 and DIX, 4096-byte sectors and a store per host. It checks the PI of each
# write and stores data and PI under one lock, so overlapping writes do not interleave
# as on the emulated NVMe (testbed/001). It reads the submitter's pages twice, to check
# and to store: a page changed in between is stored with PI that does not match.
SDEB_PARAMS="dif=1 dix=1 guard=0 sector_size=4096 per_host_store=1"

# Prints the device paths of the scsi_debug disks, in the order of their SCSI hosts.
sdeb_disks() {
	local dev
	for dev in /sys/block/sd*; do
		# The SCSI model field is padded with blanks.
		[ "$(tr -d ' ' 2>/dev/null <"$dev/device/model")" = scsi_debug ] || continue
		echo "$(basename "$(readlink -f "$dev/device")") /dev/${dev##*/}"
	done | sort -t: -k1,1n | cut -d' ' -f2
}

# Loads scsi_debug with HOSTS disks (default 1) of SIZE_MB each (default 64) and sets
# SDEB (and SDEB2, ...) to their device paths. WRITE SAME, which the SCSI disk driver
# uses for write zeroes, is turned off on each disk unless KEEP_WRITE_SAME=1: scsi_debug
# writes the data of a WRITE SAME and leaves the blocks' PI as it was (testbed/002), so
# zeroed blocks would fail their guard check. The block layer then writes zero pages,
# with PI. Stack on the disks only after this.
scsi_debug_load() {
	local hosts=${1:-1} size=${2:-64} disks _ i
	scsi_debug_unload || return 1
	insmod "$BLKBOUNCE_KDIR/drivers/scsi/scsi_debug.ko" $SDEB_PARAMS \
		dev_size_mb="$size" add_host="$hosts" || return 1
	for _ in $(seq 100); do
		mapfile -t disks < <(sdeb_disks)
		[ ${#disks[@]} = "$hosts" ] && [ -b "${disks[-1]}" ] && break
		sleep 0.1
	done
	[ ${#disks[@]} = "$hosts" ] || fail "scsi_debug: ${#disks[@]} of $hosts disks appeared" || return 1
	[ "${KEEP_WRITE_SAME:-0}" = 1 ] ||
		for i in "${disks[@]}"; do
			echo 0 >"$(echo /sys/block/"${i#/dev/}"/device/scsi_disk/*)/max_write_same_blocks" || return 1
		done
	SDEB=${disks[0]} SDEB2=${disks[1]:-}
}

# Removes scsi_debug and its disks, if loaded. udev probes a disk again after each close
# of a write, and an open disk keeps the module in use: wait for udev, and try again.
scsi_debug_unload() {
	local _
	for _ in 1 2 3 4 5; do
		[ -d /sys/module/scsi_debug ] || return 0
		settle
		rmmod scsi_debug 2>/dev/null && return 0
		sleep 1
	done
	rmmod scsi_debug
}

# Whether DEV carries T10-PI type 1 (CRC guard) integrity; prints why not.
has_t10_pi() {
	[ "$(cat "/sys/block/${1#/dev/}/integrity/format" 2>/dev/null)" = T10-DIF-TYPE1-CRC ] ||
		{ echo "$1 has no T10-PI type 1 integrity"; return 1; }
}

# Whether the pi-race LINE of a control (the raw device, or off) shows the problem itself:
# some I/O failed, and every failure was EILSEQ, the integrity check's error.
control_failed() {
	[ "$(field "$1" eilseq)" -gt 0 ] && [ "$(field "$1" eilseq)" = "$(field "$1" failed)" ]
}

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
	local key value
	while read -r key value; do
		[ "$key" != "$2" ] || echo "$value"
	done <"$CONFIGFS/$1/stats"
}

# Prints field KEY of a "key=value ..." line.
field() {
	local words word
	read -d '' -ra words <<<"$1"
	for word in "${words[@]}"; do
		[[ $word != "$2="* ]] || printf '%s\n' "${word#"$2="}"
	done
}

# Sets the fault injection attributes ATTR to VALUE, pair by pair, of the debugfs
# directory NAME (fail_make_request, failslab, fail_page_alloc); see
# Documentation/fault-injection/fault-injection.rst.
fault_set() {
	local dir=/sys/kernel/debug/$1
	shift
	while [ $# -ge 2 ]; do
		echo "$2" >"$dir/$1" || return 1
		shift 2
	done
}

# Runs CMD with fault injection's task filter aimed at it (and its children).
as_fault_target() {
	sh -c 'echo 1 >/proc/self/make-it-fail && exec "$@"' sh "$@"
}

# Prints what a case left that reset_guest removes: mounts under /tmp, dm and md devices,
# the blkbounce module and its sample, blklinear.
leftovers() {
	awk '$2 ~ "^/tmp/" {print "mount " $2}' /proc/mounts
	dmsetup ls 2>/dev/null | grep -v '^No devices' | sed 's/^/dm /'
	ls -d /sys/block/md* 2>/dev/null | sed 's|.*/|md |'
	module_loaded && echo blkbounce
	grep -q '^blklinear ' /proc/modules && echo blklinear
	return 0
}

# Undoes what a case that failed or was stopped half-way may have left behind: fault
# injection, swap, mounts under /tmp, dm and md devices, blkbounce devices and the module,
# scsi_debug and null_blk. Stacks differ (dm above blkbounce, blkbounce above dm or md), so
# the layers are taken down in rounds until nothing is left. Fails, naming what stays, if
# something does.
reset_guest() {
	local d m round left
	for d in fail_make_request failslab fail_page_alloc; do
		[ -d "/sys/kernel/debug/$d" ] && echo 0 >"/sys/kernel/debug/$d/probability"
	done
	for d in /sys/block/*/make-it-fail; do
		[ ! -e "$d" ] || [ "$(cat "$d")" = 0 ] || echo 0 >"$d"
	done
	swapoff -a
	for round in 1 2 3; do
		left=$(leftovers)
		[ -n "$left" ] || break
		settle
		for m in $(awk '$2 ~ "^/tmp/" {print $2}' /proc/mounts | sort -r); do
			umount "$m"
		done
		grep -q '^dm ' <<<"$left" && DM_DISABLE_UDEV=1 dmsetup remove_all 2>/dev/null
		unload_module 2>/dev/null
		grep -q '^blklinear ' /proc/modules && rmmod blklinear
		for d in /sys/block/md*; do
			[ -e "$d" ] && mdadm --stop "/dev/${d##*/}" >/dev/null 2>&1
		done
	done
	left=$(leftovers)
	[ -z "$left" ] || { echo "left behind: $(tr '\n' ' ' <<<"$left")"; return 1; }
	scsi_debug_unload && null_blk_unload
}

# Waits for udev to finish with new and removed disks, if udev runs.
settle() {
	command -v udevadm >/dev/null && udevadm settle --timeout=30 2>/dev/null
	return 0
}

# Stops udevd, for the benchmarks. It runs its rules for each new device in workers that it
# forks and lets go seconds later, and for a device it watches (NVMe, SCSI, dm; not
# null_blk or blkbounce) it probes the device with blkid, through the page cache, each time
# a writer closes it: that work would land in the samples of the jobs that follow, and
# only after the devices it watches. Nothing on the I/O path needs udev: devtmpfs makes
# the disks' nodes, and dmsetup makes its own (DM_DISABLE_UDEV; libdevmapper still finds
# udev's control socket and says that it bypasses it). Call it once the disks that need
# udev's rules have settled.
udev_stop() {
	command -v pgrep >/dev/null || { echo "udev_stop needs pgrep"; return 1; }
	if udevd_runs; then
		udevadm control --exit || return 1
		for _ in $(seq 50); do udevd_runs || break; sleep 0.2; done
		udevd_runs && { echo "udevd did not exit"; return 1; }
	fi
	export DM_DISABLE_UDEV=1
}

udevd_runs() {
	pgrep -x systemd-udevd >/dev/null || pgrep -x udevd >/dev/null
}

# Stops every md array that holds one of DEVICES and wipes their md superblocks. An array
# whose start failed can be assembled again, inactive, by udev from the superblock left on a
# member; it then holds that member exclusively.
md_release() {
	local dev holder
	settle
	for dev in "$@"; do
		for holder in /sys/block/"${dev#/dev/}"/holders/md*; do
			[ -e "$holder" ] && mdadm --stop "/dev/${holder##*/}" >/dev/null 2>&1
		done
		mdadm --zero-superblock "$dev" >/dev/null 2>&1
	done
	settle
	for dev in "$@"; do
		[ -z "$(ls "/sys/block/${dev#/dev/}/holders" 2>/dev/null)" ] ||
			fail "${dev#/dev/} is still held by $(ls "/sys/block/${dev#/dev/}/holders")" || return 1
	done
}

# Runs the kernel's memory leak detector and fails if it reports anything, or if it is
# absent or has turned itself off (a scan is then refused with EPERM). Objects must be 5 s
# old and seen unreferenced twice to count; call kmemleak_clear before the work.
kmemleak_check() {
	local f=/sys/kernel/debug/kmemleak leaks
	[ -w $f ] || { fail "kmemleak is not available"; return 1; }
	echo scan 2>/dev/null >$f || { fail "kmemleak refused a scan: it has turned itself off"; return 1; }
	sleep 6
	echo scan 2>/dev/null >$f || { fail "kmemleak refused a scan: it has turned itself off"; return 1; }
	leaks=$(grep -c '^unreferenced object' $f)
	figure "kmemleak: $leaks unreferenced objects"
	[ "$leaks" = 0 ] || { head -40 $f; fail "kmemleak reports leaks"; }
}

kmemleak_clear() {
	[ -w /sys/kernel/debug/kmemleak ] && echo clear >/sys/kernel/debug/kmemleak
	return 0
}

# Runs fio verify jobs on FILE, or in directory FILE, one after another in one fio process
# and as its threads (in the test kernel, a start of fio costs about 9 s and a job's
# process about 2 s): each argument after FILE is one job, its name and then its options,
# separated by spaces. Prints a line per job. With FIO_AS_FAULT_TARGET=1, fio runs as the
# target of fault injection's task filter.
fio_verify_jobs() {
	local file=$1 job words out status args=() runner=()
	shift
	if [ -d "$file" ]; then args=(--directory="$file"); else args=(--filename="$file"); fi
	for job; do
		read -ra words <<<"$job"
		args+=(--name="${words[0]}" --stonewall "${words[@]:1}")
	done
	[ "${FIO_AS_FAULT_TARGET:-0}" = 1 ] && runner=(as_fault_target)
	out=$("${runner[@]}" fio --thread --size=4m --verify=crc32c --do_verify=1 \
		--verify_fatal=1 --output-format=terse --terse-version=3 "${args[@]}" 2>&1)
	status=$?
	if [ $status -ne 0 ] || grep -qi "verify: bad\|bad magic\|error" <<<"$out"; then
		echo "$out" | tail -20
		return 1
	fi
	for job; do
		figure "fio ${job%% *}: ok (${job#* })"
	done
}

# Runs one fio verify job NAME on FILE with extra options (fio_verify_jobs).
fio_verify() {
	local name=$1 file=$2
	shift 2
	fio_verify_jobs "$file" "$name $*"
}

# Loads null_blk with module parameters ARGS (one device, /dev/nullb0) and waits for it.
null_blk_load() {
	insmod "$BLKBOUNCE_KDIR/drivers/block/null_blk/null_blk.ko" nr_devices=1 "$@" || return 1
	local _
	for _ in $(seq 50); do [ -b /dev/nullb0 ] && settle && return 0; sleep 0.1; done
	fail "/dev/nullb0 did not appear"
}

null_blk_unload() {
	[ -d /sys/module/null_blk ] && rmmod null_blk
	return 0
}

# Prints field N (1-based, as in Documentation/admin-guide/iostats.rst plus 3: major,
# minor, name first) of disk NAME in /proc/diskstats.
diskstat() {
	awk -v d="$1" -v f="$2" '$3 == d {print $f}' /proc/diskstats
}
