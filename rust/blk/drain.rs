// SPDX-License-Identifier: GPL-2.0

//! The drain: the count of a disk's bios in flight, which its removal waits for.

use super::{disk::BioDriver, stacked::Stacked};
use core::ptr::NonNull;
use kernel::{
    prelude::*,
    sync::{
        atomic::{Atomic, Full},
        Completion,
    },
};

/// Bios handed to the driver and not yet ended, holds ([`DiskHold`]), plus one while the
/// disk accepts bios; completed when the count drops to zero.
///
/// # Invariants
///
/// `drained` is completed only once `inflight` has dropped to zero, which it does once.
#[pin_data]
pub(super) struct Drain {
    inflight: Atomic<usize>,
    #[pin]
    drained: Completion,
}

impl Drain {
    /// Creates the count, holding the disk's own.
    pub(super) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            inflight: Atomic::new(1),
            drained <- Completion::new(),
        })
    }

    /// Takes a count.
    ///
    /// # Safety
    ///
    /// The caller must own a count (a bio's, or the disk's own) or be a `submit_bio` of
    /// the registered disk, so that the count cannot have reached zero and the disk's
    /// drop cannot free this drain before the new count is given up.
    #[inline]
    pub(super) unsafe fn get(&self) {
        self.inflight.fetch_add(1, Full);
    }

    /// Gives up one count.
    ///
    /// Works from a raw pointer: once the count is zero the disk's drop may free the disk's
    /// state, this drain with it, so no reference to it may be live when that happens.
    ///
    /// # Safety
    ///
    /// `drain` must be valid, and the caller must own one count, which this call gives up.
    #[inline]
    pub(super) unsafe fn put(drain: *const Self) {
        // SAFETY: `drain` is valid while the caller's count is held. The reference to the
        // counter lasts only for the atomic operation that drops the count, as in the
        // kernel's `Arc::drop`.
        let last = unsafe { (*drain).inflight.fetch_sub(1, Full) } == 1;
        if last {
            // SAFETY: The count is zero, so only the disk's drop, waiting in `wait`, still
            // uses `*drain`; it frees it only after `complete_all` has released the
            // completion's lock, which the waiter takes before it returns
            // (Documentation/scheduler/completion.rst).
            unsafe { (*drain).drained.complete_all() };
        }
    }

    /// Gives up the disk's own count and waits until every other count is given up.
    ///
    /// # Safety
    ///
    /// The caller must own the disk's own count, and call this once.
    pub(super) unsafe fn drain(&self) {
        // SAFETY: The caller gives up its count; `self` outlives the call.
        unsafe { Self::put(self) };
        self.drained.wait_for_completion();
    }
}

/// A count of a disk's drain that is not a bio: the disk's drop, and with it the freeing
/// of the driver data, waits until it is dropped.
///
/// # Invariants
///
/// `stacked` is the state of a live disk, in whose drain this hold owns one count.
pub(super) struct DiskHold<T: BioDriver> {
    stacked: NonNull<Stacked<T>>,
}

impl<T: BioDriver> DiskHold<T> {
    /// Takes a count of `stacked`'s drain.
    ///
    /// # Safety
    ///
    /// The caller must own a count of the same drain while this runs.
    pub(super) unsafe fn new(stacked: &Stacked<T>) -> Self {
        // SAFETY: By the safety requirements.
        unsafe { stacked.drain.get() };
        // INVARIANT: A count was just taken.
        Self {
            stacked: NonNull::from(stacked),
        }
    }

    /// Returns the disk's state.
    pub(super) fn stacked(&self) -> &Stacked<T> {
        // SAFETY: By the type invariant the count keeps `*stacked` alive while `self` lives.
        unsafe { self.stacked.as_ref() }
    }
}

impl<T: BioDriver> Drop for DiskHold<T> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the hold owns one count, given up once, here. The
        // drain is reached without a reference to the state, which may be freed once the
        // count drops.
        unsafe { Drain::put(&raw const (*self.stacked.as_ptr()).drain) };
    }
}
