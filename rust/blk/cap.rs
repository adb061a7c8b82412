// SPDX-License-Identifier: GPL-2.0

//! The cap on a disk's bounce memory in flight, which bios reserve before they take pages.

use super::{gfp::Gfp, peak::raise_max, percpu::PerCpuCounters, wait_queue::WaitQueue};
use kernel::{
    prelude::*,
    sync::atomic::{Acquire, Atomic, Full, Relaxed},
};

/// The most credit a CPU takes from the cap beyond what a bio asks: 256 KiB, a queue depth
/// of 64 bounced 4 KiB I/Os.
const MAX_BATCH: u64 = 256 << 10;

/// A hard cap on bounce memory in flight. Unlike dm-crypt's soft limit per client, a bio
/// over it waits for room; bios get room in the order they queued for it.
///
/// Each CPU holds credit: bytes taken from the cap that its bios reserve and give back
/// without touching a line other CPUs write. A CPU short of credit takes what its bio
/// needs plus a batch, while a batch fits under the cap; near the cap it takes only what
/// the bio needs, after taking back the credit of every CPU. A CPU whose credit grows
/// beyond two batches gives back all but one, and all of it while bios wait for room.
///
/// What every bio reads (the cap, the queue of waiters) and what only the slow path writes
/// (`taken`, the peak, the waits) are on cache lines of their own.
///
/// # Invariants
///
/// - `taken` is the sum of the live [`Reservation`]s, of the bytes they handed to bios
///   with [`Reservation::into_bytes`] and not yet given back, and of the CPUs' credit; it
///   never exceeds `cap`.
/// - `batch` is at most `cap`.
#[pin_data]
pub(crate) struct BounceCap {
    cap: u64,
    batch: u64,
    /// Each CPU's credit, in bytes.
    credit: PerCpuCounters<1>,
    /// Tickets of bios that queued for room, and how many of them have been served.
    queue: Queue,
    taken: Taken,
    #[pin]
    room: WaitQueue,
}

/// The queue of bios that wait for room: read by every bio, written by those that wait.
#[repr(align(64))]
struct Queue {
    tickets: Atomic<u64>,
    served: Atomic<u64>,
}

/// What the slow path writes.
#[repr(align(64))]
struct Taken {
    bytes: Atomic<u64>,
    /// The most bytes reserved at once, sampled when a CPU takes from the cap or gives
    /// credit back.
    peak: Atomic<u64>,
    waits: Atomic<u64>,
}

/// Bytes of a [`BounceCap`], held until dropped.
///
/// # Invariants
///
/// `bytes` are counted in `cap.taken`, and in no CPU's credit.
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
    /// The most bytes reserved at once, sampled when a CPU took from the cap.
    pub(crate) peak: u64,
    /// Reservations that queued for room.
    pub(crate) waits: u64,
    /// The most bytes of chunks held at once, sampled when chunks came from the page
    /// allocator or the reserve.
    pub(crate) memory_peak: u64,
    /// Bytes of free pages kept on the CPUs for the next bios.
    pub(crate) recycled: u64,
}

impl BounceCap {
    /// Creates a cap of `cap` bytes, which must be at least the largest reservation any
    /// bio asks for.
    pub(super) fn new(cap: u64) -> impl PinInit<Self, Error> {
        let cpus = (super::percpu::possible_cpus().count() as u64).max(1);
        // A quarter of the cap spread over the CPUs at most, so that credit strands little
        // of a small cap.
        let batch = MAX_BATCH.min(cap / 4 / cpus);
        try_pin_init!(Self {
            cap,
            batch,
            credit: PerCpuCounters::new()?,
            queue: Queue {
                tickets: Atomic::new(0),
                served: Atomic::new(0),
            },
            taken: Taken {
                bytes: Atomic::new(0),
                peak: Atomic::new(0),
                waits: Atomic::new(0),
            },
            room <- WaitQueue::new(),
        })
    }

    /// Reserves `bytes` of the cap. With [`Gfp::NoWait`] it fails when they do not fit at
    /// once, or when bios queue for room; otherwise it sleeps until they fit, and fails
    /// only for more than the cap. Queued bios are served in order, and a new bio queues
    /// behind them rather than take the room first, so that a large bio is not starved by
    /// small ones.
    #[inline]
    pub(crate) fn reserve(&self, bytes: u32, gfp: Gfp) -> Option<Reservation<'_>> {
        let queued = self.queue.tickets.load(Acquire) != self.queue.served.load(Acquire);
        if queued || !self.take_credit(u64::from(bytes)) {
            return self.reserve_slow(bytes, gfp, queued);
        }
        // INVARIANT: `take_credit` moved the bytes from the credit.
        Some(Reservation { cap: self, bytes })
    }

    /// Takes `bytes` from the local CPU's credit, if it holds them.
    #[inline]
    fn take_credit(&self, bytes: u64) -> bool {
        let credit = &self.credit.local()[0];
        let mut now = credit.load(Relaxed);
        while now >= bytes {
            match credit.cmpxchg(now, now - bytes, Relaxed) {
                Ok(_) => return true,
                Err(seen) => now = seen,
            }
        }
        false
    }

    /// Reserves `bytes` from the cap itself, or waits in line for them.
    #[cold]
    fn reserve_slow(&self, bytes: u32, gfp: Gfp, queued: bool) -> Option<Reservation<'_>> {
        if queued || !self.take(u64::from(bytes)) {
            if gfp == Gfp::NoWait || kernel::warn_on!(u64::from(bytes) > self.cap) {
                return None;
            }
            self.taken.waits.fetch_add(1, Relaxed);
            // Fully ordered: a CPU that gives back bytes after this either sees the ticket
            // (and gives its credit back to the cap) or has added them to its credit
            // before `take` takes the credit back.
            let ticket = self.queue.tickets.fetch_add(1, Full);
            self.room.wait_until(|| {
                self.queue.served.load(Acquire) == ticket && self.take(u64::from(bytes))
            });
            // The next in line may fit too.
            self.queue.served.fetch_add(1, Full);
            self.room.wake_all();
        }
        // INVARIANT: `take` counted the bytes in `taken`, not in any credit.
        Some(Reservation { cap: self, bytes })
    }

    /// Takes `bytes` from the cap, with a batch of credit for the local CPU if that fits
    /// too; near the cap, takes the credit of every CPU back first.
    fn take(&self, bytes: u64) -> bool {
        if self.take_from_cap(bytes) || (self.take_back_credit() > 0 && self.take_from_cap(bytes)) {
            // Off the hot path: a sample of the bytes reserved now.
            self.sample_peak(self.reserved());
            return true;
        }
        false
    }

    /// Takes `bytes` from the cap if they fit under it now, and a batch of credit for the
    /// local CPU if that fits too.
    fn take_from_cap(&self, bytes: u64) -> bool {
        let mut now = self.taken.bytes.load(Relaxed);
        loop {
            let want = now + bytes;
            if want > self.cap {
                return false;
            }
            let batch = if want + self.batch <= self.cap {
                self.batch
            } else {
                0
            };
            match self.taken.bytes.cmpxchg(now, want + batch, Full) {
                Ok(_) => {
                    if batch > 0 {
                        self.credit.local()[0].fetch_add(batch, Relaxed);
                    }
                    return true;
                }
                Err(seen) => now = seen,
            }
        }
    }

    /// Gives the credit of every CPU back to the cap; returns how many bytes.
    fn take_back_credit(&self) -> u64 {
        let credit = self
            .credit
            .each()
            .map(|c| c[0].xchg(0, Full))
            .fold(0u64, u64::wrapping_add);
        if credit > 0 {
            self.taken.bytes.fetch_sub(credit, Full);
        }
        credit
    }

    /// Returns the bytes reserved now: taken from the cap and not held as credit. A racy
    /// sum, for statistics.
    fn reserved(&self) -> u64 {
        let credit = self.credit.sum(0);
        self.taken.bytes.load(Relaxed).saturating_sub(credit)
    }

    /// Gives back `bytes` of the cap: to the local CPU's credit, and from there to the cap
    /// if bios wait for room (waking them) or the credit exceeds two batches.
    ///
    /// # Safety
    ///
    /// `bytes` must come from [`Reservation::into_bytes`] on a reservation of this cap,
    /// and be given back once.
    #[inline]
    pub(super) unsafe fn release(&self, bytes: u32) {
        let credit = &self.credit.local()[0];
        // Fully ordered: pairs with the ticket of a bio that queues for room.
        let now = credit.fetch_add(u64::from(bytes), Full) + u64::from(bytes);
        if self.queue.tickets.load(Relaxed) != self.queue.served.load(Relaxed) {
            self.give_back(credit.xchg(0, Full));
            self.room.wake_all();
        } else if now > 2 * self.batch && credit.cmpxchg(now, self.batch, Relaxed).is_ok() {
            self.give_back(now - self.batch);
            // A bio may have queued since the tickets were read, and failed to take room
            // that only this give-back makes: the fully ordered subtraction, then the
            // barrier of `wake_all`, pair with the barrier of its wait (`set_current_state`)
            // before it checks for room, so either it sees the room or this sees it waiting.
            self.room.wake_all();
            // Rarely: a sample of the bytes reserved just before this release.
            self.sample_peak(self.reserved() + u64::from(bytes));
        }
    }

    /// Raises the peak to `bytes`, a racy sample of the bytes reserved: at most the cap,
    /// which no reservation exceeds.
    fn sample_peak(&self, bytes: u64) {
        raise_max(&self.taken.peak, bytes.min(self.cap));
    }

    /// Gives `bytes` of credit back to the cap.
    #[cold]
    fn give_back(&self, bytes: u64) {
        // The fully ordered subtraction pairs with the waiter's queueing (`wake_all`).
        self.taken.bytes.fetch_sub(bytes, Full);
    }

    /// Returns the figures of the cap; those of the pages are the caller's to fill in.
    pub(super) fn figures(&self) -> CapFigures {
        CapFigures {
            cap: self.cap,
            in_flight: self.reserved(),
            peak: self
                .taken
                .peak
                .load(Relaxed)
                .max(self.reserved().min(self.cap)),
            waits: self.taken.waits.load(Relaxed),
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
