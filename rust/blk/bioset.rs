// SPDX-License-Identifier: GPL-2.0

//! A bio set (`struct bio_set`): a mempool reserve of bios, and clones sent down from it.

use super::{
    disk::{BioDriver, SubmittedBio},
    status::BlkStatus,
};
use kernel::{bindings, prelude::*, types::Opaque};

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

impl BioSet {
    /// Creates a bio set holding `pool_size` bios in reserve, for clones (no bvecs).
    pub(crate) fn new(pool_size: u32) -> impl PinInit<Self, Error> {
        Self::with_layout(pool_size, 0, 0)
    }

    /// Creates a bio set whose bios carry `front_pad` bytes before them and, with
    /// `BIOSET_NEED_BVECS` in `flags`, bvecs of their own.
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
        // SAFETY: By the type invariant the set was initialised, and by the contract of
        // `BioDriver::bioset` no bio of it is outstanding any more.
        unsafe { bindings::bioset_exit(self.inner.get()) };
    }
}

/// A driver that sends clones of its bios to its lower device.
pub(crate) trait CloneTarget: BioDriver {
    /// The bio set clones are allocated from. It must belong to the driver data, so that it
    /// lives as long as any bio of the disk.
    fn bioset(&self) -> &BioSet;

    /// Called, possibly in interrupt context, when the clone of `bio` has completed with
    /// `status`; the clone is already freed.
    fn clone_done(bio: SubmittedBio<Self>, status: BlkStatus);
}

impl<T: CloneTarget> SubmittedBio<T> {
    /// Sends a clone of this bio (same pages, sector and flags) to the lower device.
    ///
    /// On allocation failure the bio is handed back, not ended.
    pub(crate) fn submit_clone(self, gfp: Gfp) -> Result<(), (Self, Error)> {
        let driver = self.driver();
        // SAFETY: The bio is valid and not ended; the lower device is open and the bio set
        // initialised, both for as long as the driver data lives.
        let clone = unsafe {
            bindings::bio_alloc_clone(
                driver.lower().as_raw(),
                self.as_raw(),
                gfp.as_raw(),
                driver.bioset().inner.get(),
            )
        };
        if clone.is_null() {
            // Only a `Gfp::NoWait` allocation can fail: the reserve serves the others.
            return Err((self, ENOMEM));
        }
        // SAFETY: `clone` is a new bio owned by this function. The upper bio travels in
        // `bi_private` until `clone_end_io` takes it back.
        unsafe {
            (*clone).bi_end_io = Some(clone_end_io::<T>);
            (*clone).bi_private = self.into_raw().cast();
            bindings::submit_bio_noacct(clone);
        }
        Ok(())
    }
}

/// Completion of a clone made by [`SubmittedBio::submit_clone`].
///
/// # Safety
///
/// Called by the block layer once per clone, whose `bi_private` holds the upper bio.
unsafe extern "C" fn clone_end_io<T: CloneTarget>(clone: *mut bindings::bio) {
    // SAFETY: `clone` is valid until `bio_put`; `bi_private` came from `into_raw`.
    let (upper, status) = unsafe {
        let upper = SubmittedBio::<T>::from_raw((*clone).bi_private.cast());
        let status = BlkStatus::from_raw((*clone).bi_status);
        bindings::bio_put(clone);
        (upper, status)
    };
    T::clone_done(upper, status);
}
