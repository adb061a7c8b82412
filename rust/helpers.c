// SPDX-License-Identifier: GPL-2.0
/*
 * One-line wrappers of static inline kernel functions that Rust cannot call directly,
 * in the manner of the kernel's rust/helpers/.
 */

#include <linux/blkdev.h>
#include <linux/mm.h>

unsigned int blkbounce_disk_openers(struct gendisk *disk);
sector_t blkbounce_bdev_nr_sectors(struct block_device *bdev);

unsigned int blkbounce_disk_openers(struct gendisk *disk)
{
	return disk_openers(disk);
}

sector_t blkbounce_bdev_nr_sectors(struct block_device *bdev)
{
	return bdev_nr_sectors(bdev);
}

void *blkbounce_bdev_holder(struct block_device *bdev);

void *blkbounce_bdev_holder(struct block_device *bdev)
{
	return READ_ONCE(bdev->bd_holder);
}

unsigned int blkbounce_page_order(struct page *page);
bool blkbounce_page_maybe_dma_pinned(struct page *page);

unsigned int blkbounce_page_order(struct page *page)
{
	return compound_order(page);
}

bool blkbounce_page_maybe_dma_pinned(struct page *page)
{
	return folio_maybe_dma_pinned(page_folio(page));
}
