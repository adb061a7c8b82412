// SPDX-License-Identifier: GPL-2.0
/*
 * One-line wrappers of static inline kernel functions that Rust cannot call directly,
 * in the manner of the kernel's rust/helpers/.
 */

#include <linux/blkdev.h>

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
