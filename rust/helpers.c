// SPDX-License-Identifier: GPL-2.0
/*
 * One-line wrappers of static inline kernel functions that Rust cannot call directly,
 * in the manner of the kernel's rust/helpers/.
 */

#include <linux/blk-integrity.h>
#include <linux/blkdev.h>
#include <linux/highmem.h>
#include <linux/huge_mm.h>
#include <linux/mempool.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/pagemap.h>
#include <linux/percpu.h>
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

bool blkbounce_may_copy_here(void)
{
	return !in_interrupt() && !irqs_disabled();
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

/* The per-CPU stacks of free bounce pages (rust/blk/percpu_pages.rs). */
void __percpu *blkbounce_alloc_percpu(size_t size, size_t align);
void *blkbounce_raw_cpu_ptr(void __percpu *ptr);
void *blkbounce_per_cpu_ptr(void __percpu *ptr, unsigned int cpu);
unsigned int blkbounce_next_possible_cpu(int cpu);
unsigned int blkbounce_nr_cpu_ids(void);
void blkbounce_spin_lock_init(spinlock_t *lock);
unsigned long blkbounce_spin_lock_irqsave(spinlock_t *lock);
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

/* One lockdep class for all callers: only the stacks' locks, which never nest. */
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

/*
 * The folio tests of the bounce policy (rust/policy.rs), one per function. Each only
 * reads the folio, which the bio holds a reference to; the decision is made in Rust.
 */
struct folio *blkbounce_page_folio(struct page *page);
bool blkbounce_folio_is_zero(struct folio *folio);
bool blkbounce_folio_maybe_dma_pinned(struct folio *folio);
bool blkbounce_folio_is_slab(struct folio *folio);
bool blkbounce_folio_anon(struct folio *folio);
bool blkbounce_folio_swapbacked(struct folio *folio);
bool blkbounce_folio_swapcache(struct folio *folio);
bool blkbounce_folio_writeback(struct folio *folio);
bool blkbounce_folio_locked(struct folio *folio);
bool blkbounce_folio_uptodate(struct folio *folio);
bool blkbounce_folio_mapped(struct folio *folio);
bool blkbounce_folio_foreign(struct folio *folio);
bool blkbounce_folio_stable_writes(struct folio *folio);
bool blkbounce_folio_bdev_cache(struct folio *folio);

struct folio *blkbounce_page_folio(struct page *page)
{
	return page_folio(page);
}

bool blkbounce_folio_is_zero(struct folio *folio)
{
	return is_zero_folio(folio) || is_huge_zero_folio(folio);
}

bool blkbounce_folio_maybe_dma_pinned(struct folio *folio)
{
	return folio_maybe_dma_pinned(folio);
}

bool blkbounce_folio_is_slab(struct folio *folio)
{
	return folio_test_slab(folio);
}

bool blkbounce_folio_anon(struct folio *folio)
{
	return folio_test_anon(folio);
}

bool blkbounce_folio_swapbacked(struct folio *folio)
{
	return folio_test_swapbacked(folio);
}

bool blkbounce_folio_swapcache(struct folio *folio)
{
	return folio_test_swapcache(folio);
}

bool blkbounce_folio_writeback(struct folio *folio)
{
	return folio_test_writeback(folio);
}

bool blkbounce_folio_locked(struct folio *folio)
{
	return folio_test_locked(folio);
}

bool blkbounce_folio_uptodate(struct folio *folio)
{
	return folio_test_uptodate(folio);
}

bool blkbounce_folio_mapped(struct folio *folio)
{
	return folio_mapped(folio);
}

/*
 * Another Xen domain's page, grant-mapped here (xen-blkback, xen-scsiback); the guest may
 * write it. Only Xen's grant table sets the flag, so other kernels need not read a bit
 * that filesystems also use (PG_checked).
 */
bool blkbounce_folio_foreign(struct folio *folio)
{
	return IS_ENABLED(CONFIG_XEN) && folio_test_foreign(folio);
}

/*
 * Without the folio lock, truncation may take the folio out of its mapping at any time;
 * inodes, and the address_space in them, are freed after an RCU grace period (as in
 * folio_evictable()).
 */
bool blkbounce_folio_stable_writes(struct folio *folio)
{
	struct address_space *mapping;
	bool stable;

	rcu_read_lock();
	mapping = folio_mapping(folio);
	stable = mapping && mapping_stable_writes(mapping);
	rcu_read_unlock();
	return stable;
}

/* In the page cache of a block device: buffer heads of filesystem metadata, buffered I/O. */
bool blkbounce_folio_bdev_cache(struct folio *folio)
{
	struct address_space *mapping;
	bool bdev;

	rcu_read_lock();
	mapping = folio_mapping(folio);
	/* The swap cache's address_space has no host. */
	bdev = mapping && mapping->host && S_ISBLK(mapping->host->i_mode);
	rcu_read_unlock();
	return bdev;
}
