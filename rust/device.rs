// SPDX-License-Identifier: GPL-2.0

//! An enabled blkbounce device: a disk stacked on a lower device, and its I/O path.

use crate::{
    blk::{
        bio::{Bio, BioOp},
        bounce::{BounceBuffer, BounceDone, BounceTarget, NoBuffer},
        cap::Reservation,
        clone::CloneTarget,
        disk::{BioDriver, BounceOptions, Disk, DiskOptions},
        gfp::Gfp,
        lower::LowerDevice,
        page_reserve::{Chunk, PageReserve},
        stacked::Stacked,
        status::BlkStatus,
        submitted_bio::SubmittedBio,
    },
    chunking,
    mode::Mode,
    policy::{self, Decision, Io, Reason},
    ratelimit::RateLimit,
    stats::{Stats, StatsSnapshot},
};
use kernel::{
    new_mutex,
    page::PAGE_SIZE,
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
const PAGE_RESERVE: u32 = chunking::MAX_BOUNCE_BYTES / PAGE_SIZE as u32;

/// The state of an enabled device that its I/O path uses.
#[pin_data]
pub(crate) struct BounceDevice {
    name: CString,
    mode: Mode,
    trace: Atomic<bool>,
    trace_limit: RateLimit,
    /// Taken by a bio that must wait for the page reserve, so that two bios never each
    /// hold part of it while waiting for the rest.
    #[pin]
    reserve_lock: Mutex<()>,
    stats: Stats,
    /// The largest bounce chunk, as a page order: one segment of the lower device, and at
    /// most the module parameter `max_chunk_order` and [`chunking::MAX_CHUNK_ORDER`].
    max_chunk_order: u32,
}

impl BounceDevice {
    /// Creates the disk `name` over `lower`, whose bounce bios may hold at most
    /// `max_bounce_bytes` at once (at least [`chunking::MAX_BOUNCE_BYTES`]).
    pub(crate) fn create(
        name: CString,
        lower: LowerDevice,
        mode: Mode,
        trace: bool,
        max_bounce_bytes: u64,
    ) -> Result<Disk<Self>> {
        let disk_name = CString::try_from(&*name)?;
        let bouncing = mode.may_bounce();
        let limit = crate::module_parameters::max_chunk_order
            .value()
            .min(chunking::MAX_CHUNK_ORDER);
        let max_chunk_order =
            chunking::max_chunk_order(lower.segment_limits().max_chunk_bytes(), limit);
        let driver = try_pin_init!(BounceDevice {
            name,
            mode,
            trace: Atomic::new(trace),
            trace_limit: RateLimit::new(),
            reserve_lock <- new_mutex!(()),
            stats: Stats::new()?,
            max_chunk_order,
        });
        // `auto` and `always` declare stable writes, so that the page cache keeps pages
        // stable during writeback and filesystems bounce their own direct I/O. `off` and
        // `optimistic` are transparent: `optimistic` bounces every write, and the block
        // layer's verification of each read catches a buffer that changes. Modes that may
        // bounce split bios to what one bounce bio carries.
        let options = DiskOptions {
            stable_writes: matches!(mode, Mode::Auto | Mode::Always),
            max_io_bytes: bouncing.then_some(chunking::MAX_BOUNCE_BYTES),
            clone_reserve: BIO_RESERVE,
            // `mode=optimistic`: where zero-copy reads that failed with a protection error
            // are bounced, in process context. Apart from the module's copy queue, since a
            // retry may wait for room under the cap, which copy-backs give back.
            retry_queue: (mode == Mode::Optimistic).then_some(c"blkbounce_retry"),
            bounce: BounceOptions {
                bio_reserve: if bouncing { BIO_RESERVE } else { 1 },
                bio_cache: bouncing,
                page_reserve: if bouncing { PAGE_RESERVE } else { 0 },
                cap: max_bounce_bytes.max(u64::from(chunking::MAX_BOUNCE_BYTES)),
                recycle: bouncing,
            },
            ..DiskOptions::default()
        };
        Disk::new(&disk_name, lower, options, driver)
    }

    /// Returns the counters of `disk`, with the figures of its bounce memory.
    pub(crate) fn stats_snapshot(disk: &Disk<Self>) -> StatsSnapshot {
        disk.driver().stats.snapshot(disk.stacked().cap_figures())
    }

    /// Returns the disk name, e.g. `blkbounce0`.
    pub(crate) fn name(&self) -> &CStr {
        &self.name
    }

    /// Turns the per-bio trace lines on or off.
    pub(crate) fn set_trace(&self, on: bool) {
        self.trace.store(on, Relaxed);
    }

    /// Logs a trace line about `bio`, `what` happens to it, if tracing is on.
    fn trace(&self, bio: &Bio, what: impl kernel::fmt::Display) {
        if !self.trace.load(Relaxed) {
            return;
        }
        if let Some(held_back) = self.trace_limit.check() {
            if held_back > 0 {
                pr_info!("{}: trace: {held_back} lines held back\n", self.name());
            }
            pr_info!(
                "{}: {} sector {} size {}: {what}\n",
                self.name(),
                bio.op(),
                bio.sector(),
                bio.size()
            );
        }
    }

    fn pass_through(&self, bio: SubmittedBio<Self>) {
        self.stats.passed_through(bio.op(), bio.size());
        let gfp = if bio.is_nowait() {
            Gfp::NoWait
        } else {
            Gfp::NoIo
        };
        if let Err((bio, _)) = bio.submit_clone(gfp) {
            self.again(bio);
        }
    }

    /// Bounces `bio`. Returns `false` if it ended the bio itself, with an error, rather than
    /// sending it down.
    fn bounce(&self, stacked: &Stacked<Self>, bio: SubmittedBio<Self>, reason: Reason) -> bool {
        // Room under the cap first: a bio over it waits for bounce bios to complete.
        let bytes = chunking::bounce_bytes(bio.size());
        let cap = stacked.cap();
        let room = match cap.reserve(bytes, Gfp::NoWait) {
            Some(room) => room,
            None if bio.is_nowait() => {
                self.stats.cap_again();
                self.again(bio);
                return false;
            }
            None => match cap.reserve(bytes, Gfp::NoIo) {
                Some(room) => room,
                // Only a bio larger than the cap, which the split prevents, gets here.
                None => {
                    bio.end(BlkStatus::io_error());
                    return false;
                }
            },
        };
        let pages = stacked.pages();
        let mut buffer = match self.alloc_bounce(pages, bio, room, Gfp::NoWait) {
            Ok(buffer) => buffer,
            Err(no) if no.upper.is_nowait() => {
                self.stats.nowait_again();
                no.fail(BlkStatus::again());
                return false;
            }
            Err(NoBuffer { room, upper }) => {
                // Serve bios one at a time from the reserve, which holds a whole bio.
                self.stats.reserve_fallback();
                let guard = self.reserve_lock.lock();
                let result = self.alloc_bounce(pages, upper, room, Gfp::NoIo);
                drop(guard);
                match result {
                    Ok(buffer) => buffer,
                    // The reserve always serves a `Gfp::NoIo` allocation in the end.
                    Err(no) => {
                        no.fail(BlkStatus::io_error());
                        return false;
                    }
                }
            }
        };
        if reason == Reason::Retry {
            buffer.mark_retry();
        }
        let size = buffer.upper().size();
        let is_write = buffer.upper().op() == BioOp::Write;
        match buffer.submit() {
            Ok(()) => {
                self.stats.bounced(reason, is_write, size);
                true
            }
            // Nothing went down: a `REQ_NOWAIT` bio whose pieces could not all be had at
            // once (`BLK_STS_AGAIN`), or a bounce bio that would not do.
            Err((no, status)) => {
                if status == BlkStatus::again() {
                    self.stats.nowait_again();
                }
                no.fail(status);
                false
            }
        }
    }

    /// Ends a `REQ_NOWAIT` bio that would have to wait.
    fn again(&self, bio: SubmittedBio<Self>) {
        self.stats.nowait_again();
        bio.end(BlkStatus::again());
    }

    /// Allocates bounce memory for `bio` within `room`: high-order chunks while the page
    /// allocator has them at once, single pages from the reserve for the rest.
    fn alloc_bounce<'a>(
        &self,
        pages: &'a PageReserve,
        bio: SubmittedBio<Self>,
        room: Reservation<'a>,
        gfp: Gfp,
    ) -> Result<BounceBuffer<'a, Self>, NoBuffer<'a, Self>> {
        let size = bio.size();
        let mut buffer = BounceBuffer::new(bio, room, chunking::max_chunks(size), gfp)?;
        let mut max_order = self.max_chunk_order;
        let mut fresh = false;
        while buffer.size() < size {
            let left = size - buffer.size();
            let order = chunking::chunk_order(left, max_order);
            let Some(chunk) = alloc_chunk(pages, order, gfp) else {
                return Err(buffer.abandon());
            };
            if chunk.came_from_pool() {
                self.stats.reserve_page();
            }
            fresh |= !chunk.was_recycled();
            // Once an order is not to be had, do not ask for it again for this bio.
            max_order = chunk.order();
            let len = left.min(chunk.size() as u32);
            if buffer.push(chunk, len).is_err() {
                return Err(buffer.abandon());
            }
        }
        // Off the path of bounces that recycled pages serve: the peak of the pages held.
        if fresh {
            pages.sample_peak();
        }
        Ok(buffer)
    }

    /// Counts a bio the lower device completed with `status`.
    fn completed(&self, nowait: bool, status: BlkStatus) {
        if status == BlkStatus::again() && nowait {
            self.stats.nowait_again();
        } else if !status.is_ok() {
            self.stats.failed();
        }
    }

    /// Copies a read's data back to the upper bio, in process context, and ends it. Never
    /// sleeps. A copy-back deferred to task context counts its time there.
    fn copy_back(done: BounceDone<Self>, deferred: bool) {
        done.copy_to_upper();
        let stats = &done.driver().stats;
        if deferred {
            stats.copied_back_deferred(done.ns_since_defer());
        } else {
            stats.copied_back();
        }
        done.finish(BlkStatus::OK);
    }
}

/// Allocates a chunk of at most `1 << order` pages: the largest the page allocator has at
/// once, else a single page.
fn alloc_chunk(pages: &PageReserve, order: u32, gfp: Gfp) -> Option<Chunk<'_>> {
    (1..=order)
        .rev()
        .find_map(|o| pages.alloc(o, gfp))
        .or_else(|| pages.alloc(0, gfp))
}

/// What the policy knows of `bio` besides its folios.
fn io_of(bio: &Bio) -> Io {
    Io {
        op: bio.op(),
        has_data: bio.has_data(),
        direct: bio.may_be_direct(),
    }
}

impl BioDriver for BounceDevice {
    type Module = crate::LocalModule;

    fn submit_bio(stacked: &Stacked<Self>, bio: SubmittedBio<Self>) {
        let this = stacked.driver();
        let decision = policy::decide(this.mode, io_of(&bio), &*bio);
        this.trace(&bio, decision);
        match decision {
            Decision::PassThrough | Decision::ZeroCopyFirst => this.pass_through(bio),
            Decision::Bounce(reason) => {
                this.bounce(stacked, bio, reason);
            }
        }
    }
}

impl CloneTarget for BounceDevice {
    fn clone_done(bio: SubmittedBio<Self>, status: BlkStatus) {
        bio.driver().completed(bio.is_nowait(), status);
        bio.end(status);
    }

    /// In `optimistic`, a read that failed with a protection error is retried: its buffer
    /// changed before the block layer verified it. Every other error ends the bio
    /// unchanged.
    fn retry(&self, upper: &Bio, status: BlkStatus) -> bool {
        policy::retried(self.mode, io_of(upper), status == BlkStatus::protection())
    }

    /// Reads the bio again, into bounce pages copied back when it completes. Only the
    /// retry's status reaches the caller.
    fn clone_retry(stacked: &Stacked<Self>, bio: SubmittedBio<Self>) {
        let this = stacked.driver();
        this.stats.retried_read();
        this.trace(&bio, "protection error, retry bounced");
        if !this.bounce(stacked, bio, Reason::Retry) {
            // Ended here, before it went down: only a bio over the cap, which the split
            // prevents (the retry waits as a blocking bio would, see `clone_retry`).
            this.stats.retry_failed();
        }
    }
}

impl BounceTarget for BounceDevice {
    fn bounce_done(done: BounceDone<Self>) {
        let status = done.status();
        if !status.is_ok() {
            // Nothing is copied back: the bounce memory holds no data to give.
            let this = done.driver();
            if done.is_retry() {
                this.stats.retry_failed();
                this.trace(done.upper(), "retry failed");
            }
            this.completed(done.upper().is_nowait(), status);
            done.finish(status);
        } else if done.upper().op() == BioOp::Read {
            if done.may_copy_here() {
                // Task context already, preemptible (kintegrityd after PI verification, or
                // a device that completes in the submitter's context): no hop.
                Self::copy_back(done, false);
            } else {
                done.defer();
            }
        } else {
            done.finish(status);
        }
    }

    fn bounce_work(done: BounceDone<Self>) {
        Self::copy_back(done, true);
    }
}
