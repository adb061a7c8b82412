// SPDX-License-Identifier: GPL-2.0

//! The clone path: a bio passed through to the lower device as a clone, and its end.

use super::{
    bio::Bio,
    bioset::BioSet,
    disk::BioDriver,
    gfp::Gfp,
    helpers,
    poll::{self, PollLink},
    stacked::Stacked,
    status::BlkStatus,
    submitted_bio::SubmittedBio,
    workqueue::{init_and_queue_raw, Workqueue},
};
use core::mem::MaybeUninit;
use kernel::{bindings, prelude::*, static_lock_class};

/// What a clone carries in front of it: the upper bio it stands in for, a work item for a
/// clone that failed with an error the driver retries, and the link of a polled clone.
/// A piece that a bounce bio is cut into comes from the clone bio set too, and leaves its
/// context unused.
///
/// # Invariants
///
/// `upper` is initialised by [`SubmittedBio::submit_clone`] and taken back once, by
/// `clone_end_io` or by `clone_retry_fn`, before the clone is freed. `poll` is
/// initialised if the clone is linked ([`poll::link`]).
#[repr(C)]
pub(super) struct CloneCtx<T: BioDriver> {
    /// First, so that the work function finds the context at the work item's address.
    work: bindings::work_struct,
    upper: MaybeUninit<SubmittedBio<T>>,
    poll: MaybeUninit<PollLink>,
}

/// A driver that sends clones of its bios to its lower device.
pub(crate) trait CloneTarget: BioDriver {
    /// Called, possibly in interrupt context, when the clone of `bio` has completed with
    /// `status` and is not retried; the clone is already freed. By default the bio ends
    /// with the lower device's status, unchanged.
    fn clone_done(bio: SubmittedBio<Self>, status: BlkStatus) {
        bio.end(status);
    }

    /// Called, possibly in interrupt context, when the clone of `upper` has failed with
    /// `status`. Returns `true` to hand the bio to [`CloneTarget::clone_retry`] on the
    /// disk's retry queue ([`super::disk::DiskOptions::retry_queue`]), `false` (the
    /// default) to end it through `clone_done`; so does `true` on a disk made without a
    /// retry queue, with a warning.
    fn retry(&self, _upper: &Bio, _status: BlkStatus) -> bool {
        false
    }

    /// Called in process context, on the disk's retry queue, with the bio whose clone
    /// failed. The disk's state outlives the call, even if the bio ends during it. The bio
    /// is a blocking one here: `REQ_NOWAIT` and `REQ_POLLED` are cleared, since its
    /// submitter neither waits nor polls for this worker.
    fn clone_retry(_stacked: &Stacked<Self>, bio: SubmittedBio<Self>) {
        kernel::warn_on!(true);
        bio.end(BlkStatus::io_error());
    }
}

impl<T: CloneTarget> SubmittedBio<T> {
    /// Sends a clone of this bio (same pages and flags) to the lower device, at the same
    /// sector plus the disk's offset.
    ///
    /// On allocation failure the bio is handed back, not ended: only a [`Gfp::NoWait`]
    /// allocation can fail, since the bio set's reserve serves the others.
    pub(crate) fn submit_clone(mut self, gfp: Gfp) -> Result<(), (Self, Error)> {
        let stacked = self.stacked();
        let offset = stacked.offset();
        // SAFETY: The bio is valid and not ended; the lower device is open and the bio set
        // initialised, both for as long as the disk's state lives.
        let clone = unsafe {
            bindings::bio_alloc_clone(
                stacked.lower().as_raw(),
                self.as_raw(),
                gfp.as_raw(),
                stacked.clones().as_raw(),
            )
        };
        if clone.is_null() {
            return Err((self, ENOMEM));
        }
        self.start_io_acct();
        let disk = self.gendisk();
        let sector = self.sector();
        let upper = self.as_raw();
        // SAFETY: `clone` is a new bio owned here, from the clone bio set, so it has a
        // `CloneCtx<T>`. The upper bio travels there until `clone_end_io` or
        // `clone_retry_fn` takes it back, once; a polled one is linked to the clone, whose
        // context lives until its completion has run.
        unsafe {
            let ctx = BioSet::<CloneCtx<T>>::ctx_of(clone);
            (&raw mut (*ctx).upper).write(MaybeUninit::new(self));
            (*clone).bi_iter.bi_sector += offset;
            (*clone).bi_end_io = Some(clone_end_io::<T>);
            if poll::wants_link(upper, clone) {
                poll::link(upper, clone, (&raw mut (*ctx).poll).cast());
            }
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
    // SAFETY: `clone` comes from the clone bio set and is valid until `bio_put`, and so is
    // its context.
    let (ctx, status) = unsafe {
        (
            BioSet::<CloneCtx<T>>::ctx_of(clone),
            BlkStatus::from_raw((*clone).bi_status),
        )
    };
    if !status.is_ok() {
        // The work may run, end the upper bio and let the disk free its state before
        // `queue_raw` returns: take the queue's address now, and hold no reference into
        // the disk's state across the call.
        let queue = {
            // SAFETY: The upper bio stays in the context until it is taken back below or
            // by `clone_retry_fn`; the reference ends here.
            let upper = unsafe { (*ctx).upper.assume_init_ref() };
            let stacked = upper.stacked();
            let queue = stacked.retry_queue().map(Workqueue::as_raw);
            let retry = stacked.driver().retry(upper, status);
            // A retry without a queue to run it on is the driver's bug: the bio ends.
            if kernel::warn_on!(retry && queue.is_none()) {
                None
            } else {
                queue.filter(|_| retry)
            }
        };
        if let Some(wq) = queue {
            // SAFETY: The completed clone, with its context, is owned here and handed to
            // the work, which takes it and the upper bio back; its work item is queued
            // once. The queue, the disk's own, is alive when the call starts, since the
            // upper bio is counted; the disk destroys it, waiting for its work, only after
            // the drain. `__queue_work` holds the RCU read lock throughout, which
            // `destroy_workqueue` waits for before it frees the queue.
            unsafe {
                init_and_queue_raw(
                    wq,
                    &raw mut (*ctx).work,
                    clone_retry_fn::<T>,
                    c"blk_clone_retry",
                    static_lock_class!(),
                );
            }
            return;
        }
    }
    // SAFETY: The upper bio is taken back once, here; the clone is not used after
    // `bio_put`.
    let upper = unsafe {
        let upper = (*ctx).upper.assume_init_read();
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
    // SAFETY: `work` is the first field of a `CloneCtx<T>` (`repr(C)`), whose clone is
    // owned here; its upper bio is taken back once.
    let (clone, mut upper) = unsafe {
        let ctx = work.cast::<CloneCtx<T>>();
        (
            BioSet::<CloneCtx<T>>::bio_of(ctx),
            (*ctx).upper.assume_init_read(),
        )
    };
    // The retry may end the bio before it returns, which alone would let the disk free
    // its state (and close the lower device) during the call.
    let hold = upper.hold_disk();
    // SAFETY: The clone is owned here and used no more. It goes back to the bio set before
    // the retry, which may need a clone of the same set. Its work item, which is running,
    // may come back as a new item: see `init_and_queue_raw`.
    unsafe { bindings::bio_put(clone) };
    // Its submitter neither waits nor polls for this worker.
    upper.make_blocking();
    T::clone_retry(hold.stacked(), upper);
    drop(hold);
}
