// SPDX-License-Identifier: GPL-2.0

//! Safe wrappers over the C block layer and configfs: the only place with `unsafe` code.
//!
//! The upstream `kernel::block` crate covers blk-mq drivers only. A stacking, bio-based
//! driver needs bios, bio sets, a bio-based disk and an exclusively opened lower device,
//! and a bouncing one also bounce bios, bounce memory and a workqueue of its own; this
//! module provides them, in the style of `rust/kernel/block/mq/`. Nothing here imports
//! from the driver above it, which is safe Rust.
//!
//! A driver implements [`disk::BioDriver`] (and [`clone::CloneTarget`] to pass bios
//! through, [`bounce::BounceTarget`] to bounce them), all safe traits, and registers a
//! [`disk::Disk`] over a [`lower::LowerDevice`]. The disk owns everything its bios use
//! ([`stacked::Stacked`]: the lower device, the bio sets, the cap, the page reserve and
//! the retry queue),
//! so the driver makes no promise about their lifetimes, and each bio set's context type
//! is its layout. `samples/blklinear.rs` is the smallest driver on it.
//!
//! - `disk`: the registration; `submitted_bio`: a bio handed to the driver and its end;
//!   `drain`: the count of bios in flight that removal waits for; `stacked`: the state
//!   the disk shares with its bios.
//! - `clone`: the pass-through path; `bounce`: the bounce path; `copy_batch`: read
//!   copy-backs deferred to task context, batched per CPU; `bioset`: bio sets whose
//!   bios carry a context; `gfp`: how allocations wait; `poll`: polled I/O, an upper bio
//!   linked to the lower bio that stands in for it; `segments`: the lower device's
//!   segment limits, and bounce bios cut to them.
//! - `cap`: the cap on bounce memory in flight; `page_reserve`: where bounce chunks come
//!   from; `percpu_pages`: recycled pages per CPU; `percpu`: counters per CPU.

#![allow(unsafe_code)]

pub(crate) mod bio;
pub(crate) mod bioset;
pub(crate) mod bounce;
pub(crate) mod cap;
pub(crate) mod clone;
pub(crate) mod configfs_pin;
pub(crate) mod copy_batch;
pub(crate) mod disk;
pub(crate) mod drain;
pub(crate) mod folio;
pub(crate) mod gfp;
pub(crate) mod lower;
pub(crate) mod page_reserve;
pub(crate) mod peak;
pub(crate) mod percpu;
pub(crate) mod percpu_pages;
pub(crate) mod poll;
pub(crate) mod segment_walk;
pub(crate) mod segments;
pub(crate) mod stacked;
pub(crate) mod status;
pub(crate) mod submitted_bio;
pub(crate) mod wait_queue;
pub(crate) mod workqueue;

/// Declarations of the one-line C wrappers in `helpers.c`.
mod helpers {
    use core::ffi::c_void;
    use kernel::bindings;

    // `gendisk` and `block_device` embed structs that are empty on some configurations;
    // only pointers to them cross this boundary.
    #[expect(improper_ctypes)]
    extern "C" {
        pub(super) static blkbounce_blk_sts_ioerr: bindings::blk_status_t;
        pub(super) static blkbounce_blk_sts_again: bindings::blk_status_t;
        pub(super) static blkbounce_blk_sts_protection: bindings::blk_status_t;
        pub(super) static blkbounce_blk_sts_inval: bindings::blk_status_t;
        pub(super) static blkbounce_blk_feat_stable_writes: bindings::blk_features_t;
        pub(super) static blkbounce_blk_feat_nowait: bindings::blk_features_t;
        pub(super) static blkbounce_blk_feat_io_stat: bindings::blk_features_t;
        pub(super) static blkbounce_blk_feat_poll: bindings::blk_features_t;
        pub(super) static blkbounce_blk_feat_atomic_writes: bindings::blk_features_t;
        pub(super) static blkbounce_blk_open_read: bindings::blk_mode_t;
        pub(super) static blkbounce_blk_open_write: bindings::blk_mode_t;
        pub(super) static blkbounce_blk_integrity_noverify: u8;
        pub(super) static blkbounce_blk_integrity_nogenerate: u8;
        pub(super) static blkbounce_blk_integrity_stacked: u8;
        pub(super) static blkbounce_blk_integrity_device_capable: u8;

        pub(super) fn blkbounce_bdev_is_zoned(bdev: *mut bindings::block_device) -> bool;
        pub(super) fn blkbounce_disk_io_stat(disk: *mut bindings::gendisk) -> bool;
        pub(super) fn blkbounce_trace_bio_remap(
            bio: *mut bindings::bio,
            from: *mut bindings::gendisk,
            sector: u64,
        );
        pub(super) fn blkbounce_trace_bio_split(split: *mut bindings::bio, sector: u64);
        pub(super) fn blkbounce_page_address(page: *mut bindings::page) -> *mut u8;
        pub(super) fn blkbounce_memcpy_from_page(
            to: *mut u8,
            page: *mut bindings::page,
            offset: usize,
            len: usize,
        );
        pub(super) fn blkbounce_memcpy_to_page(
            page: *mut bindings::page,
            offset: usize,
            from: *const u8,
            len: usize,
        );
        pub(super) fn blkbounce_lowmem_pages() -> kernel::ffi::c_ulong;
        pub(super) fn blkbounce_wq_has_sleeper(wq_head: *mut bindings::wait_queue_head) -> bool;
        pub(super) fn blkbounce_may_copy_here() -> bool;
        pub(super) fn blkbounce_cond_resched();
        pub(super) fn blkbounce_bdev_nr_sectors(bdev: *mut bindings::block_device) -> u64;
        pub(super) fn blkbounce_bdev_limits(
            bdev: *mut bindings::block_device,
            lim: *mut bindings::queue_limits,
        );
        pub(super) fn blkbounce_bdev_holder(
            bdev: *mut bindings::block_device,
        ) -> *mut kernel::ffi::c_void;
        pub(super) fn blkbounce_page_order(page: *mut bindings::page) -> u32;
        pub(super) fn blkbounce_cpuhp_setup_dead(
            name: *const kernel::ffi::c_char,
            dead: unsafe extern "C" fn(kernel::ffi::c_uint, *mut bindings::hlist_node) -> i32,
        ) -> i32;
        pub(super) fn blkbounce_percpu_ref_get(count: *mut bindings::percpu_ref);
        pub(super) fn blkbounce_percpu_ref_put(count: *mut bindings::percpu_ref);
        pub(super) fn blkbounce_alloc_percpu(size: usize, align: usize) -> *mut c_void;
        pub(super) fn blkbounce_raw_cpu_ptr(ptr: *mut c_void) -> *mut c_void;
        pub(super) fn blkbounce_per_cpu_ptr(ptr: *mut c_void, cpu: u32) -> *mut c_void;
        pub(super) fn blkbounce_next_possible_cpu(cpu: i32) -> u32;
        pub(super) fn blkbounce_nr_cpu_ids() -> u32;
        pub(super) fn blkbounce_spin_lock_init(lock: *mut bindings::spinlock_t);
        pub(super) fn blkbounce_spin_lock_irqsave(lock: *mut bindings::spinlock_t) -> usize;
        pub(super) fn blkbounce_lock_this_cpu(ptr: *mut c_void, flags: *mut usize) -> *mut c_void;
        pub(super) fn blkbounce_unlock_this_cpu(this: *mut c_void, flags: usize);
        pub(super) fn blkbounce_spin_unlock_irqrestore(
            lock: *mut bindings::spinlock_t,
            flags: usize,
        );
        pub(super) fn blkbounce_shrinker_alloc(
            name: *const kernel::ffi::c_char,
        ) -> *mut bindings::shrinker;
        pub(super) fn blkbounce_page_recyclable(page: *mut bindings::page) -> bool;
        pub(super) fn blkbounce_mempool_short(pool: *mut bindings::mempool_t) -> bool;
        pub(super) fn blkbounce_folio_flags(
            page: *mut bindings::page,
            last: *mut *mut bindings::folio,
        ) -> u32;
    }
}
