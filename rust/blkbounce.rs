// SPDX-License-Identifier: GPL-2.0

//! blkbounce: a stacking block device that gives its lower device stable pages.
//!
//! The driver is safe Rust: only `blk`, the abstraction of the block layer, is allowed
//! code that the compiler cannot check.

#![deny(unsafe_code)]

mod blk;
mod chunking;
mod config;
mod device;
mod disk_index;
mod mode;
mod policy;
mod ratelimit;
mod stats;
mod text;

use kernel::{prelude::*, sync::Arc};

module! {
    type: BlkBounceModule,
    name: "blkbounce",
    authors: ["The blkbounce authors"],
    description: "Stacking block device that bounces I/O into stable pages",
    license: "GPL",
    params: {
        max_chunk_order: u32 {
            default: 4,
            description: "Largest bounce chunk as a page order, 0 to 4 (default 4, 64 KiB); lower values make bounce bios of more, smaller chunks, as fragmented memory does (for tests)",
        },
    },
}

#[pin_data]
struct BlkBounceModule {
    shared: Arc<config::Shared>,
    #[pin]
    configfs_subsystem: kernel::configfs::Subsystem<config::Config>,
    /// Frees the recycled bounce pages of a CPU that goes offline. Dropped after the
    /// devices: every device, with its pages, is gone by then.
    cpu_dead: blk::percpu_pages::CpuDead,
    /// The read copy-backs deferred to task context. Dropped last: its drop waits for
    /// the work still running, module code after the last bio of the last device.
    copy_batches: KBox<blk::copy_batch::CopyBatches>,
}

impl kernel::InPlaceModule for BlkBounceModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            copy_batches: blk::copy_batch::CopyBatches::register()?,
            cpu_dead: blk::percpu_pages::CpuDead::register()?,
            shared: Arc::new(config::Shared::new(), GFP_KERNEL)?,
            configfs_subsystem <- config::subsystem(shared.clone()),
        })
        .pin_chain(|this| {
            // Device directories pin themselves through the registered subsystem.
            let this = this.project();
            this.shared.slot.set(this.configfs_subsystem.as_ref());
            Ok(())
        })
    }
}
