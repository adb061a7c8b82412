// SPDX-License-Identifier: GPL-2.0

//! An enabled blkbounce device: a disk stacked on a lower device, and its I/O path.

#![deny(unsafe_code)]

use crate::{
    blk::{
        bio::BioOp,
        bioset::{BioSet, CloneTarget, Gfp},
        bounce::{new_bounce_bioset, BounceBuffer, BounceDone, BounceTarget},
        disk::{BioDriver, Disk, DiskOptions, SubmittedBio},
        lower::LowerDevice,
        page_pool::{Chunk, PagePool},
        status::BlkStatus,
        workqueue::Workqueue,
    },
    chunking,
    mode::Mode,
    policy::{self, Decision, Io, Reason},
    ratelimit::RateLimit,
    stats::Stats,
};
use kernel::{
    new_mutex,
    prelude::*,
    str::CString,
    sync::{
        atomic::{Atomic, Relaxed},
        Mutex,
    },
};

/// Bios held in reserve for clones and for bounce bios.
const BIO_RESERVE: u32 = 16;
/// Pages held in reserve for bounce memory: one largest bounce bio's worth.
const PAGE_RESERVE: u32 = chunking::MAX_BOUNCE_BYTES / kernel::page::PAGE_SIZE as u32;

/// The state of an enabled device that its I/O path uses.
#[pin_data]
pub(crate) struct BounceDevice {
    name: CString,
    mode: Mode,
    trace: Atomic<bool>,
    trace_limit: RateLimit,
    lower: LowerDevice,
    #[pin]
    clones: BioSet,
    #[pin]
    bounces: BioSet,
    #[pin]
    pages: PagePool,
    /// Taken by a bio that must wait for the page reserve, so that two bios never each
    /// hold part of it while waiting for the rest.
    #[pin]
    reserve_lock: Mutex<()>,
    copy_queue: Workqueue,
    stats: Stats,
}

impl BounceDevice {
    /// Creates the disk `name` over `lower`.
    pub(crate) fn create(
        name: CString,
        lower: LowerDevice,
        mode: Mode,
        trace: bool,
    ) -> Result<Disk<Self>> {
        let disk_name = CString::try_from(&*name)?;
        let copy_queue = Workqueue::new(c"blkbounce_copy", &name)?;
        let bouncing = mode != Mode::Off;
        let driver = try_pin_init!(BounceDevice {
            name,
            mode,
            trace: Atomic::new(trace),
            trace_limit: RateLimit::new(),
            lower,
            clones <- BioSet::new(BIO_RESERVE),
            bounces <- new_bounce_bioset(if bouncing { BIO_RESERVE } else { 1 }),
            pages <- PagePool::new(if bouncing { PAGE_RESERVE } else { 0 }),
            reserve_lock <- new_mutex!(()),
            copy_queue,
            stats: Stats::new(),
        });
        // Bouncing modes declare stable writes, so that the page cache keeps pages stable
        // during writeback and filesystems bounce their own direct I/O; and they split bios
        // to what one bounce bio carries. `off` is transparent.
        let options = DiskOptions {
            stable_writes: bouncing,
            max_io_bytes: bouncing.then_some(chunking::MAX_BOUNCE_BYTES),
        };
        Disk::new(&disk_name, options, driver)
    }

    /// Returns the counters.
    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Returns the disk name, e.g. `blkbounce0`.
    pub(crate) fn name(&self) -> &CStr {
        &self.name
    }

    /// Turns the per-bio trace lines on or off.
    pub(crate) fn set_trace(&self, on: bool) {
        self.trace.store(on, Relaxed);
    }

    fn trace(&self, bio: &SubmittedBio<Self>, decision: Decision) {
        if !self.trace.load(Relaxed) {
            return;
        }
        if let Some(held_back) = self.trace_limit.check() {
            if held_back > 0 {
                pr_info!("{}: trace: {held_back} lines held back\n", self.name());
            }
            pr_info!(
                "{}: {} sector {} size {}: {decision}\n",
                self.name(),
                bio.op(),
                bio.sector(),
                bio.size()
            );
        }
    }

    fn pass_through(&self, bio: SubmittedBio<Self>) {
        self.stats.passed_through(bio.size());
        let gfp = if bio.is_nowait() {
            Gfp::NoWait
        } else {
            Gfp::NoIo
        };
        if let Err((bio, _)) = bio.submit_clone(gfp) {
            self.stats.nowait_again();
            bio.end(BlkStatus::AGAIN);
        }
    }

    fn bounce(&self, bio: SubmittedBio<Self>, reason: Reason) {
        let mut buffer = match self.alloc_bounce(&bio, Gfp::NoWait) {
            Some(buffer) => buffer,
            None if bio.is_nowait() => {
                self.stats.nowait_again();
                return bio.end(BlkStatus::AGAIN);
            }
            None => {
                // Serve bios one at a time from the reserve, which holds a whole bio.
                self.stats.reserve_fallback();
                let _guard = self.reserve_lock.lock();
                match self.alloc_bounce(&bio, Gfp::NoIo) {
                    Some(buffer) => buffer,
                    // The reserve always serves a `Gfp::NoIo` allocation in the end.
                    None => return bio.end(BlkStatus::IOERR),
                }
            }
        };
        self.stats.bounced_for(reason);
        if bio.op() == BioOp::Write {
            buffer.copy_from(&bio);
            self.stats.bounced_write(bio.size());
        } else {
            self.stats.bounced_read(bio.size());
        }
        buffer.submit(bio);
    }

    /// Allocates bounce memory for `bio`: high-order chunks while the page allocator has
    /// them at once, single pages from the reserve for the rest.
    fn alloc_bounce(&self, bio: &SubmittedBio<Self>, gfp: Gfp) -> Option<BounceBuffer<'_, Self>> {
        let size = bio.size();
        let mut buffer = BounceBuffer::new(self, bio, chunking::max_chunks(size), gfp)?;
        let mut max_order = chunking::MAX_CHUNK_ORDER;
        while buffer.size() < size {
            let left = size - buffer.size();
            let chunk = self.alloc_chunk(chunking::chunk_order(left, max_order), gfp)?;
            if chunk.came_from_pool() {
                self.stats.reserve_page();
            }
            // Once an order is not to be had, do not ask for it again for this bio.
            max_order = chunk.order();
            let len = left.min(chunk.size() as u32);
            buffer.push(chunk, len);
        }
        Some(buffer)
    }

    fn alloc_chunk(&self, order: u32, gfp: Gfp) -> Option<Chunk<'_>> {
        (1..=order)
            .rev()
            .find_map(|o| self.pages.alloc(o, gfp))
            .or_else(|| self.pages.alloc(0, gfp))
    }
}

impl BioDriver for BounceDevice {
    fn lower(&self) -> &LowerDevice {
        &self.lower
    }

    fn submit_bio(&self, bio: SubmittedBio<Self>) {
        let Some(bio) = bio.split_to_limits() else {
            return;
        };
        let io = Io {
            op: bio.op(),
            has_data: bio.has_data(),
            direct: bio.may_be_direct(),
        };
        let decision = policy::decide(self.mode, io, &*bio);
        self.trace(&bio, decision);
        match decision {
            Decision::PassThrough => self.pass_through(bio),
            Decision::Bounce(reason) => self.bounce(bio, reason),
        }
    }
}

impl CloneTarget for BounceDevice {
    fn bioset(&self) -> &BioSet {
        &self.clones
    }

    fn clone_done(bio: SubmittedBio<Self>, status: BlkStatus) {
        if !status.is_ok() {
            bio.driver().stats.failed();
        }
        bio.end(status);
    }
}

impl BounceTarget for BounceDevice {
    fn bounce_bioset(&self) -> &BioSet {
        &self.bounces
    }

    fn page_pool(&self) -> &PagePool {
        &self.pages
    }

    fn copy_queue(&self) -> &Workqueue {
        &self.copy_queue
    }

    fn bounce_done(done: BounceDone<Self>) {
        let status = done.status();
        if !status.is_ok() {
            // Nothing is copied back: the bounce memory holds no data to give.
            done.driver().stats.failed();
            done.finish(status);
        } else if done.upper().op() == BioOp::Read {
            done.defer();
        } else {
            done.finish(status);
        }
    }

    fn bounce_work(done: BounceDone<Self>) {
        done.copy_to_upper();
        done.driver().stats.copied_back(done.ns_since_completion());
        done.finish(BlkStatus::OK);
    }
}
