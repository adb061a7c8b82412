// SPDX-License-Identifier: GPL-2.0

//! The bounce path: a bio of the disk's own pages that stands in for an upper bio.
//!
//! A bounce bio carries its context (the upper bio, the time its copy-back was deferred,
//! the bytes of the disk's cap it holds, whether it retries a failed I/O) in the front pad
//! of its bio set, and its memory as one bvec per [`Chunk`]. Writes are copied in before
//! submission; reads are copied out after completion: at once when the completion runs in
//! task context that may be preempted (a PI device's reads complete on the `kintegrityd`
//! workqueue after verification), else in its CPU's batch on the module's copy queue
//! ([`CopyBatches`]).
//!
//! The upper bio's pages may be written by user space while they are copied: that is the
//! workload. They are copied only by the kernel's `memcpy_from_page()` and
//! `memcpy_to_page()` (which also flushes the data cache of the user page), never read
//! through Rust references, in one linear walk over both bvec arrays ([`SegmentWalk`]).

use super::{
    bio::{Bio, BioOp, REQ_ATOMIC, REQ_NOMERGE, REQ_POLLED},
    bioset::BioSet,
    cap::Reservation,
    copy_batch::CopyBatches,
    disk::BioDriver,
    gfp::Gfp,
    helpers,
    page_reserve::{Chunk, PageReserve},
    poll::{self, PollLink},
    segment_walk::{SegmentWalk, Step},
    segments::SegmentLimits,
    stacked::Stacked,
    status::BlkStatus,
    submitted_bio::SubmittedBio,
};
use core::{
    ffi::c_int,
    marker::PhantomData,
    mem::{ManuallyDrop, MaybeUninit},
    ptr::NonNull,
};
use kernel::{bindings, prelude::*};

/// What a bounce bio carries in front of it.
///
/// # Invariants
///
/// `upper` is initialised by [`BounceBuffer::submit`], with the other fields, and taken
/// back once, by [`BounceDone::finish`], before the bounce bio is freed.
pub(super) struct BounceCtx<T: BioDriver> {
    /// From submission until the completion takes it back, once.
    upper: MaybeUninit<SubmittedBio<T>>,
    deferred_ns: i64,
    /// The link of a polled bounce bio ([`poll::link`]), initialised if it is linked.
    poll: MaybeUninit<PollLink>,
    /// Bytes of the disk's own cap, which [`BounceBuffer::new`] checked the reservation
    /// was of.
    reserved: u32,
    retry: bool,
}

/// A driver that bounces bios through pages of the disk's own.
pub(crate) trait BounceTarget: BioDriver {
    /// Called, possibly in atomic context ([`BounceDone::may_copy_here`] tells), when the
    /// lower device has completed a bounce bio.
    fn bounce_done(done: BounceDone<Self>);

    /// Called in task context, preemptible, after [`BounceDone::defer`]: by the work of
    /// the module's copy queue that ends the bios deferred on a CPU in a batch.
    fn bounce_work(done: BounceDone<Self>);
}

/// The context of a bounce bio.
///
/// # Safety
///
/// `bio` must come from the bounce bio set of a `Stacked<T>` and not be freed.
unsafe fn ctx_of<T: BioDriver>(bio: *mut bindings::bio) -> *mut BounceCtx<T> {
    // SAFETY: By the safety requirements.
    unsafe { BioSet::<BounceCtx<T>>::ctx_of(bio) }
}

/// Returns the chunks of a bounce bio, one bvec each.
///
/// # Safety
///
/// `bio` must be a bounce bio that lives, and whose bvecs do not change, while the slice
/// is used.
unsafe fn chunks_of<'a>(bio: *mut bindings::bio) -> &'a [bindings::bio_vec] {
    // SAFETY: A bounce bio has its own table of `bi_max_vecs` bvecs, of which the first
    // `bi_vcnt` are filled.
    unsafe { core::slice::from_raw_parts((*bio).bi_io_vec, (*bio).bi_vcnt as usize) }
}

/// Which way a copy goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToBounce,
    ToUpper,
}

/// Copies all data of `upper` between its pages and the chunks of `bounce`. Returns
/// `false`, having copied what fits, if the chunks are shorter than the data.
///
/// # Safety
///
/// `bounce` must be a bounce bio that is not in flight.
unsafe fn copy(upper: &Bio, bounce: *mut bindings::bio, direction: Direction) -> bool {
    let (data, offset, size) = upper.data_bvecs();
    // SAFETY: The bounce bio is not in flight, so its bvecs are stable.
    let chunks = unsafe { chunks_of(bounce) };
    if let Some(step) = SegmentWalk::single_step(data, offset, size, chunks) {
        // SAFETY: The step lies within the upper bio's data and the bounce bio's chunks.
        unsafe { copy_step(&step, chunks, direction) };
        return true;
    }
    let mut walk = SegmentWalk::new(data, offset, size, chunks);
    for step in &mut walk {
        // SAFETY: As above.
        unsafe { copy_step(&step, chunks, direction) };
    }
    walk.left() == 0
}

/// Copies one step of a [`SegmentWalk`].
///
/// # Safety
///
/// `step` must lie within a page the upper bio holds and within chunk `step.chunk` of
/// `chunks`, the bvecs of a bounce bio that is not in flight.
unsafe fn copy_step(step: &Step, chunks: &[bindings::bio_vec], direction: Direction) {
    // SAFETY: Chunks are lowmem pages (no `__GFP_HIGHMEM`), contiguous over the chunk, and
    // the step lies within the chunk. The upper page is held by the bio, and the step lies
    // within it. The helpers map the upper page for the copy only.
    unsafe {
        let chunk =
            helpers::blkbounce_page_address(chunks[step.chunk].bv_page).add(step.chunk_offset);
        match direction {
            Direction::ToBounce => {
                helpers::blkbounce_memcpy_from_page(chunk, step.page, step.offset, step.len)
            }
            Direction::ToUpper => {
                helpers::blkbounce_memcpy_to_page(step.page, step.offset, chunk, step.len)
            }
        }
    }
}

/// Frees the chunks of a bounce bio and the bio itself.
///
/// # Safety
///
/// `bio` must be a bounce bio whose chunks come from `pages`, and that nobody uses any
/// more.
unsafe fn free(bio: *mut bindings::bio, pages: &PageReserve) {
    // SAFETY: Each bvec is one chunk of `pages` given by `BounceBuffer::push`.
    unsafe {
        for chunk in chunks_of(bio) {
            pages.free_raw(chunk.bv_page);
        }
        bindings::bio_put(bio);
    }
}

/// Cuts `bio` into pieces of at most `segments.max_segments()` chunks each, chained to
/// it, and returns them, in order, linked through `bi_next`, leaving `bio` the last
/// piece; `bio` is then not polled (`REQ_POLLED` cleared): polling links one lower bio to
/// an upper bio, and the block layer, too, stops polling a bio it splits. All or nothing:
/// if a piece cannot be had without waiting, the pieces made so far are freed again and
/// `Err` is returned. A lower device whose logical block is larger than a page is not cut
/// for (see [`SegmentLimits::pieces`]): no pieces.
///
/// # Safety
///
/// `bio` must be a bounce bio owned here and not yet submitted; `set` a bio set that
/// outlives the pieces.
unsafe fn cut(
    bio: *mut bindings::bio,
    segments: SegmentLimits,
    set: *mut bindings::bio_set,
) -> Result<*mut bindings::bio, ()> {
    // SAFETY: By the safety requirements. `bio_split` leaves the bvec table alone (the
    // pieces share it) and advances only the bio's iterator, so the chunks' lengths can be
    // read throughout; each piece ends before the bio does, on a chunk's end, so on a page
    // boundary and, as the logical block is at most a page, on a block boundary. The
    // pieces, owned here, are kept in a list through `bi_next`, which is free before
    // submission.
    unsafe {
        let lens = chunks_of(bio).iter().map(|chunk| chunk.bv_len);
        let Some(pieces) = segments.pieces(lens) else {
            return Ok(core::ptr::null_mut());
        };
        (*bio).bi_opf &= !REQ_POLLED;
        let mut head: *mut bindings::bio = core::ptr::null_mut();
        let mut tail: *mut bindings::bio = core::ptr::null_mut();
        for bytes in pieces {
            let sectors = (bytes >> bindings::SECTOR_SHIFT) as c_int;
            let piece = bindings::bio_split(bio, sectors, Gfp::NoWait.as_raw(), set);
            if piece.is_null() || kernel::error::from_err_ptr(piece).is_err() {
                end_pieces(head, BlkStatus::again());
                return Err(());
            }
            // As the block layer sets up its own splits (`bio_submit_split`).
            (*piece).bi_opf |= REQ_NOMERGE;
            bindings::bio_chain(piece, bio);
            if tail.is_null() {
                head = piece;
            } else {
                (*tail).bi_next = piece;
            }
            tail = piece;
        }
        Ok(head)
    }
}

/// Takes the first of the pieces `head` links, unlinked, and moves `head` to the next.
///
/// # Safety
///
/// `*head` must be null or the first of pieces made by [`cut`] and owned here.
unsafe fn next_piece(head: &mut *mut bindings::bio) -> Option<*mut bindings::bio> {
    let piece = core::ptr::NonNull::new(*head)?.as_ptr();
    // SAFETY: By the safety requirements the piece is valid and owned here.
    unsafe {
        *head = (*piece).bi_next;
        (*piece).bi_next = core::ptr::null_mut();
    }
    Some(piece)
}

/// Sends the pieces `head` links down, in order, each traced as a split and as a remap of
/// `disk`'s sectors, `offset` sectors before its own.
///
/// # Safety
///
/// `head` must be null or the first of pieces made by [`cut`] and owned here; they may be
/// sent down only once the bio they were cut from has its completion set. `disk` must be
/// valid.
unsafe fn send_pieces(mut head: *mut bindings::bio, disk: *mut bindings::gendisk, offset: u64) {
    // SAFETY: By the safety requirements.
    while let Some(piece) = unsafe { next_piece(&mut head) } {
        // SAFETY: By the safety requirements. The rest of the bio starts where the piece
        // ends.
        unsafe {
            let start = (*piece).bi_iter.bi_sector;
            let rest = start + u64::from((*piece).bi_iter.bi_size >> bindings::SECTOR_SHIFT);
            helpers::blkbounce_trace_bio_split(piece, rest);
            helpers::blkbounce_trace_bio_remap(piece, disk, start - offset);
            bindings::submit_bio_noacct(piece);
        }
    }
}

/// Ends the pieces `head` links with `status`, unsent; each ending is counted by the bio
/// they were cut from, which keeps a count of its own and is not ended by them.
///
/// # Safety
///
/// `head` must be null or the first of pieces made by [`cut`] and owned here.
unsafe fn end_pieces(mut head: *mut bindings::bio, status: BlkStatus) {
    // SAFETY: By the safety requirements.
    while let Some(piece) = unsafe { next_piece(&mut head) } {
        // SAFETY: By the safety requirements.
        unsafe {
            (*piece).bi_status = status.as_raw();
            bindings::bio_endio(piece);
        }
    }
}

/// A bounce bio being filled, not yet submitted, with the upper bio it stands in for.
///
/// # Invariants
///
/// - `bio` comes from the bounce bio set of the upper bio's disk, is owned here, and each
///   of its bvecs is a whole chunk of that disk's pages.
/// - `room` is a reservation of that disk's cap.
///
/// Fields drop in order: the reservation is given back before the upper bio ends, since
/// its end may let the disk free the cap.
pub(crate) struct BounceBuffer<'a, T: BounceTarget> {
    bio: NonNull<bindings::bio>,
    room: Reservation<'a>,
    upper: SubmittedBio<T>,
    retry: bool,
}

/// Why a [`BounceBuffer`] could not be made; what it was given comes back. Give the
/// reservation back before ending the upper bio ([`NoBuffer::fail`]).
pub(crate) struct NoBuffer<'a, T: BounceTarget> {
    pub(crate) room: Reservation<'a>,
    pub(crate) upper: SubmittedBio<T>,
}

impl<T: BounceTarget> NoBuffer<'_, T> {
    /// Gives back the reservation, then ends the upper bio with `status`.
    pub(crate) fn fail(self, status: BlkStatus) {
        let NoBuffer { room, upper } = self;
        drop(room);
        upper.end(status);
    }
}

impl<'a, T: BounceTarget> BounceBuffer<'a, T> {
    /// Allocates an empty bounce bio like `upper`, for the lower device: same operation,
    /// flags, sector (plus the disk's offset), priority, write hint and cgroup, with room
    /// for `max_chunks` chunks, at most `BIO_MAX_VECS`. `room` must be a reservation of the
    /// cap of `upper`'s disk.
    pub(crate) fn new(
        upper: SubmittedBio<T>,
        room: Reservation<'a>,
        max_chunks: u16,
        gfp: Gfp,
    ) -> Result<Self, NoBuffer<'a, T>> {
        let stacked = upper.stacked();
        let too_many = u32::from(max_chunks) > bindings::BIO_MAX_VECS;
        if kernel::warn_on!(!room.is_of(stacked.cap()) || too_many) {
            return Err(NoBuffer { room, upper });
        }
        // SAFETY: The lower device is open and the bio set initialised, for as long as the
        // disk's state lives; the upper bio is valid.
        let bio = unsafe {
            bindings::bio_alloc_bioset(
                stacked.lower().as_raw(),
                max_chunks,
                upper.opf(),
                gfp.as_raw(),
                stacked.bounces().as_raw(),
            )
        };
        let Some(bio) = NonNull::new(bio) else {
            return Err(NoBuffer { room, upper });
        };
        // SAFETY: `bio` is new and owned here; `upper` is valid.
        unsafe {
            let b = bio.as_ptr();
            let u = upper.as_raw();
            (*b).bi_iter.bi_sector = (*u).bi_iter.bi_sector + stacked.offset();
            (*b).bi_ioprio = (*u).bi_ioprio;
            (*b).bi_write_hint = (*u).bi_write_hint;
            bindings::bio_clone_blkg_association(b, u);
        }
        // INVARIANT: The bio comes from the disk's bounce bio set and has no bvecs yet; the
        // reservation was checked above.
        Ok(BounceBuffer {
            bio,
            room,
            upper,
            retry: false,
        })
    }

    /// Returns the upper bio.
    pub(crate) fn upper(&self) -> &SubmittedBio<T> {
        &self.upper
    }

    /// Marks the bounce bio as the retry of an I/O of the upper bio that failed, for
    /// [`BounceDone::is_retry`].
    pub(crate) fn mark_retry(&mut self) {
        self.retry = true;
    }

    /// Returns the number of bytes the bio covers so far.
    pub(crate) fn size(&self) -> u32 {
        // SAFETY: By the type invariant the bio is owned here.
        unsafe { (*self.bio.as_ptr()).bi_iter.bi_size }
    }

    /// Appends the first `len` bytes of `chunk`, which must come from the pages of the
    /// upper bio's disk. Gives the chunk back if it does not, or if there is no room for
    /// another bvec.
    pub(crate) fn push(&mut self, chunk: Chunk<'a>, len: u32) -> Result<(), Chunk<'a>> {
        let b = self.bio.as_ptr();
        // SAFETY: By the type invariant the bio is owned here.
        let full = unsafe { (*b).bi_vcnt >= (*b).bi_max_vecs };
        let foreign = !chunk.is_of(self.upper.stacked().pages());
        if kernel::warn_on!(full || foreign || len == 0 || len as usize > chunk.size()) {
            return Err(chunk);
        }
        // SAFETY: There is room for a bvec; the chunk's pages are contiguous and `len` fits.
        // `__bio_add_page` never merges, so the bvec stays exactly this chunk.
        unsafe { bindings::__bio_add_page(b, chunk.into_raw(), len, 0) };
        Ok(())
    }

    /// Moves the reservation and the upper bio out, leaving the bounce bio to the caller.
    fn into_parts(
        self,
    ) -> (
        NonNull<bindings::bio>,
        Reservation<'a>,
        SubmittedBio<T>,
        bool,
    ) {
        let this = ManuallyDrop::new(self);
        // SAFETY: Each field is moved out once, and `this` is not dropped.
        unsafe {
            (
                this.bio,
                core::ptr::read(&this.room),
                core::ptr::read(&this.upper),
                this.retry,
            )
        }
    }

    /// Frees the bounce bio and its chunks, and gives back what it was made from.
    pub(crate) fn abandon(self) -> NoBuffer<'a, T> {
        let (bio, room, upper, _) = self.into_parts();
        // SAFETY: By the type invariant the bio is owned here, with chunks of the disk's
        // pages.
        unsafe { free(bio.as_ptr(), upper.stacked().pages()) };
        NoBuffer { room, upper }
    }

    /// Copies a write's data into the bounce memory and sends the bounce bio to the lower
    /// device; the upper bio's I/O accounting starts here.
    ///
    /// A `REQ_NOWAIT` bounce bio of more chunks than the lower device takes in one bio is
    /// sent down in pieces that each fit (see [`super::segments`]), since the lower device
    /// would end it with `BLK_STS_AGAIN` rather than split it. A `REQ_ATOMIC` write always
    /// fits: the disk's atomic write unit is at most as many pages as the lower device has
    /// segments, and chunks are at most one segment each.
    ///
    /// If nothing is sent down, what the buffer was made from comes back as `Err`, with the
    /// status to end the upper bio with: `BLK_STS_AGAIN` if the pieces cannot all be had
    /// at once; `BLK_STS_INVAL` for an atomic write that would not fit; `BLK_STS_IOERR`,
    /// with a warning, if the bounce memory is not exactly as large as the upper bio.
    #[inline(always)]
    pub(crate) fn submit(mut self) -> Result<(), (NoBuffer<'a, T>, BlkStatus)> {
        let b = self.bio.as_ptr();
        let is_write = self.upper.op() == BioOp::Write;
        if kernel::warn_on!(self.size() != self.upper.size()) {
            return Err((self.abandon(), BlkStatus::io_error()));
        }
        let stacked = self.upper.stacked();
        let segments = stacked.segments();
        let offset = stacked.offset();
        let mut pieces = core::ptr::null_mut();
        // SAFETY: By the type invariant the bio is owned here.
        if unsafe { u32::from((*b).bi_vcnt) } > segments.max_segments() {
            match self.too_many_chunks(segments) {
                Ok(head) => pieces = head,
                Err(status) => return Err((self.abandon(), status)),
            }
        }
        self.upper.start_io_acct();
        // SAFETY: The bounce bio is owned here, not in flight.
        if is_write && !unsafe { copy(&self.upper, b, Direction::ToBounce) } {
            kernel::warn_on!(true);
            // SAFETY: The pieces are owned here and unsent.
            unsafe { end_pieces(pieces, BlkStatus::io_error()) };
            return Err((self.abandon(), BlkStatus::io_error()));
        }
        let (_, room, upper, retry) = self.into_parts();
        let disk = upper.gendisk();
        let upper_raw = upper.as_raw();
        // SAFETY: The bio is owned here and comes from the bounce bio set, so it has a
        // `BounceCtx<T>`. The upper bio and the reservation's bytes travel there until the
        // completion takes them back; the pieces' bio set is the disk's, which outlives the
        // upper bio. A polled upper bio is linked to the bounce bio, whose context lives
        // until its completion has run. Each bio sent down stands in for the upper bio's
        // sectors at its own sector less the disk's offset.
        unsafe {
            let ctx = ctx_of::<T>(b);
            (&raw mut (*ctx).upper).write(MaybeUninit::new(upper));
            (*ctx).reserved = room.into_bytes();
            (*ctx).retry = retry;
            (*ctx).deferred_ns = 0;
            (*b).bi_end_io = Some(bounce_end_io::<T>);
            send_pieces(pieces, disk, offset);
            if poll::wants_link(upper_raw, b) {
                poll::link(upper_raw, b, (&raw mut (*ctx).poll).cast());
            }
            helpers::blkbounce_trace_bio_remap(b, disk, (*b).bi_iter.bi_sector - offset);
            bindings::submit_bio_noacct(b);
        }
        Ok(())
    }
}

impl<T: BounceTarget> BounceBuffer<'_, T> {
    /// For a bounce bio of more chunks than the lower device has segments: refuses an
    /// atomic write (`BLK_STS_INVAL`), cuts a `REQ_NOWAIT` bio into pieces ([`cut`];
    /// `BLK_STS_AGAIN` if they cannot all be had at once), and leaves any other whole,
    /// for the lower device to split. Returns the pieces to send before the bio.
    #[cold]
    #[inline(never)]
    fn too_many_chunks(&self, segments: SegmentLimits) -> Result<*mut bindings::bio, BlkStatus> {
        if self.upper.opf() & REQ_ATOMIC != 0 {
            kernel::pr_warn_once!(
                "a bounced atomic write needs more segments than the lower device takes: refused\n"
            );
            return Err(BlkStatus::invalid());
        }
        if !self.upper.is_nowait() {
            return Ok(core::ptr::null_mut());
        }
        let set = self.upper.stacked().clones().as_raw();
        // SAFETY: By the type invariant the bounce bio is owned here, not submitted; the
        // clone bio set is the disk's, which outlives every bio of the disk.
        unsafe { cut(self.bio.as_ptr(), segments, set) }.map_err(|()| BlkStatus::again())
    }
}

impl<T: BounceTarget> Drop for BounceBuffer<'_, T> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the bio is owned here, with chunks of the disk's
        // pages. The reservation and then the upper bio are dropped after this (failing
        // the upper bio with a warning: callers `abandon` a buffer rather than drop it).
        unsafe { free(self.bio.as_ptr(), self.upper.stacked().pages()) };
    }
}

/// A completed bounce bio with its upper bio, owned by the driver until
/// [`BounceDone::finish`].
///
/// # Invariants
///
/// `bio` is a completed bounce bio of a `Stacked<T>` whose context holds its upper bio,
/// not yet ended, and bytes of that disk's cap.
pub(crate) struct BounceDone<T: BounceTarget> {
    bio: NonNull<bindings::bio>,
    _driver: PhantomData<T>,
}

// SAFETY: The bios may be finished from any thread; the copy-back runs on a worker.
unsafe impl<T: BounceTarget> Send for BounceDone<T> {}

impl<T: BounceTarget> BounceDone<T> {
    /// Returns the bounce bio's context.
    fn ctx(&self) -> *mut BounceCtx<T> {
        // SAFETY: By the type invariant the bio is a bounce bio.
        unsafe { ctx_of(self.bio.as_ptr()) }
    }

    /// Returns the upper bio, parked in the context.
    fn upper_bio(&self) -> &SubmittedBio<T> {
        // SAFETY: By the type invariant the upper bio is in the context while `self` lives.
        unsafe { (*self.ctx()).upper.assume_init_ref() }
    }

    /// Returns the lower device's completion status.
    pub(crate) fn status(&self) -> BlkStatus {
        // SAFETY: By the type invariant the bio is valid.
        BlkStatus::from_raw(unsafe { (*self.bio.as_ptr()).bi_status })
    }

    /// Returns the upper bio.
    pub(crate) fn upper(&self) -> &Bio {
        self.upper_bio()
    }

    /// Returns the driver data.
    pub(crate) fn driver(&self) -> &T {
        self.upper_bio().driver()
    }

    /// Returns `true` if the bounce bio was marked by [`BounceBuffer::mark_retry`].
    pub(crate) fn is_retry(&self) -> bool {
        // SAFETY: By the type invariant the bio is a bounce bio, whose context `submit` set.
        unsafe { (*self.ctx()).retry }
    }

    /// Returns the time since [`BounceDone::defer`] deferred the bio to task context, in
    /// nanoseconds. Only for a `BounceDone` that [`BounceTarget::bounce_work`] received.
    pub(crate) fn ns_since_defer(&self) -> u64 {
        // SAFETY: `defer` set `deferred_ns` before it queued the work that made `self`;
        // `ktime_get` may be called in any context.
        let (now, then) = unsafe { (bindings::ktime_get(), (*self.ctx()).deferred_ns) };
        (now - then).max(0) as u64
    }

    /// Returns `true` if the completion runs where it may be preempted, and the copy-back
    /// may run at once rather than be deferred: not in a hard or soft interrupt, not with
    /// preemption, bottom halves or interrupts off (a spinlock held, an RCU read-side
    /// section of a kernel whose readers disable preemption). This is the block layer's
    /// test (`bio_in_atomic`, which `bio_complete_in_task` defers on) less its clause for
    /// preemptible RCU readers, which keeps out end functions that sleep: the copy-back
    /// never sleeps. A kernel without `CONFIG_PREEMPT_COUNT` cannot tell, and defers all.
    pub(crate) fn may_copy_here(&self) -> bool {
        // SAFETY: Reading the preemption count and the interrupt flag has no
        // preconditions.
        unsafe { helpers::blkbounce_may_copy_here() }
    }

    /// Copies the bounce memory into the upper bio's pages, for a read that succeeded; for
    /// anything else it copies nothing and warns, since the bounce memory then holds no
    /// data of the caller's. Never sleeps; must not run in interrupt context (see
    /// [`BounceDone::may_copy_here`]), where a copy of up to 1 MiB does not belong.
    pub(crate) fn copy_to_upper(&self) {
        if kernel::warn_on!(self.upper().op() != BioOp::Read || !self.status().is_ok()) {
            return;
        }
        // SAFETY: The bounce bio has completed, so it is not in flight; `submit` checked
        // that its chunks cover the upper bio.
        let copied = unsafe { copy(self.upper(), self.bio.as_ptr(), Direction::ToUpper) };
        kernel::warn_on!(!copied);
    }

    /// Continues in [`BounceTarget::bounce_work`], in task context: the bounce bio joins
    /// its CPU's batch on the module's copy queue ([`CopyBatches`]), and one work item
    /// ends every bio of the batch. A module without copy batches finishes the bio with
    /// `BLK_STS_IOERR` and a warning.
    pub(crate) fn defer(self) {
        let this = ManuallyDrop::new(self);
        let (bio, ctx) = (this.bio.as_ptr(), this.ctx());
        // SAFETY: The bounce bio has completed and is owned here. Once added, the batch's
        // work calls its end function, `bounce_end_io`, again, which sees `deferred_ns`
        // set and takes ownership back; the upper bio keeps its disk, and so the module's
        // batches, alive until then.
        let added = unsafe {
            (*ctx).deferred_ns = bindings::ktime_get();
            CopyBatches::add(bio)
        };
        if !added {
            // SAFETY: Not added: still owned here.
            unsafe { (*ctx).deferred_ns = 0 };
            kernel::warn_on!(true);
            ManuallyDrop::into_inner(this).finish(BlkStatus::io_error());
        }
    }

    /// Frees the bounce bio and its memory, gives back its bytes of the cap, then ends the
    /// upper bio with `status`.
    pub(crate) fn finish(self, status: BlkStatus) {
        let this = ManuallyDrop::new(self);
        let ctx = this.ctx();
        // SAFETY: The upper bio and the reserved bytes are taken back once, here, before
        // the bio (and the context with it) is freed.
        let (upper, reserved) = unsafe { ((*ctx).upper.assume_init_read(), (*ctx).reserved) };
        let stacked: &Stacked<T> = upper.stacked();
        // SAFETY: The bounce bio is done and owned here; its chunks come from the pages of
        // the upper bio's disk, and its bytes from that disk's cap (by the type invariant).
        unsafe {
            free(this.bio.as_ptr(), stacked.pages());
            stacked.cap().release(reserved);
        }
        upper.end(status);
    }
}

impl<T: BounceTarget> Drop for BounceDone<T> {
    /// A completion the driver forgot to finish is a bug: it is reported, then its upper
    /// bio fails rather than hangs.
    fn drop(&mut self) {
        kernel::warn_on!(true);
        let done = BounceDone::<T> {
            bio: self.bio,
            _driver: PhantomData,
        };
        done.finish(BlkStatus::io_error());
    }
}

/// Completion of a bounce bio: first where the lower device completed it, then, if
/// [`BounceDone::defer`] deferred it, in task context, from its batch's work.
///
/// # Safety
///
/// Called by the block layer once per bounce bio submitted by [`BounceBuffer::submit`],
/// and by its batch's work once more after `defer`.
unsafe extern "C" fn bounce_end_io<T: BounceTarget>(bio: *mut bindings::bio) {
    // INVARIANT: The bio completed; its context holds the upper bio and the reservation.
    let done = BounceDone {
        // SAFETY: The block layer passes a non-null bio.
        bio: unsafe { NonNull::new_unchecked(bio) },
        _driver: PhantomData,
    };
    // SAFETY: The bio is a bounce bio with its context; `submit` cleared `deferred_ns`,
    // and only `defer` sets it.
    if unsafe { (*ctx_of::<T>(bio)).deferred_ns } != 0 {
        T::bounce_work(done);
    } else {
        T::bounce_done(done);
    }
}
