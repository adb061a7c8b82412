// SPDX-License-Identifier: GPL-2.0
/*
 * One-line wrappers of static inline kernel functions that Rust cannot call directly,
 * in the manner of the kernel's rust/helpers/.
 */

#include <linux/blk-integrity.h>
#include <linux/blkdev.h>
#include <linux/cpuhotplug.h>
#include <linux/highmem.h>
#include <linux/huge_mm.h>
#include <linux/mempool.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/pagemap.h>
#include <linux/percpu.h>
#include <linux/percpu-refcount.h>
#include <linux/rcupdate.h>
#include <linux/shrinker.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <trace/events/block.h>

/* The git revision the module was built from (Kbuild), for modinfo. */
MODULE_VERSION(BLKBOUNCE_VERSION);

/*
 * Values of C flag and status macros that bindgen does not translate (they carry casts),
 * so that Rust never writes their numbers itself.
 */
extern const blk_status_t blkbounce_blk_sts_ioerr;
extern const blk_status_t blkbounce_blk_sts_again;
extern const blk_status_t blkbounce_blk_sts_protection;
extern const blk_status_t blkbounce_blk_sts_inval;
extern const blk_features_t blkbounce_blk_feat_stable_writes;
extern const blk_features_t blkbounce_blk_feat_nowait;
extern const blk_features_t blkbounce_blk_feat_io_stat;
extern const blk_features_t blkbounce_blk_feat_poll;
extern const blk_features_t blkbounce_blk_feat_atomic_writes;
extern const blk_mode_t blkbounce_blk_open_read;
extern const blk_mode_t blkbounce_blk_open_write;
extern const unsigned char blkbounce_blk_integrity_noverify;
extern const unsigned char blkbounce_blk_integrity_nogenerate;
extern const unsigned char blkbounce_blk_integrity_stacked;
extern const unsigned char blkbounce_blk_integrity_device_capable;

const blk_status_t blkbounce_blk_sts_ioerr = BLK_STS_IOERR;
const blk_status_t blkbounce_blk_sts_again = BLK_STS_AGAIN;
const blk_status_t blkbounce_blk_sts_protection = BLK_STS_PROTECTION;
const blk_status_t blkbounce_blk_sts_inval = BLK_STS_INVAL;
const blk_features_t blkbounce_blk_feat_stable_writes = BLK_FEAT_STABLE_WRITES;
const blk_features_t blkbounce_blk_feat_nowait = BLK_FEAT_NOWAIT;
const blk_features_t blkbounce_blk_feat_io_stat = BLK_FEAT_IO_STAT;
const blk_features_t blkbounce_blk_feat_poll = BLK_FEAT_POLL;
const blk_features_t blkbounce_blk_feat_atomic_writes = BLK_FEAT_ATOMIC_WRITES;
const blk_mode_t blkbounce_blk_open_read = BLK_OPEN_READ;
const blk_mode_t blkbounce_blk_open_write = BLK_OPEN_WRITE;
const unsigned char blkbounce_blk_integrity_noverify = BLK_INTEGRITY_NOVERIFY;
const unsigned char blkbounce_blk_integrity_nogenerate = BLK_INTEGRITY_NOGENERATE;
const unsigned char blkbounce_blk_integrity_stacked = BLK_INTEGRITY_STACKED;
const unsigned char blkbounce_blk_integrity_device_capable = BLK_INTEGRITY_DEVICE_CAPABLE;

sector_t blkbounce_bdev_nr_sectors(struct block_device *bdev);

sector_t blkbounce_bdev_nr_sectors(struct block_device *bdev)
{
	return bdev_nr_sectors(bdev);
}

void *blkbounce_bdev_holder(struct block_device *bdev);
void blkbounce_bdev_limits(struct block_device *bdev, struct queue_limits *lim);
bool blkbounce_bdev_is_zoned(struct block_device *bdev);
bool blkbounce_disk_io_stat(struct gendisk *disk);
void blkbounce_trace_bio_remap(struct bio *bio, struct gendisk *from, sector_t sector);
void blkbounce_trace_bio_split(struct bio *split, sector_t sector);

bool blkbounce_bdev_is_zoned(struct block_device *bdev)
{
	return bdev_is_zoned(bdev);
}

bool blkbounce_disk_io_stat(struct gendisk *disk)
{
	return blk_queue_io_stat(disk->queue);
}

/* blktrace's split event: @split was cut off the front of a bio that now starts at @sector. */
void blkbounce_trace_bio_split(struct bio *split, sector_t sector)
{
	trace_block_split(split, sector);
}

/* blktrace's remap event: @bio, sent to its device, stands in for @sector of @from. */
void blkbounce_trace_bio_remap(struct bio *bio, struct gendisk *from, sector_t sector)
{
	trace_block_bio_remap(bio, disk_devt(from), sector);
}

void *blkbounce_bdev_holder(struct block_device *bdev)
{
	return READ_ONCE(bdev->bd_holder);
}

/* A consistent copy of the queue limits, taken under the queue's limits lock. */
void blkbounce_bdev_limits(struct block_device *bdev, struct queue_limits *lim)
{
	*lim = queue_limits_start_update(bdev_get_queue(bdev));
	queue_limits_cancel_update(bdev_get_queue(bdev));
}

unsigned int blkbounce_page_order(struct page *page);
void *blkbounce_page_address(struct page *page);
void blkbounce_memcpy_from_page(char *to, struct page *page, size_t offset, size_t len);
void blkbounce_memcpy_to_page(struct page *page, size_t offset, const char *from, size_t len);
unsigned long blkbounce_lowmem_pages(void);
bool blkbounce_wq_has_sleeper(struct wait_queue_head *wq_head);
bool blkbounce_may_copy_here(void);
void blkbounce_cond_resched(void);

void blkbounce_cond_resched(void)
{
	cond_resched();
}

/*
 * The block layer's test of a bio's completion context, bio_in_atomic(), without its
 * clause for preemptible RCU read-side sections: that clause keeps out end_io functions
 * that may sleep, and the copy-back never sleeps. Preemption, interrupts or bottom halves
 * off, interrupt context, and RCU readers that disable preemption are refused; without
 * CONFIG_PREEMPT_COUNT none of that can be seen, and everything is.
 */
bool blkbounce_may_copy_here(void)
{
	return IS_ENABLED(CONFIG_PREEMPT_COUNT) && preemptible();
}

void *blkbounce_page_address(struct page *page)
{
	return page_address(page);
}

void blkbounce_memcpy_from_page(char *to, struct page *page, size_t offset, size_t len)
{
	memcpy_from_page(to, page, offset, len);
}

void blkbounce_memcpy_to_page(struct page *page, size_t offset, const char *from, size_t len)
{
	memcpy_to_page(page, offset, from, len);
}

/* Bounce chunks are lowmem (no __GFP_HIGHMEM): the memory they can come from. */
unsigned long blkbounce_lowmem_pages(void)
{
	return totalram_pages() - totalhigh_pages();
}

bool blkbounce_wq_has_sleeper(struct wait_queue_head *wq_head)
{
	return wq_has_sleeper(wq_head);
}

/* The CPU-hotplug state that frees a dead CPU's recycled pages (rust/blk/percpu_pages.rs). */
int blkbounce_cpuhp_setup_dead(const char *name,
			       int (*dead)(unsigned int cpu, struct hlist_node *node));

int blkbounce_cpuhp_setup_dead(const char *name,
			       int (*dead)(unsigned int cpu, struct hlist_node *node))
{
	return cpuhp_setup_state_multi(CPUHP_BP_PREPARE_DYN, name, NULL, dead);
}

/* The count of a disk's bios in flight (rust/blk/drain.rs). */
void blkbounce_percpu_ref_get(struct percpu_ref *ref);
void blkbounce_percpu_ref_put(struct percpu_ref *ref);

void blkbounce_percpu_ref_get(struct percpu_ref *ref)
{
	percpu_ref_get(ref);
}

void blkbounce_percpu_ref_put(struct percpu_ref *ref)
{
	percpu_ref_put(ref);
}

/* The per-CPU stacks of free bounce pages (rust/blk/percpu_pages.rs). */
void __percpu *blkbounce_alloc_percpu(size_t size, size_t align);
void *blkbounce_raw_cpu_ptr(void __percpu *ptr);
void *blkbounce_per_cpu_ptr(void __percpu *ptr, unsigned int cpu);
unsigned int blkbounce_next_possible_cpu(int cpu);
unsigned int blkbounce_nr_cpu_ids(void);
void blkbounce_spin_lock_init(spinlock_t *lock);
unsigned long blkbounce_spin_lock_irqsave(spinlock_t *lock);
void *blkbounce_lock_this_cpu(void __percpu *ptr, unsigned long *flags);
void blkbounce_unlock_this_cpu(void *this, unsigned long flags);
void blkbounce_spin_unlock_irqrestore(spinlock_t *lock, unsigned long flags);
struct shrinker *blkbounce_shrinker_alloc(const char *name);
bool blkbounce_page_recyclable(struct page *page);
bool blkbounce_mempool_short(struct mempool *pool);

void __percpu *blkbounce_alloc_percpu(size_t size, size_t align)
{
	return __alloc_percpu(size, align);
}

void *blkbounce_raw_cpu_ptr(void __percpu *ptr)
{
	return raw_cpu_ptr(ptr);
}

void *blkbounce_per_cpu_ptr(void __percpu *ptr, unsigned int cpu)
{
	return per_cpu_ptr(ptr, cpu);
}

unsigned int blkbounce_next_possible_cpu(int cpu)
{
	return cpumask_next(cpu, cpu_possible_mask);
}

unsigned int blkbounce_nr_cpu_ids(void)
{
	return nr_cpu_ids;
}

/* One lockdep class for all callers: the recycled pages' stacks and the copy batches, which never nest. */
void blkbounce_spin_lock_init(spinlock_t *lock)
{
	spin_lock_init(lock);
}

unsigned long blkbounce_spin_lock_irqsave(spinlock_t *lock)
{
	unsigned long flags;

	spin_lock_irqsave(lock, flags);
	return flags;
}

/*
 * Locks the calling CPU's instance of a per-CPU object that begins with its spinlock. The
 * task is pinned to its CPU first, as mm/page_alloc.c's pcpu_spin_lock() does (preemption
 * off, or migration off on PREEMPT_RT, where the spinlock sleeps): it does not move
 * between finding the instance and locking it, and the CPU does not go offline until
 * blkbounce_unlock_this_cpu().
 */
void *blkbounce_lock_this_cpu(void __percpu *ptr, unsigned long *flags)
{
	void *this;

	if (IS_ENABLED(CONFIG_PREEMPT_RT))
		migrate_disable();
	else
		preempt_disable();
	this = this_cpu_ptr(ptr);
	spin_lock_irqsave((spinlock_t *)this, *flags);
	return this;
}

void blkbounce_unlock_this_cpu(void *this, unsigned long flags)
{
	spin_unlock_irqrestore((spinlock_t *)this, flags);
	if (IS_ENABLED(CONFIG_PREEMPT_RT))
		migrate_enable();
	else
		preempt_enable();
}

void blkbounce_spin_unlock_irqrestore(spinlock_t *lock, unsigned long flags)
{
	spin_unlock_irqrestore(lock, flags);
}

struct shrinker *blkbounce_shrinker_alloc(const char *name)
{
	return shrinker_alloc(0, "%s", name);
}

/* Only the owner holds the page, and it is memory of the local node. */
bool blkbounce_page_recyclable(struct page *page)
{
	return page_ref_count(page) == 1 && page_to_nid(page) == numa_mem_id();
}

/*
 * The test mempool_free() makes before it takes an element back, with its barrier: the
 * pool is below its minimum (or has none, when only mempool_free() knows).
 */
bool blkbounce_mempool_short(struct mempool *pool)
{
	smp_rmb();
	return READ_ONCE(pool->curr_nr) < pool->min_nr || !pool->min_nr;
}

unsigned int blkbounce_page_order(struct page *page)
{
	return compound_order(page);
}

u32 blkbounce_folio_flags(struct page *page, struct folio **last);

/*
 * Everything the bounce policy (rust/policy.rs) may ask of the folio of @page, in one
 * call, as the bits that rust/blk/folio.rs reads; or bit 31 alone if the folio is *@last,
 * the folio of the page before. It only reads the folio, which the bio holds a reference
 * to; the decision is made in Rust. A slab folio overlays ->mapping, which is read only
 * through folio_mapping(): NULL for slab folios. Without the folio lock, truncation may take the folio out of its mapping at any
 * time; inodes, and the address_space in them, are freed after an RCU grace period (as in
 * folio_evictable()). The swap cache's address_space has no host. Only Xen's grant table
 * sets PG_foreign, so other kernels need not read a bit that filesystems also use
 * (PG_checked).
 */
u32 blkbounce_folio_flags(struct page *page, struct folio **last)
{
	struct folio *folio = page_folio(page);
	struct address_space *mapping;
	u32 flags = 0;

	if (folio == *last)
		return BIT(31);
	*last = folio;
	if (is_zero_folio(folio) || is_huge_zero_folio(folio))
		flags |= BIT(0);
	if (folio_maybe_dma_pinned(folio))
		flags |= BIT(1);
	if (folio_test_slab(folio))
		flags |= BIT(2);
	if (folio_test_anon(folio))
		flags |= BIT(3);
	if (folio_test_swapbacked(folio))
		flags |= BIT(4);
	if (folio_test_swapcache(folio))
		flags |= BIT(5);
	if (folio_test_writeback(folio))
		flags |= BIT(7);
	if (folio_test_locked(folio))
		flags |= BIT(8);
	if (folio_test_uptodate(folio))
		flags |= BIT(9);
	if (folio_mapped(folio))
		flags |= BIT(10);
	if (IS_ENABLED(CONFIG_XEN) && folio_test_foreign(folio))
		flags |= BIT(11);
	rcu_read_lock();
	mapping = folio_mapping(folio);
	if (mapping) {
		flags |= BIT(6);
		if (mapping->host && S_ISBLK(mapping->host->i_mode))
			flags |= BIT(12);
		if (mapping_stable_writes(mapping))
			flags |= BIT(13);
	}
	rcu_read_unlock();
	return flags;
}
