// SPDX-License-Identifier: GPL-2.0

//! The drain: the count of a disk's bios in flight, which its removal waits for.

use super::{disk::BioDriver, helpers, stacked::Stacked};
use core::ptr::NonNull;
use kernel::{bindings, prelude::*, sync::Completion, types::Opaque};

/// Bios handed to the driver and not yet ended, holds ([`DiskHold`]), plus one while the
/// disk accepts bios; completed when the count drops to zero.
///
/// The count is a `percpu_ref`, as `q_usage_counter` is: each CPU counts on a line of its
/// own until the disk goes away, and only then does the count become one atomic that can
/// be seen to reach zero.
///
/// # Invariants
///
/// - `count` was set up by `percpu_ref_init` with [`released`] and this drain as its
///   owner, and is torn down by `percpu_ref_exit` on drop.
/// - `drained` is completed only once the count has dropped to zero, which it does once.
#[pin_data(PinnedDrop)]
pub(super) struct Drain {
    #[pin]
    count: Opaque<bindings::percpu_ref>,
    #[pin]
    drained: Completion,
}

// SAFETY: A `percpu_ref` is used from any CPU.
unsafe impl Send for Drain {}
// SAFETY: See above.
unsafe impl Sync for Drain {}

/// Called by the `percpu_ref` once its count is zero.
///
/// # Safety
///
/// `count` is the count of a live [`Drain`].
unsafe extern "C" fn released(count: *mut bindings::percpu_ref) {
    // SAFETY: By the type invariant of `Drain` the count is its field `count`; the drain
    // lives until its owner, waiting in `Drain::drain`, returns from the wait.
    unsafe {
        let drain = kernel::container_of!(Opaque::cast_from(count).cast_mut(), Drain, count);
        // The owner frees the drain only after `complete_all` has released the
        // completion's lock, which the waiter takes before it returns
        // (Documentation/scheduler/completion.rst).
        (*drain).drained.complete_all();
    }
}

impl Drain {
    /// Creates the count, holding the disk's own.
    pub(super) fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            drained <- Completion::new(),
            count <- Opaque::try_ffi_init(|slot: *mut bindings::percpu_ref| {
                // SAFETY: `slot` is valid for writes and pinned; `percpu_ref_init` sets it
                // up with a count of one.
                kernel::error::to_result(unsafe {
                    bindings::percpu_ref_init(slot, Some(released), 0, bindings::GFP_KERNEL)
                })
            }),
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
        // SAFETY: By the type invariant the count is initialised, and by the safety
        // requirements it is not zero.
        unsafe { helpers::blkbounce_percpu_ref_get(self.count.get()) };
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
        // SAFETY: `drain` is valid while the caller's count is held. `percpu_ref_put`
        // touches the count only before the call of [`released`] that lets the drain be
        // freed, and not after it returns.
        unsafe { helpers::blkbounce_percpu_ref_put(Opaque::cast_into(&raw const (*drain).count)) };
    }

    /// Gives up the disk's own count and waits until every other count is given up.
    ///
    /// # Safety
    ///
    /// The caller must own the disk's own count, and call this once.
    pub(super) unsafe fn drain(&self) {
        // SAFETY: The count is initialised; the caller gives up its own count, which
        // `percpu_ref_kill_and_confirm` drops as it starts making the count one atomic
        // (the switch holds a count of its own until it is done).
        unsafe { bindings::percpu_ref_kill_and_confirm(self.count.get(), None) };
        self.drained.wait_for_completion();
    }
}

#[pinned_drop]
impl PinnedDrop for Drain {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariant the count was initialised; nobody holds a count
        // any more, or the disk was never registered.
        unsafe { bindings::percpu_ref_exit(self.count.get()) };
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
