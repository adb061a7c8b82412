// SPDX-License-Identifier: GPL-2.0

//! A bio set (`struct bio_set`): a mempool reserve of bios, and clones sent down from it.

use super::{
    bio::Bio,
    disk::{BioDriver, ParkedBio, SubmittedBio},
    helpers,
    status::BlkStatus,
    workqueue::{init_and_queue_raw, Workqueue},
};
use kernel::{bindings, prelude::*, static_lock_class, types::Opaque};

/// How an allocation may wait for memory.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Gfp {
    /// May sleep and reclaim, but not start I/O (`GFP_NOIO`): falls back to the reserve.
    NoIo,
    /// Never sleeps (`GFP_NOWAIT`): fails when neither the allocator nor the reserve has
    /// memory at once. For `REQ_NOWAIT` bios, and for the first, optimistic try of others.
    NoWait,
    /// A high-order chunk, only if there is one at once: `GFP_NOWAIT | __GFP_NORETRY |
    /// __GFP_NOMEMALLOC | __GFP_COMP`, as dm-crypt asks for its large pages.
    HighOrder,
}

impl Gfp {
    pub(super) fn as_raw(self) -> bindings::gfp_t {
        let bit = |b: u32| (1 as bindings::gfp_t) << b;
        match self {
            Self::NoIo => {
                bit(bindings::___GFP_DIRECT_RECLAIM_BIT) | bit(bindings::___GFP_KSWAPD_RECLAIM_BIT)
            }
            Self::NoWait => bindings::GFP_NOWAIT,
            Self::HighOrder => {
                bindings::GFP_NOWAIT
                    | bit(bindings::___GFP_NORETRY_BIT)
                    | bit(bindings::___GFP_NOMEMALLOC_BIT)
                    | bit(bindings::___GFP_COMP_BIT)
            }
        }
    }
}

/// A bio set with a reserve of `pool_size` bios.
///
/// # Invariants
///
/// `inner` was set up by `bioset_init` and is torn down by `bioset_exit` on drop.
#[pin_data(PinnedDrop)]
pub(crate) struct BioSet {
    #[pin]
    inner: Opaque<bindings::bio_set>,
}

// SAFETY: A bio set is used from any CPU; its mempools lock internally.
unsafe impl Send for BioSet {}
// SAFETY: See above; all operations take `&self` and are thread safe in C.
unsafe impl Sync for BioSet {}

/// What a clone carries in front of it: the upper bio it stands in for, and a work item
/// for a clone that completed with an error the driver retries.
#[repr(C)]
struct CloneCtx {
    work: bindings::work_struct,
    upper: ParkedBio,
}

/// The front pad of the clone bio set: the context, keeping the bio 8-byte aligned.
const CLONE_FRONT_PAD: usize = core::mem::size_of::<CloneCtx>().next_multiple_of(8);

/// # Safety
///
/// `clone` must come from a bio set made by [`BioSet::new_for_clones`].
unsafe fn clone_ctx(clone: *mut bindings::bio) -> *mut CloneCtx {
    // SAFETY: The bio set places the context `CLONE_FRONT_PAD` bytes before each bio.
    unsafe { clone.cast::<u8>().sub(CLONE_FRONT_PAD).cast() }
}

impl BioSet {
    /// Creates a bio set holding `pool_size` bios in reserve, for clones (no bvecs), each
    /// with room for the upper bio it stands in for, and a per-CPU cache of free clones.
    pub(crate) fn new_for_clones(pool_size: u32) -> impl PinInit<Self, Error> {
        Self::with_layout(
            pool_size,
            CLONE_FRONT_PAD as u32,
            bindings::BIOSET_PERCPU_CACHE as i32,
        )
    }

    /// Creates a bio set whose bios carry `front_pad` bytes before them and, with
    /// `BIOSET_NEED_BVECS` in `flags`, bvecs of their own.
    ///
    /// With `BIOSET_PERCPU_CACHE`, as the block layer's own direct I/O bio sets have
    /// (`block/fops.c`, `fs/iomap/direct-io.c`), `bio_alloc_bioset()` takes bios of up to
    /// `BIO_INLINE_VECS` bvecs (bounce bios up to 16 KiB, all clones) from a list of the
    /// local CPU, and `bio_put()` puts them on the list of the CPU where they complete,
    /// when that is process or hard interrupt context. Bios completed in soft interrupt
    /// context, larger ones and those the reserve served are freed as before (through the
    /// reserve's mempool, which refills first), and the reserve still backs what neither
    /// the cache nor the slab allocator can serve. A CPU's list holds up to about
    /// `ALLOC_CACHE_MAX` (256) bios, more than it had in flight itself when it completes
    /// other CPUs' bios: up to about 100 KiB per CPU and device over both sets. Nothing
    /// shrinks it; it is freed when the CPU goes offline and by `bioset_exit()`.
    pub(super) fn with_layout(
        pool_size: u32,
        front_pad: u32,
        flags: i32,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            inner <- Opaque::try_ffi_init(|slot: *mut bindings::bio_set| {
                // SAFETY: `slot` is valid for writes. `bioset_init` expects a zeroed set: it
                // leaves the fields of features not asked for (rescuer, per-CPU cache) alone.
                unsafe { core::ptr::write_bytes(slot, 0, 1) };
                // SAFETY: `slot` is a zeroed, pinned `bio_set`.
                kernel::error::to_result(unsafe {
                    bindings::bioset_init(slot, pool_size, front_pad, flags)
                })
            }),
        })
    }
}

impl BioSet {
    /// Returns the raw bio set, for the other wrappers of this module.
    pub(super) fn as_raw(&self) -> *mut bindings::bio_set {
        self.inner.get()
    }
}

#[pinned_drop]
impl PinnedDrop for BioSet {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariant the set was initialised, and by the contracts of
        // `CloneTarget` and `BounceTarget` no bio of it is outstanding any more.
        unsafe { bindings::bioset_exit(self.inner.get()) };
    }
}

/// A driver that sends clones of its bios to its lower device.
///
/// # Safety
///
/// [`CloneTarget::bioset`] returns a bio set made by [`BioSet::new_for_clones`] that is part
/// of the driver data, so that it outlives every bio of the disk, and the same one on
/// every call. A queue [`CloneTarget::retry_queue`] returns is part of the driver data too.
pub(crate) unsafe trait CloneTarget: BioDriver {
    /// The bio set clones are allocated from.
    fn bioset(&self) -> &BioSet;

    /// Called, possibly in interrupt context, when the clone of `bio` has completed with
    /// `status` and is not retried; the clone is already freed.
    fn clone_done(bio: SubmittedBio<Self>, status: BlkStatus);

    /// Called, possibly in interrupt context, when the clone of `upper` has failed with
    /// `status`. Returns the queue on which to hand the bio to
    /// [`CloneTarget::clone_retry`], or `None` to end it through `clone_done`.
    fn retry_queue(&self, upper: &Bio, status: BlkStatus) -> Option<&Workqueue>;

    /// Called in process context, on the queue `retry_queue` returned, with the bio whose
    /// clone failed. The driver data outlives the call, even if the bio ends during it.
    fn clone_retry(&self, bio: SubmittedBio<Self>);
}

impl<T: CloneTarget> SubmittedBio<T> {
    /// Sends a clone of this bio (same pages, sector and flags) to the lower device.
    ///
    /// On allocation failure the bio is handed back, not ended.
    pub(crate) fn submit_clone(mut self, gfp: Gfp) -> Result<(), (Self, Error)> {
        let driver = self.driver();
        // SAFETY: The bio is valid and not ended; the lower device is open and the bio set
        // initialised, both for as long as the driver data lives.
        let clone = unsafe {
            bindings::bio_alloc_clone(
                driver.lower().as_raw(),
                self.as_raw(),
                gfp.as_raw(),
                driver.bioset().as_raw(),
            )
        };
        if clone.is_null() {
            // Only a `Gfp::NoWait` allocation can fail: the reserve serves the others.
            return Err((self, ENOMEM));
        }
        self.start_io_acct();
        let disk = self.gendisk();
        let sector = self.sector();
        // SAFETY: `clone` is a new bio owned by this function, from the clone bio set (by
        // the contract of `CloneTarget`), so it has a context. The upper bio travels there
        // until `clone_end_io` or `clone_retry_fn` takes it back.
        unsafe {
            (*clone_ctx(clone)).upper = self.park();
            (*clone).bi_end_io = Some(clone_end_io::<T>);
            helpers::blkbounce_trace_bio_remap(clone, disk, sector);
            bindings::submit_bio_noacct(clone);
        }
        Ok(())
    }
}

/// Completion of a clone made by [`SubmittedBio::submit_clone`].
///
/// # Safety
///
/// Called by the block layer once per clone, whose context holds the upper bio.
unsafe extern "C" fn clone_end_io<T: CloneTarget>(clone: *mut bindings::bio) {
    // SAFETY: `clone` is valid until `bio_put`, and so is its context.
    let (ctx, status) = unsafe { (clone_ctx(clone), BlkStatus::from_raw((*clone).bi_status)) };
    if !status.is_ok() {
        // The work may run, end the upper bio and let the disk free the driver data before
        // `queue_raw` returns: take the queue's address now, and hold no reference into
        // the driver data across the call.
        let queue = {
            // SAFETY: The upper bio, a `SubmittedBio<T>`, stays parked in the context until
            // it is taken back below or by `clone_retry_fn`; the references end here.
            let (upper, driver) = unsafe { ((*ctx).upper.bio(), (*ctx).upper.driver::<T>()) };
            driver.retry_queue(upper, status).map(Workqueue::as_raw)
        };
        if let Some(wq) = queue {
            // SAFETY: The completed clone, with its context, is owned here and handed to
            // the work, which takes it and the upper bio back; its work item is queued
            // once. The queue is alive when the call starts, since the upper bio is
            // counted (see `BounceDone::defer`).
            unsafe {
                init_and_queue_raw(
                    wq,
                    &raw mut (*ctx).work,
                    clone_retry_fn::<T>,
                    c"blkbounce_retry",
                    static_lock_class!(),
                );
            }
            return;
        }
    }
    // SAFETY: The context came from `park` and is taken back once, here; the clone is not
    // used after `bio_put`.
    let upper = unsafe {
        let upper = SubmittedBio::<T>::unpark((*ctx).upper);
        bindings::bio_put(clone);
        upper
    };
    T::clone_done(upper, status);
}

/// The work function of a clone handed to [`CloneTarget::clone_retry`].
///
/// # Safety
///
/// `work` is the work item of the context of a completed clone that `clone_end_io`
/// queued, and gave up.
unsafe extern "C" fn clone_retry_fn<T: CloneTarget>(work: *mut bindings::work_struct) {
    // SAFETY: `work` is the first field of a `CloneCtx`, `CLONE_FRONT_PAD` bytes before
    // its clone, which is owned here; its context came from `park` and is taken back once.
    let (clone, upper) = unsafe {
        let clone = work
            .cast::<u8>()
            .add(CLONE_FRONT_PAD)
            .cast::<bindings::bio>();
        (clone, SubmittedBio::<T>::unpark((*clone_ctx(clone)).upper))
    };
    // The retry may end the bio before it returns, which alone would let the disk free
    // the driver data (and close the lower device) during the call.
    let hold = upper.hold_disk();
    hold.driver().clone_retry(upper);
    // SAFETY: The clone is owned here and used no more. It is freed only now, so that its
    // work item, which is running, cannot come back from the bio set as a new item while
    // this one runs; the hold keeps its lower device open until then.
    unsafe { bindings::bio_put(clone) };
    drop(hold);
}
