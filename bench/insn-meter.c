// SPDX-License-Identifier: GPL-2.0
/*
 * insn-meter: a QEMU TCG plugin that counts the instructions the guest executes, per vCPU,
 * in all and inside one address range (blkbounce's text). The guest asks for a sample by
 * executing a marker, a NOP that no compiler emits:
 *
 *   nopl 0x6b6bCCCC(%rax)        0f 1f 80 CC CC 6b 6b
 *
 * CCCC is the command:
 *   0x0000       sample: append a line with the counts so far to the output file, tagged
 *                with the value register (then cleared)
 *   0x0100 | b   shift bit b into the value register
 *   0x0200       the range starts at the value register (then cleared)
 *   0x0201       the range ends at the value register (then cleared)
 *   0x0300       profile: zero the per-block counts
 *   0x0301       profile: append the per-block counts to the profile file, tagged with
 *                the value register (then cleared)
 *
 * The guest's side is tests/tools (insn-meter). Output, one line each:
 *
 *   range LO HI
 *   sample SEQ TAG TOTAL INRANGE VCPU0_TOTAL VCPU0_INRANGE VCPU1_TOTAL ...
 *
 * and in the profile file (with profile=FILE):
 *
 *   profile TAG
 *   ADDRESS INSNS        for each translated block that ran since the last zeroing: its
 *                        guest address and the instructions executed in it (a block
 *                        translated again appears again)
 *
 * Arguments: out=FILE (required), profile=FILE.
 *
 * Counting: every translated block gets an execution callback whose user data packs the
 * block's instruction count (bits 48-63; TCG puts at most 512 in a block) with its guest
 * address (bits 0-47; x86_64 addresses with 4-level paging are sign-extended from bit 47).
 * The callback adds the count to its vCPU's counters, which only that vCPU's thread
 * writes (relaxed atomic stores: no lock prefix); a sample reads all of them. A block is
 * counted when it starts: one that leaves early (an exception) counts in full. The
 * profile adds each block's count to a counter of its own with an inline add, which is
 * not atomic: two vCPUs running one block at once may lose a count.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define MAX_VCPUS 64
#define VA_BITS 48
#define VA_MASK ((UINT64_C(1) << VA_BITS) - 1)

#define MARKER_MAGIC 0x6b6bu
#define CMD_SAMPLE 0x0000u
#define CMD_BIT 0x0100u
#define CMD_RANGE_START 0x0200u
#define CMD_RANGE_END 0x0201u
#define CMD_PROFILE_ZERO 0x0300u
#define CMD_PROFILE_DUMP 0x0301u

/* One vCPU's counters, on a cache line of their own. */
struct vcpu_counts {
	uint64_t total;
	uint64_t in_range;
} __attribute__((aligned(64)));

static struct vcpu_counts counts[MAX_VCPUS];
static int n_vcpus;

/* The range, as 48-bit addresses; read by every block's callback, written by markers. */
static volatile uint64_t range_start;
static volatile uint64_t range_len;

/* The profile: one entry per translated block, in slabs. */
#define PROFILE_SLAB 65536
struct profile_entry {
	uint64_t vaddr;
	uint64_t insns;
};
struct profile_slab {
	struct profile_slab *next;
	size_t used;
	struct profile_entry entries[PROFILE_SLAB];
};
static struct profile_slab *profile;
static pthread_mutex_t profile_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *profile_out;

static pthread_mutex_t marker_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t value;
static uint64_t seq;
static FILE *out;

/* Zeroes the profile's counts, or appends them to the profile file tagged TAG. */
static void profile_walk(bool dump, uint64_t tag)
{
	struct profile_slab *slab;
	size_t i;

	if (!profile_out)
		return;
	pthread_mutex_lock(&profile_lock);
	if (dump)
		fprintf(profile_out, "profile %" PRIu64 "\n", tag);
	for (slab = profile; slab; slab = slab->next) {
		for (i = 0; i < slab->used; i++) {
			struct profile_entry *e = &slab->entries[i];

			if (!dump)
				__atomic_store_n(&e->insns, 0, __ATOMIC_RELAXED);
			else if (e->insns)
				fprintf(profile_out, "%#" PRIx64 " %" PRIu64 "\n", e->vaddr,
					__atomic_load_n(&e->insns, __ATOMIC_RELAXED));
		}
	}
	if (dump)
		fflush(profile_out);
	pthread_mutex_unlock(&profile_lock);
}

/* Returns a new profile entry for a block at VADDR, or NULL. */
static struct profile_entry *profile_entry(uint64_t vaddr)
{
	struct profile_entry *e = NULL;

	pthread_mutex_lock(&profile_lock);
	if (!profile || profile->used == PROFILE_SLAB) {
		struct profile_slab *slab = calloc(1, sizeof(*slab));

		if (slab) {
			slab->next = profile;
			profile = slab;
		}
	}
	if (profile && profile->used < PROFILE_SLAB) {
		e = &profile->entries[profile->used++];
		e->vaddr = vaddr;
	}
	pthread_mutex_unlock(&profile_lock);
	return e;
}

static void block_exec(unsigned int vcpu, void *udata)
{
	uint64_t packed = (uintptr_t)udata;
	uint64_t n = packed >> VA_BITS;
	struct vcpu_counts *c = &counts[vcpu];

	__atomic_store_n(&c->total, c->total + n, __ATOMIC_RELAXED);
	if ((packed & VA_MASK) - range_start < range_len)
		__atomic_store_n(&c->in_range, c->in_range + n, __ATOMIC_RELAXED);
}

static void marker_exec(unsigned int vcpu, void *udata)
{
	unsigned int cmd = (uintptr_t)udata;
	uint64_t total = 0, in_range = 0;
	int i;

	pthread_mutex_lock(&marker_lock);
	if (!out) {
		/* After exit. */
	} else if ((cmd & 0xff00u) == CMD_BIT) {
		value = (value << 1) | (cmd & 1);
	} else if (cmd == CMD_RANGE_START || cmd == CMD_RANGE_END) {
		if (cmd == CMD_RANGE_START) {
			range_len = 0;
			range_start = value & VA_MASK;
		} else {
			range_len = ((value & VA_MASK) - range_start) & VA_MASK;
			fprintf(out, "range %#" PRIx64 " %#" PRIx64 "\n", range_start,
				range_start + range_len);
			fflush(out);
		}
		value = 0;
	} else if (cmd == CMD_SAMPLE) {
		for (i = 0; i < n_vcpus; i++) {
			total += __atomic_load_n(&counts[i].total, __ATOMIC_RELAXED);
			in_range += __atomic_load_n(&counts[i].in_range, __ATOMIC_RELAXED);
		}
		fprintf(out, "sample %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64, seq++, value,
			total, in_range);
		for (i = 0; i < n_vcpus; i++)
			fprintf(out, " %" PRIu64 " %" PRIu64,
				__atomic_load_n(&counts[i].total, __ATOMIC_RELAXED),
				__atomic_load_n(&counts[i].in_range, __ATOMIC_RELAXED));
		fputc('\n', out);
		fflush(out);
		value = 0;
	} else if (cmd == CMD_PROFILE_ZERO || cmd == CMD_PROFILE_DUMP) {
		profile_walk(cmd == CMD_PROFILE_DUMP, value);
		value = 0;
	}
	pthread_mutex_unlock(&marker_lock);
}

/* Returns the command of a marker instruction, or -1. */
static int marker_command(struct qemu_plugin_insn *insn)
{
	const uint8_t *b = qemu_plugin_insn_data(insn);
	uint32_t disp;

	if (qemu_plugin_insn_size(insn) != 7 || b[0] != 0x0f || b[1] != 0x1f || b[2] != 0x80)
		return -1;
	disp = b[3] | b[4] << 8 | (uint32_t)b[5] << 16 | (uint32_t)b[6] << 24;
	if (disp >> 16 != MARKER_MAGIC)
		return -1;
	return disp & 0xffffu;
}

static void block_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	size_t n = qemu_plugin_tb_n_insns(tb), i;
	uint64_t packed = (qemu_plugin_tb_vaddr(tb) & VA_MASK) | (uint64_t)n << VA_BITS;
	int cmd;

	qemu_plugin_register_vcpu_tb_exec_cb(tb, block_exec, QEMU_PLUGIN_CB_NO_REGS,
					     (void *)(uintptr_t)packed);
	if (profile_out) {
		struct profile_entry *e = profile_entry(qemu_plugin_tb_vaddr(tb));

		if (e)
			qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64,
								 &e->insns, n);
	}
	for (i = 0; i < n; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);

		cmd = marker_command(insn);
		if (cmd >= 0)
			qemu_plugin_register_vcpu_insn_exec_cb(insn, marker_exec,
							       QEMU_PLUGIN_CB_NO_REGS,
							       (void *)(uintptr_t)cmd);
	}
}

static void at_exit(qemu_plugin_id_t id, void *udata)
{
	uint64_t total = 0;
	int i;

	pthread_mutex_lock(&marker_lock);
	for (i = 0; i < n_vcpus; i++)
		total += __atomic_load_n(&counts[i].total, __ATOMIC_RELAXED);
	fprintf(out, "exit %" PRIu64 "\n", total);
	fclose(out);
	out = NULL;
	pthread_mutex_unlock(&marker_lock);
	pthread_mutex_lock(&profile_lock);
	if (profile_out)
		fclose(profile_out);
	profile_out = NULL;
	pthread_mutex_unlock(&profile_lock);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
					   int argc, char **argv)
{
	const char *path = NULL, *profile_path = NULL;
	int i;

	for (i = 0; i < argc; i++) {
		if (strncmp(argv[i], "out=", 4) == 0) {
			path = argv[i] + 4;
		} else if (strncmp(argv[i], "profile=", 8) == 0) {
			profile_path = argv[i] + 8;
		} else {
			fprintf(stderr, "insn-meter: unknown argument '%s'\n", argv[i]);
			return -1;
		}
	}
	if (!path) {
		fprintf(stderr, "insn-meter: no out=FILE argument\n");
		return -1;
	}
	if (!info->system_emulation || info->system.max_vcpus > MAX_VCPUS) {
		fprintf(stderr, "insn-meter: needs system emulation with at most %d vCPUs\n",
			MAX_VCPUS);
		return -1;
	}
	n_vcpus = info->system.max_vcpus;
	out = fopen(path, "w");
	if (!out) {
		perror(path);
		return -1;
	}
	if (profile_path) {
		profile_out = fopen(profile_path, "w");
		if (!profile_out) {
			perror(profile_path);
			return -1;
		}
	}
	qemu_plugin_register_vcpu_tb_trans_cb(id, block_trans);
	qemu_plugin_register_atexit_cb(id, at_exit, NULL);
	return 0;
}
