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
 * Arguments: out=FILE (required), profile=FILE, lines=1, yield=N.
 *
 * With lines=1 the meter also models the guest's caches and counts line transfers. Every
 * load and store of guest RAM gets a memory callback, which finds the 64-byte line of its
 * physical address. Each line records which vCPUs hold a copy and which wrote it last; the
 * caches are unbounded, so a vCPU loses a copy only when another one stores to the line.
 * A transfer is counted when a vCPU loads a line that another vCPU wrote since this one
 * last held it, or stores to a line that another vCPU holds. Each sample line is then
 * followed by
 *
 *   lines SEQ TAG TOTAL INRANGE VCPU0_TOTAL VCPU0_INRANGE ...
 *
 * with the transfers so far, INRANGE those of instructions inside the range, and the
 * profile file lists, after each "profile TAG", "ADDRESS TRANSFERS" for each instruction
 * whose accesses caused transfers since the last zeroing. Not modelled: bounded caches
 * (evictions), prefetching, NUMA distance and the cost of a transfer; memory-mapped I/O and
 * device DMA are not seen. Lines of physical addresses above 64 GiB are not tracked.
 *
 * On a host with fewer cores than vCPUs, each vCPU thread runs for a host time slice
 * (milliseconds, hundreds of guest I/Os) before another one runs, and accesses within a
 * slice cannot transfer lines: the count would depend on the host's scheduler, not on the
 * guest's code. With yield=N a vCPU thread yields its host CPU after every N instructions,
 * so that the vCPUs interleave about as finely as CPUs that run at once.
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
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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
	uint64_t transfers;
	uint64_t transfers_in_range;
	uint64_t since_yield;
} __attribute__((aligned(64)));

static struct vcpu_counts counts[MAX_VCPUS];
static int n_vcpus;

/* The range, as 48-bit addresses; read by every block's callback, written by markers. */
static volatile uint64_t range_start;
static volatile uint64_t range_len;

/*
 * The profile: one entry per translated block (its instructions), and with lines=1 one per
 * instruction that accesses memory (the transfers it caused), each list in slabs.
 */
#define PROFILE_SLAB 65536
struct profile_entry {
	uint64_t vaddr;
	uint64_t count;
};
struct profile_slab {
	struct profile_slab *next;
	size_t used;
	struct profile_entry entries[PROFILE_SLAB];
};
static struct profile_slab *profile;
static struct profile_slab *mem_insns;
static pthread_mutex_t profile_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *profile_out;

/*
 * The line model (lines=1): one 16-bit state per 64-byte line of physical memory, bits
 * 0-7 the vCPUs that hold a copy, bits 8-15 the vCPU that wrote it last plus one (0: no
 * vCPU wrote it). Allocated lazily by the kernel (a sparse mapping), changed with
 * compare-and-swap; a load that finds its own bit set only reads it.
 */
#define LINE_SHIFT 6
#define MAX_LINE_VCPUS 8
#define LINE_SPAN (UINT64_C(64) << 30)
static bool lines;
static uint64_t yield_every;
static uint16_t *line_state;


static pthread_mutex_t marker_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t value;
static uint64_t seq;
static FILE *out;

/* Zeroes the counts of the entries of LIST, or appends the non-zero ones to the profile. */
static void slab_walk(struct profile_slab *list, bool dump)
{
	size_t i;

	for (; list; list = list->next) {
		for (i = 0; i < list->used; i++) {
			struct profile_entry *e = &list->entries[i];
			uint64_t n = __atomic_load_n(&e->count, __ATOMIC_RELAXED);

			if (!dump)
				__atomic_store_n(&e->count, 0, __ATOMIC_RELAXED);
			else if (n)
				fprintf(profile_out, "%#" PRIx64 " %" PRIu64 "\n", e->vaddr, n);
		}
	}
}

/* Zeroes the profile's counts, or appends them to the profile file tagged TAG. */
static void profile_walk(bool dump, uint64_t tag)
{
	if (!profile_out)
		return;
	pthread_mutex_lock(&profile_lock);
	if (dump)
		fprintf(profile_out, "profile %" PRIu64 "\n", tag);
	slab_walk(profile, dump);
	if (dump && lines)
		fprintf(profile_out, "transfers %" PRIu64 "\n", tag);
	slab_walk(mem_insns, dump);
	if (dump)
		fflush(profile_out);
	pthread_mutex_unlock(&profile_lock);
}

/* Returns a new entry at VADDR of the list *LIST, or NULL. */
static struct profile_entry *profile_entry(struct profile_slab **list, uint64_t vaddr)
{
	struct profile_entry *e = NULL;

	pthread_mutex_lock(&profile_lock);
	if (!*list || (*list)->used == PROFILE_SLAB) {
		struct profile_slab *slab = calloc(1, sizeof(*slab));

		if (slab) {
			slab->next = *list;
			*list = slab;
		}
	}
	if (*list && (*list)->used < PROFILE_SLAB) {
		e = &(*list)->entries[(*list)->used++];
		e->vaddr = vaddr;
	}
	pthread_mutex_unlock(&profile_lock);
	return e;
}

/* Applies an access of VCPU to line LINE to the model; returns true for a transfer. */
static bool line_access(unsigned int vcpu, uint64_t line, bool store)
{
	uint16_t *p = &line_state[line];
	uint16_t mine = 1u << vcpu, old = __atomic_load_n(p, __ATOMIC_RELAXED), new;
	unsigned int writer;
	bool transfer;

	do {
		writer = old >> 8;
		if (store) {
			/* Another vCPU holds a copy, which this store takes from it. */
			transfer = (old & 0xff & ~mine) != 0;
			new = mine | (vcpu + 1) << 8;
		} else {
			if (old & mine)
				return false;
			/* Not held since another vCPU wrote it (or never held). */
			transfer = writer != 0 && writer != vcpu + 1;
			new = old | mine;
		}
		if (new == old)
			return false;
	} while (!__atomic_compare_exchange_n(p, &old, new, true, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	return transfer;
}

static void mem_access(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr,
		       void *udata)
{
	struct qemu_plugin_hwaddr *hw = qemu_plugin_get_hwaddr(info, vaddr);
	struct profile_entry *m = udata;
	struct vcpu_counts *c = &counts[vcpu];
	uint64_t phys, first, last, line;
	unsigned int size;
	bool store;

	if (!hw || qemu_plugin_hwaddr_is_io(hw))
		return;
	phys = qemu_plugin_hwaddr_phys_addr(hw);
	size = 1u << qemu_plugin_mem_size_shift(info);
	store = qemu_plugin_mem_is_store(info);
	first = phys >> LINE_SHIFT;
	last = (phys + size - 1) >> LINE_SHIFT;
	if (last >= LINE_SPAN >> LINE_SHIFT)
		return;
	for (line = first; line <= last; line++) {
		if (!line_access(vcpu, line, store))
			continue;
		__atomic_store_n(&c->transfers, c->transfers + 1, __ATOMIC_RELAXED);
		if ((m->vaddr & VA_MASK) - range_start < range_len)
			__atomic_store_n(&c->transfers_in_range, c->transfers_in_range + 1,
					 __ATOMIC_RELAXED);
		__atomic_fetch_add(&m->count, 1, __ATOMIC_RELAXED);
	}
}

static void block_exec(unsigned int vcpu, void *udata)
{
	uint64_t packed = (uintptr_t)udata;
	uint64_t n = packed >> VA_BITS;
	struct vcpu_counts *c = &counts[vcpu];

	__atomic_store_n(&c->total, c->total + n, __ATOMIC_RELAXED);
	if ((packed & VA_MASK) - range_start < range_len)
		__atomic_store_n(&c->in_range, c->in_range + n, __ATOMIC_RELAXED);
	if (yield_every) {
		c->since_yield += n;
		if (c->since_yield >= yield_every) {
			c->since_yield = 0;
			sched_yield();
		}
	}
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
		if (lines) {
			uint64_t t = 0, t_in = 0;

			for (i = 0; i < n_vcpus; i++) {
				t += __atomic_load_n(&counts[i].transfers, __ATOMIC_RELAXED);
				t_in += __atomic_load_n(&counts[i].transfers_in_range,
							__ATOMIC_RELAXED);
			}
			fprintf(out, "lines %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64, seq - 1,
				value, t, t_in);
			for (i = 0; i < n_vcpus; i++)
				fprintf(out, " %" PRIu64 " %" PRIu64,
					__atomic_load_n(&counts[i].transfers, __ATOMIC_RELAXED),
					__atomic_load_n(&counts[i].transfers_in_range,
							__ATOMIC_RELAXED));
			fputc('\n', out);
		}
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
		struct profile_entry *e = profile_entry(&profile, qemu_plugin_tb_vaddr(tb));

		if (e)
			qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64,
								 &e->count, n);
	}
	for (i = 0; i < n; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);

		if (lines) {
			struct profile_entry *m =
				profile_entry(&mem_insns, qemu_plugin_insn_vaddr(insn));

			if (m)
				qemu_plugin_register_vcpu_mem_cb(insn, mem_access,
								 QEMU_PLUGIN_CB_NO_REGS,
								 QEMU_PLUGIN_MEM_RW, m);
		}
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
		} else if (strcmp(argv[i], "lines=1") == 0) {
			lines = true;
		} else if (strncmp(argv[i], "yield=", 6) == 0) {
			yield_every = strtoull(argv[i] + 6, NULL, 0);
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
	if (lines) {
		if (n_vcpus > MAX_LINE_VCPUS) {
			fprintf(stderr, "insn-meter: lines=1 models at most %d vCPUs\n",
				MAX_LINE_VCPUS);
			return -1;
		}
		line_state = mmap(NULL, (LINE_SPAN >> LINE_SHIFT) * sizeof(*line_state),
				  PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
				  -1, 0);
		if (line_state == MAP_FAILED) {
			perror("insn-meter: the line table");
			return -1;
		}
	}
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
