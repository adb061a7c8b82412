// SPDX-License-Identifier: GPL-2.0

//! Safe wrappers over the C block layer and configfs: the only place with `unsafe` code.
//!
//! The upstream `kernel::block` crate covers blk-mq drivers only. A stacking, bio-based
//! driver needs bios, bio sets, a bio-based disk and an exclusively opened lower device,
//! and a bouncing one also bounce bios, a page mempool and a workqueue of its own; this
//! module provides them, in the style of `rust/kernel/block/mq/`. The driver logic above
//! it is safe Rust.

pub(crate) mod bio;
pub(crate) mod bioset;
pub(crate) mod bounce;
pub(crate) mod configfs_pin;
pub(crate) mod disk;
pub(crate) mod folio;
pub(crate) mod lower;
pub(crate) mod page_pool;
pub(crate) mod status;
pub(crate) mod workqueue;

/// Declarations of the one-line C wrappers in `helpers.c`.
mod helpers {
    use kernel::bindings;

    // `gendisk` and `block_device` embed structs that are empty on some configurations;
    // only pointers to them cross this boundary.
    #[expect(improper_ctypes)]
    extern "C" {
        pub(super) fn blkbounce_disk_openers(disk: *mut bindings::gendisk) -> u32;
        pub(super) fn blkbounce_bdev_nr_sectors(bdev: *mut bindings::block_device) -> u64;
        pub(super) fn blkbounce_bdev_holder(
            bdev: *mut bindings::block_device,
        ) -> *mut kernel::ffi::c_void;
        pub(super) fn blkbounce_page_order(page: *mut bindings::page) -> u32;
        pub(super) fn blkbounce_page_folio(page: *mut bindings::page) -> *mut bindings::folio;
        pub(super) fn blkbounce_folio_is_zero(folio: *mut bindings::folio) -> bool;
        pub(super) fn blkbounce_folio_maybe_dma_pinned(folio: *mut bindings::folio) -> bool;
        pub(super) fn blkbounce_folio_is_slab(folio: *mut bindings::folio) -> bool;
        pub(super) fn blkbounce_folio_anon(folio: *mut bindings::folio) -> bool;
        pub(super) fn blkbounce_folio_swapbacked(folio: *mut bindings::folio) -> bool;
        pub(super) fn blkbounce_folio_swapcache(folio: *mut bindings::folio) -> bool;
        pub(super) fn blkbounce_folio_writeback(folio: *mut bindings::folio) -> bool;
        pub(super) fn blkbounce_folio_locked(folio: *mut bindings::folio) -> bool;
        pub(super) fn blkbounce_folio_uptodate(folio: *mut bindings::folio) -> bool;
        pub(super) fn blkbounce_folio_mapped(folio: *mut bindings::folio) -> bool;
        pub(super) fn blkbounce_folio_foreign(folio: *mut bindings::folio) -> bool;
        pub(super) fn blkbounce_folio_stable_writes(folio: *mut bindings::folio) -> bool;
        pub(super) fn blkbounce_folio_bdev_cache(folio: *mut bindings::folio) -> bool;
    }
}
