// SPDX-License-Identifier: GPL-2.0

//! A bio submitted to a stacked disk, and its end.

use super::{
    bio::{Bio, REQ_NOWAIT, REQ_POLLED},
    disk::BioDriver,
    drain::DiskHold,
    drain::Drain,
    stacked::Stacked,
    status::BlkStatus,
};
use core::{marker::PhantomData, mem::ManuallyDrop, ops::Deref, ptr::NonNull};
use kernel::{bindings, ffi::c_ulong};

/// A bio submitted to a `Disk<T>`, owned by the driver until it calls
/// [`SubmittedBio::end`]. It is not `Copy`: a bio is ended once.
///
/// # Invariants
///
/// - `bio` is a valid bio submitted to a `Disk<T>` and not yet ended.
/// - It is counted in that disk's drain, so the disk's state outlives it.
/// - `stacked` is that disk's state.
/// - `acct` says whether the bio's I/O accounting is to start, or when it started.
pub(crate) struct SubmittedBio<T: BioDriver> {
    bio: NonNull<bindings::bio>,
    /// Kept here rather than found through `bio->bi_bdev->bd_disk` at completion: one load
    /// from the bio's context, written by the submitting CPU, instead of three dependent
    /// ones, the first on the block device's first line, where the I/O accounting
    /// rewrites `bd_stamp` every tick from any CPU. (With `iostats` on, the accounting's
    /// end reads that line itself.)
    stacked: NonNull<Stacked<T>>,
    acct: Acct,
    _driver: PhantomData<T>,
}

/// The I/O accounting of a bio.
#[derive(Clone, Copy)]
pub(super) enum Acct {
    /// Not accounted: the disk's `iostats` is off, or the bio has no sectors (a flush).
    Off,
    /// Arrived at this time (jiffies); to be counted in flight from when it is sent down
    /// ([`SubmittedBio::start_io_acct`]).
    Pending(c_ulong),
    /// Accounted since this time (jiffies).
    Started(c_ulong),
}

// SAFETY: The bio may be ended from any thread, e.g. a completion handler or a worker.
unsafe impl<T: BioDriver> Send for SubmittedBio<T> {}

impl<T: BioDriver> SubmittedBio<T> {
    /// Takes ownership of `bio`, which `submit_bio` has counted in its disk's drain.
    ///
    /// # Safety
    ///
    /// `bio` must be a valid bio of a live `Disk<T>` whose state is `stacked`, not ended,
    /// and own a count of the disk's drain, which the returned value takes over.
    pub(super) unsafe fn from_raw(
        bio: NonNull<bindings::bio>,
        stacked: &Stacked<T>,
        acct: Acct,
    ) -> Self {
        // INVARIANT: By the safety requirements.
        Self {
            bio,
            stacked: NonNull::from(stacked),
            acct,
            _driver: PhantomData,
        }
    }

    /// Returns the state of the disk the bio was submitted to.
    pub(crate) fn stacked(&self) -> &Stacked<T> {
        // SAFETY: By the type invariant `stacked` is the state of the bio's disk, which
        // outlives the bio, and the bio is not ended while `self` lives.
        unsafe { self.stacked.as_ref() }
    }

    /// Returns the driver data of the disk the bio was submitted to.
    pub(crate) fn driver(&self) -> &T {
        self.stacked().driver()
    }

    /// Returns the raw bio, for the other wrappers of this module.
    pub(super) fn as_raw(&self) -> *mut bindings::bio {
        self.bio.as_ptr()
    }

    /// Takes a count of the disk's drain, so that its state outlives the returned hold
    /// even once this bio has ended.
    pub(super) fn hold_disk(&self) -> DiskHold<T> {
        // SAFETY: The bio owns a count of the same drain.
        unsafe { DiskHold::new(self.stacked()) }
    }

    /// Returns the gendisk the bio was submitted to.
    pub(super) fn gendisk(&self) -> *mut bindings::gendisk {
        // SAFETY: By the type invariant the bio and its disk are valid.
        unsafe { (*(*self.bio.as_ptr()).bi_bdev).bd_disk }
    }

    /// Starts the bio's I/O accounting, if the disk accounts it and it has not started:
    /// called when the bio is committed to the lower device, so that a bio turned away
    /// first (`BLK_STS_AGAIN`, then resubmitted) is counted once. Its time counts from
    /// its arrival, waits for bounce memory included, as dm stamps `start_time`.
    pub(super) fn start_io_acct(&mut self) {
        if let Acct::Pending(arrived) = self.acct {
            let bio = self.bio.as_ptr();
            // SAFETY: By the type invariant the bio is valid and its disk live.
            let start =
                unsafe { bindings::bdev_start_io_acct((*bio).bi_bdev, self.req_op(), arrived) };
            self.acct = Acct::Started(start);
        }
    }

    /// Makes the bio one that may wait and that nobody polls for: clears `REQ_NOWAIT` and
    /// `REQ_POLLED`, for a bio handed on to a worker.
    pub(super) fn make_blocking(&mut self) {
        // SAFETY: By the type invariant the bio is valid and owned by the driver. It is not
        // linked for polling (a linked bio is unlinked before its completion hands it on),
        // so `bio_poll()` stops at its cookie and no `poll_bio` reads its flags.
        unsafe { (*self.bio.as_ptr()).bi_opf &= !(REQ_NOWAIT | REQ_POLLED) };
    }

    /// Completes the bio with `status`.
    pub(crate) fn end(self, status: BlkStatus) {
        let this = ManuallyDrop::new(self);
        let drain: *const Drain = &this.stacked().drain;
        let raw = this.bio.as_ptr();
        // SAFETY: By the type invariant the bio is valid and not ended; it is ended once,
        // here, as `self` is consumed. Its accounting (of its own disk) ends first, while
        // its size is still the one it started with.
        unsafe {
            if let Acct::Started(start) = this.acct {
                bindings::bio_end_io_acct_remapped(raw, start, (*raw).bi_bdev);
            }
            if !status.is_ok() {
                (*raw).bi_status = status.as_raw();
            }
            bindings::bio_endio(raw);
        }
        // SAFETY: The bio owned a count, so the drain is still valid here; nothing touches
        // it after this call, since the disk may be freed as soon as the count drops.
        unsafe { Drain::put(drain) };
    }
}

impl<T: BioDriver> Deref for SubmittedBio<T> {
    type Target = Bio;

    fn deref(&self) -> &Bio {
        // SAFETY: By the type invariant the bio is valid and not ended while `self` lives.
        unsafe { Bio::from_raw(self.bio.as_ptr()) }
    }
}

impl<T: BioDriver> Drop for SubmittedBio<T> {
    /// A bio that the driver forgot to end is a bug: it is reported, then failed rather than
    /// left to hang its submitter.
    fn drop(&mut self) {
        kernel::warn_on!(true);
        let bio = SubmittedBio::<T> {
            bio: self.bio,
            stacked: self.stacked,
            acct: self.acct,
            _driver: PhantomData,
        };
        bio.end(BlkStatus::io_error());
    }
}
