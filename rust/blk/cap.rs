// SPDX-License-Identifier: GPL-2.0

//! The cap on a disk's bounce memory in flight, which bios reserve before they take pages.

use super::{gfp::Gfp, peak::raise_max, wait_queue::WaitQueue};
use kernel::{
    prelude::*,
    sync::atomic::{Acquire, Atomic, Full, Relaxed},
};

/// A hard cap on bounce memory in flight. Unlike dm-crypt's soft limit per client, a bio
/// over it waits for room; bios get room in the order they queued for it.
///
/// # Invariants
///
/// `in_flight` is the sum of the live [`Reservation`]s and of the bytes they handed to
/// bios with [`Reservation::into_bytes`] and not yet given back; it never exceeds `cap`.
#[pin_data]
pub(crate) struct BounceCap {
    cap: u64,
    in_flight: Atomic<u64>,
    peak: Atomic<u64>,
    waits: Atomic<u64>,
    /// Tickets of bios that queued for room, and how many of them have been served.
    tickets: Atomic<u64>,
    served: Atomic<u64>,
    #[pin]
    room: WaitQueue,
}

/// Bytes of a [`BounceCap`], held until dropped.
///
/// # Invariants
///
/// `bytes` are counted in `cap.in_flight`.
pub(crate) struct Reservation<'a> {
    cap: &'a BounceCap,
    bytes: u32,
}

/// The figures of a disk's bounce memory.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(crate) struct CapFigures {
    /// The cap, in bytes.
    pub(crate) cap: u64,
    /// Bytes reserved now.
    pub(crate) in_flight: u64,
    /// The most bytes ever reserved at once.
    pub(crate) peak: u64,
    /// Reservations that queued for room.
    pub(crate) waits: u64,
    /// The most bytes of chunks held at once, counted when they are allocated and freed.
    pub(crate) memory_peak: u64,
    /// Bytes of free pages kept on the CPUs for the next bios.
    pub(crate) recycled: u64,
}

impl BounceCap {
    /// Creates a cap of `cap` bytes, which must be at least the largest reservation any
    /// bio asks for.
    pub(super) fn new(cap: u64) -> impl PinInit<Self> {
        pin_init!(Self {
            cap,
            in_flight: Atomic::new(0),
            peak: Atomic::new(0),
            waits: Atomic::new(0),
            tickets: Atomic::new(0),
            served: Atomic::new(0),
            room <- WaitQueue::new(),
        })
    }

    /// Reserves `bytes` of the cap. With [`Gfp::NoWait`] it fails when they do not fit at
    /// once, or when bios queue for room; otherwise it sleeps until they fit, and fails
    /// only for more than the cap. Queued bios are served in order, and a new bio queues
    /// behind them rather than take the room first, so that a large bio is not starved by
    /// small ones.
    pub(crate) fn reserve(&self, bytes: u32, gfp: Gfp) -> Option<Reservation<'_>> {
        let queued = self.tickets.load(Acquire) != self.served.load(Acquire);
        if queued || !self.try_reserve(bytes) {
            if gfp == Gfp::NoWait || kernel::warn_on!(u64::from(bytes) > self.cap) {
                return None;
            }
            self.waits.fetch_add(1, Relaxed);
            let ticket = self.tickets.fetch_add(1, Full);
            self.room
                .wait_until(|| self.served.load(Acquire) == ticket && self.try_reserve(bytes));
            // The next in line may fit too.
            self.served.fetch_add(1, Full);
            self.room.wake_all();
        }
        // INVARIANT: `try_reserve` counted the bytes.
        Some(Reservation { cap: self, bytes })
    }

    /// Reserves `bytes` if they fit under the cap now.
    fn try_reserve(&self, bytes: u32) -> bool {
        let mut now = self.in_flight.load(Relaxed);
        loop {
            let want = now + u64::from(bytes);
            if want > self.cap {
                return false;
            }
            match self.in_flight.cmpxchg(now, want, Full) {
                Ok(_) => {
                    raise_max(&self.peak, want);
                    return true;
                }
                Err(seen) => now = seen,
            }
        }
    }

    /// Gives back `bytes` of the cap and wakes bios waiting for room.
    ///
    /// # Safety
    ///
    /// `bytes` must come from [`Reservation::into_bytes`] on a reservation of this cap,
    /// and be given back once.
    pub(super) unsafe fn release(&self, bytes: u32) {
        // The fully ordered subtraction pairs with the waiter's queueing (`wake_all`).
        self.in_flight.fetch_sub(u64::from(bytes), Full);
        self.room.wake_all();
    }

    /// Returns the figures of the cap; those of the pages are the caller's to fill in.
    pub(super) fn figures(&self) -> CapFigures {
        CapFigures {
            cap: self.cap,
            in_flight: self.in_flight.load(Relaxed),
            peak: self.peak.load(Relaxed),
            waits: self.waits.load(Relaxed),
            ..CapFigures::default()
        }
    }
}

impl Reservation<'_> {
    /// Returns `true` if this reserves bytes of `cap`.
    pub(super) fn is_of(&self, cap: &BounceCap) -> bool {
        core::ptr::eq(self.cap, cap)
    }

    /// Gives up the reservation without giving back its bytes; see [`BounceCap::release`].
    pub(super) fn into_bytes(self) -> u32 {
        core::mem::ManuallyDrop::new(self).bytes
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the bytes are counted; they are given back once.
        unsafe { self.cap.release(self.bytes) };
    }
}
