// SPDX-License-Identifier: GPL-2.0

//! Bounce bios: a bio of the driver's own pages that stands in for an upper bio.
//!
//! A bounce bio carries its context (the upper bio, a work item for the copy-back, the
//! completion time) in the front pad of its bio set, and its memory as one bvec per
//! [`Chunk`]. Writes are copied in before submission; reads are copied out after
//! completion, on the driver's workqueue, since completion may run in interrupt context.

use super::{
    bio::Bio,
    bioset::{BioSet, Gfp},
    disk::{driver_of, BioDriver, SubmittedBio},
    page_pool::{Chunk, PagePool, PAGE_SIZE},
    status::BlkStatus,
    workqueue::Workqueue,
};
use core::{marker::PhantomData, mem::ManuallyDrop, ptr::NonNull};
use kernel::{bindings, prelude::*, static_lock_class};

/// What a bounce bio carries in front of it.
#[repr(C)]
struct BounceCtx {
    work: bindings::work_struct,
    upper: *mut bindings::bio,
    completed_ns: i64,
}

/// The front pad of the bounce bio set: the context, keeping the bio 8-byte aligned.
const FRONT_PAD: usize = core::mem::size_of::<BounceCtx>().next_multiple_of(8);

/// A driver that bounces bios through its own pages.
pub(crate) trait BounceTarget: BioDriver {
    /// The bio set made by [`new_bounce_bioset`]; it must belong to the driver data.
    fn bounce_bioset(&self) -> &BioSet;

    /// The reserve chunks come from; it must belong to the driver data.
    fn page_pool(&self) -> &PagePool;

    /// The queue read copy-backs run on; it must belong to the driver data.
    fn copy_queue(&self) -> &Workqueue;

    /// Called, possibly in interrupt context, when the lower device has completed a
    /// bounce bio.
    fn bounce_done(done: BounceDone<Self>);

    /// Called in process context on [`BounceTarget::copy_queue`] after
    /// [`BounceDone::defer`].
    fn bounce_work(done: BounceDone<Self>);
}

/// Creates the bio set for bounce bios, with `pool_size` in reserve.
pub(crate) fn new_bounce_bioset(pool_size: u32) -> impl PinInit<BioSet, Error> {
    BioSet::with_layout(
        pool_size,
        FRONT_PAD as u32,
        bindings::BIOSET_NEED_BVECS as i32,
    )
}

/// # Safety
///
/// `bio` must come from a bio set made by [`new_bounce_bioset`].
unsafe fn ctx_of(bio: *mut bindings::bio) -> *mut BounceCtx {
    // SAFETY: The bio set places the context `FRONT_PAD` bytes before each bio.
    unsafe { bio.cast::<u8>().sub(FRONT_PAD).cast() }
}

/// Calls `f(page, offset, len)` for the bounce memory of `bio`, `len` bytes from byte
/// `pos` on, cut at page and chunk boundaries.
///
/// # Safety
///
/// `bio` must be a bounce bio whose chunks cover `pos + len` bytes.
unsafe fn for_each_bounce_piece(
    bio: *mut bindings::bio,
    mut pos: usize,
    mut len: usize,
    mut f: impl FnMut(*mut bindings::page, usize, usize),
) {
    let mut idx = 0;
    while len > 0 {
        // SAFETY: The chunks cover the range, so `idx` stays below `bi_vcnt`.
        let bv = unsafe { *(*bio).bi_io_vec.add(idx) };
        let chunk_len = bv.bv_len as usize;
        if pos >= chunk_len {
            pos -= chunk_len;
            idx += 1;
            continue;
        }
        let in_page = pos % PAGE_SIZE;
        let n = len.min(PAGE_SIZE - in_page).min(chunk_len - pos);
        // SAFETY: `pos / PAGE_SIZE` is within the chunk's pages.
        f(unsafe { bv.bv_page.add(pos / PAGE_SIZE) }, in_page, n);
        pos += n;
        len -= n;
    }
}

/// Copies between the data of `upper` and the bounce memory of `bounce`, in the direction
/// given by `to_bounce`.
///
/// # Safety
///
/// `bounce` must be a bounce bio whose chunks cover the size of `upper`.
unsafe fn copy(upper: &Bio, bounce: *mut bindings::bio, to_bounce: bool) {
    let mut pos = 0;
    upper.for_each_piece(|piece| {
        let mut done = 0;
        // SAFETY: The chunks cover `upper`'s size, of which this piece is a part.
        unsafe {
            for_each_bounce_piece(bounce, pos, piece.len as usize, |page, offset, n| {
                // SAFETY: Both pages are live (the bios own them); each mapping is
                // released, innermost first, before the next is made.
                let upper_map = bindings::kmap_local_page(piece.page);
                let bounce_map = bindings::kmap_local_page(page);
                let u = upper_map.cast::<u8>().add(piece.offset as usize + done);
                let b = bounce_map.cast::<u8>().add(offset);
                if to_bounce {
                    core::ptr::copy_nonoverlapping(u, b, n);
                } else {
                    core::ptr::copy_nonoverlapping(b, u, n);
                }
                bindings::kunmap_local(bounce_map);
                bindings::kunmap_local(upper_map);
                done += n;
            })
        };
        pos += piece.len as usize;
        true
    });
}

/// Frees the chunks of a bounce bio and the bio itself.
///
/// # Safety
///
/// `bio` must be a bounce bio of `pool`'s driver that nobody uses any more.
unsafe fn free(bio: *mut bindings::bio, pool: &PagePool) {
    // SAFETY: Each of the `bi_vcnt` bvecs is one chunk given by `BounceBuffer::push`.
    unsafe {
        for i in 0..(*bio).bi_vcnt as usize {
            pool.free_raw((*(*bio).bi_io_vec.add(i)).bv_page);
        }
        bindings::bio_put(bio);
    }
}

/// A bounce bio being filled, not yet submitted.
///
/// # Invariants
///
/// `bio` comes from the driver's bounce bio set, is owned here, and each of its bvecs is a
/// whole chunk of the driver's page pool.
pub(crate) struct BounceBuffer<'a, T: BounceTarget> {
    bio: NonNull<bindings::bio>,
    driver: &'a T,
}

impl<'a, T: BounceTarget> BounceBuffer<'a, T> {
    /// Allocates an empty bounce bio like `upper`, for the lower device: same operation,
    /// flags, sector, priority, write hint and cgroup, with room for `max_chunks` chunks.
    /// `driver` must be the driver data of `upper`'s disk.
    pub(crate) fn new(
        driver: &'a T,
        upper: &SubmittedBio<T>,
        max_chunks: u16,
        gfp: Gfp,
    ) -> Option<Self> {
        // The bounce bio must not outlive the bio set it comes from: the disk's count of
        // `upper` guarantees that only for the disk's own driver data.
        assert!(core::ptr::eq(driver, upper.driver()));
        let opf = upper.opf();
        let upper = upper.as_raw();
        // SAFETY: The lower device is open and the bio set initialised, for as long as the
        // driver data lives; the upper bio is valid.
        let bio = unsafe {
            bindings::bio_alloc_bioset(
                driver.lower().as_raw(),
                max_chunks,
                opf,
                gfp.as_raw(),
                driver.bounce_bioset().as_raw(),
            )
        };
        let bio = NonNull::new(bio)?;
        // SAFETY: `bio` is new and owned here; `upper` is valid.
        unsafe {
            let b = bio.as_ptr();
            (*b).bi_iter.bi_sector = (*upper).bi_iter.bi_sector;
            (*b).bi_ioprio = (*upper).bi_ioprio;
            (*b).bi_write_hint = (*upper).bi_write_hint;
            bindings::bio_clone_blkg_association(b, upper);
        }
        // INVARIANT: The bio comes from the bounce bio set and has no bvecs yet.
        Some(BounceBuffer { bio, driver })
    }

    /// Returns the number of bytes the bio covers so far.
    pub(crate) fn size(&self) -> u32 {
        // SAFETY: By the type invariant the bio is owned here.
        unsafe { (*self.bio.as_ptr()).bi_iter.bi_size }
    }

    /// Appends the first `len` bytes of `chunk`; there must be room for one more bvec.
    pub(crate) fn push(&mut self, chunk: Chunk<'a>, len: u32) {
        assert!(len as usize <= chunk.size());
        let b = self.bio.as_ptr();
        // SAFETY: By the type invariant the bio is owned here.
        assert!(unsafe { (*b).bi_vcnt < (*b).bi_max_vecs });
        // SAFETY: There is room for a bvec; the chunk's pages are contiguous and `len` fits.
        // `__bio_add_page` never merges, so the bvec stays exactly this chunk.
        unsafe { bindings::__bio_add_page(b, chunk.into_raw(), len, 0) };
    }

    /// Copies the data of `upper` into the bounce memory, which must be as large.
    pub(crate) fn copy_from(&mut self, upper: &Bio) {
        assert_eq!(self.size(), upper.size());
        // SAFETY: The chunks cover the upper bio's size, checked above.
        unsafe { copy(upper, self.bio.as_ptr(), true) };
    }

    /// Sends the bounce bio to the lower device on behalf of `upper`, whose size it must
    /// have.
    pub(crate) fn submit(self, upper: SubmittedBio<T>) {
        assert_eq!(self.size(), upper.size());
        let this = ManuallyDrop::new(self);
        let b = this.bio.as_ptr();
        // SAFETY: The bio is owned here and comes from the bounce bio set, so it has a
        // context. The upper bio travels there until `bounce_end_io` takes it back.
        unsafe {
            let ctx = ctx_of(b);
            (*ctx).upper = upper.into_raw();
            (*b).bi_end_io = Some(bounce_end_io::<T>);
            bindings::submit_bio_noacct(b);
        }
    }
}

impl<T: BounceTarget> Drop for BounceBuffer<'_, T> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the bio is owned here, with chunks of the pool.
        unsafe { free(self.bio.as_ptr(), self.driver.page_pool()) };
    }
}

/// A completed bounce bio with its upper bio, owned by the driver until
/// [`BounceDone::finish`].
///
/// # Invariants
///
/// `bio` is a completed bounce bio of a `T` whose context holds a `SubmittedBio<T>` not
/// yet ended.
pub(crate) struct BounceDone<T: BounceTarget> {
    bio: NonNull<bindings::bio>,
    _driver: PhantomData<T>,
}

// SAFETY: The bios may be finished from any thread; the copy-back runs on a worker.
unsafe impl<T: BounceTarget> Send for BounceDone<T> {}

impl<T: BounceTarget> BounceDone<T> {
    fn ctx(&self) -> *mut BounceCtx {
        // SAFETY: By the type invariant the bio is a bounce bio.
        unsafe { ctx_of(self.bio.as_ptr()) }
    }

    /// Returns the lower device's completion status.
    pub(crate) fn status(&self) -> BlkStatus {
        // SAFETY: By the type invariant the bio is valid.
        BlkStatus::from_raw(unsafe { (*self.bio.as_ptr()).bi_status })
    }

    /// Returns the upper bio.
    pub(crate) fn upper(&self) -> &Bio {
        // SAFETY: By the type invariant the upper bio is not ended while `self` lives.
        unsafe { Bio::from_raw((*self.ctx()).upper) }
    }

    /// Returns the driver data.
    pub(crate) fn driver(&self) -> &T {
        // SAFETY: The upper bio is a live `SubmittedBio<T>`, so its disk is a `Disk<T>`.
        unsafe { driver_of((*self.ctx()).upper) }
    }

    /// Returns the time since the lower device completed the bio, in nanoseconds.
    pub(crate) fn ns_since_completion(&self) -> u64 {
        // SAFETY: `completed_ns` was set by `bounce_end_io` before `self` was made;
        // `ktime_get` may be called in any context.
        let (now, then) = unsafe { (bindings::ktime_get(), (*self.ctx()).completed_ns) };
        (now - then).max(0) as u64
    }

    /// Copies the bounce memory into the upper bio's pages (for reads).
    pub(crate) fn copy_to_upper(&self) {
        // SAFETY: The bounce bio's chunks cover the upper bio's size (`submit` checked).
        unsafe { copy(self.upper(), self.bio.as_ptr(), false) };
    }

    /// Continues in [`BounceTarget::bounce_work`] on the driver's copy queue.
    pub(crate) fn defer(self) {
        let this = ManuallyDrop::new(self);
        let ctx = this.ctx();
        // SAFETY: The context is owned with the bio; its work item is initialised here
        // and queued once. `bounce_work_fn` takes ownership back.
        unsafe {
            let work = &raw mut (*ctx).work;
            bindings::init_work_with_key(
                work,
                Some(bounce_work_fn::<T>),
                false,
                c"blkbounce_copy".as_char_ptr(),
                static_lock_class!().as_ptr(),
            );
            this.driver().copy_queue().queue_raw(work);
        }
    }

    /// Frees the bounce bio and its memory, then ends the upper bio with `status`.
    pub(crate) fn finish(self, status: BlkStatus) {
        let this = ManuallyDrop::new(self);
        // SAFETY: The upper bio came from `SubmittedBio::into_raw` in `submit`.
        let upper = unsafe { SubmittedBio::<T>::from_raw((*this.ctx()).upper) };
        // SAFETY: The bounce bio is done and owned here; its chunks belong to the pool.
        unsafe { free(this.bio.as_ptr(), upper.driver().page_pool()) };
        upper.end(status);
    }
}

impl<T: BounceTarget> Drop for BounceDone<T> {
    /// A completion the driver forgot to finish fails its upper bio rather than hang it.
    fn drop(&mut self) {
        let done = BounceDone::<T> {
            bio: self.bio,
            _driver: PhantomData,
        };
        done.finish(BlkStatus::IOERR);
    }
}

/// Completion of a bounce bio.
///
/// # Safety
///
/// Called by the block layer once per bounce bio submitted by [`BounceBuffer::submit`].
unsafe extern "C" fn bounce_end_io<T: BounceTarget>(bio: *mut bindings::bio) {
    // SAFETY: The bio is a bounce bio with a context; `ktime_get` may run in any context.
    unsafe { (*ctx_of(bio)).completed_ns = bindings::ktime_get() };
    // INVARIANT: The bio completed; its context holds the upper bio.
    T::bounce_done(BounceDone {
        // SAFETY: The block layer passes a non-null bio.
        bio: unsafe { NonNull::new_unchecked(bio) },
        _driver: PhantomData,
    });
}

/// The work function of [`BounceDone::defer`].
///
/// # Safety
///
/// `work` is the work item of a bounce bio context queued by `defer`.
unsafe extern "C" fn bounce_work_fn<T: BounceTarget>(work: *mut bindings::work_struct) {
    // SAFETY: `work` is the first field of a `BounceCtx`, which `FRONT_PAD` bytes before
    // its bio.
    let bio = unsafe { work.cast::<u8>().add(FRONT_PAD).cast::<bindings::bio>() };
    // INVARIANT: `defer` gave up ownership of this completed bounce bio.
    T::bounce_work(BounceDone {
        // SAFETY: A bio follows every context.
        bio: unsafe { NonNull::new_unchecked(bio) },
        _driver: PhantomData,
    });
}
