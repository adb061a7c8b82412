// SPDX-License-Identifier: GPL-2.0

//! Polled I/O (`REQ_POLLED`): an upper bio whose completion its submitter polls for
//! (io_uring with `IORING_SETUP_IOPOLL`) is linked to the one lower bio that stands in
//! for it, a clone or a bounce bio, which is polled on the lower device.
//!
//! As dm does (`dm_poll_bio`), the upper bio completes only in a poll: the lower bio's
//! completion marks the link done and changes nothing else, and the next poll of the
//! upper bio runs the lower bio's own completion, which ends the upper bio. So the lower
//! bio and its context outlive every poll that can still find them. While linked, the
//! upper bio carries `REQ_DRV`, its `bi_private` points to the link (the submitter's
//! value is kept there and given back first), and its `bi_cookie` is not
//! `BLK_QC_T_NONE`, so that `bio_poll()` calls the disk's `poll_bio`.
//!
//! An upper bio that is not linked is not polled here: its lower bios complete through
//! interrupts (the block layer clears `REQ_POLLED` from a bio it splits), and the
//! submitter's poll finds nothing to do until it ends.

use super::bio::{REQ_DRV, REQ_POLLED};
use core::ffi::{c_int, c_uint, c_void};
use kernel::{
    bindings,
    sync::atomic::{Acquire, Atomic, Relaxed, Release},
};

/// The lower bio has not completed.
const IN_FLIGHT: u32 = 0;
/// The lower bio has completed; its own completion has not run.
const DONE: u32 = 1;
/// A poll has taken the completion over.
const CLAIMED: u32 = 2;

/// The link between a polled upper bio and its lower bio, in the lower bio's context.
///
/// # Invariants
///
/// Between [`link`] and the poll that claims it: `lower` is the linked lower bio, not
/// freed; `end_io` is its completion; `upper_private` the upper bio's `bi_private`
/// before the link.
#[repr(C)]
pub(super) struct PollLink {
    lower: *mut bindings::bio,
    upper_private: *mut c_void,
    end_io: bindings::bio_end_io_t,
    state: Atomic<u32>,
}

/// Returns `true` if `lower`, about to stand in for `upper`, is to be linked: both are
/// polled.
///
/// # Safety
///
/// Both bios must be valid.
pub(super) unsafe fn wants_link(upper: *mut bindings::bio, lower: *mut bindings::bio) -> bool {
    // SAFETY: By the safety requirements.
    unsafe { (*upper).bi_opf & (*lower).bi_opf & REQ_POLLED != 0 }
}

/// Links `lower` to `upper`, so that polls of `upper` poll `lower`, and `upper` ends in
/// the poll that finds `lower` done.
///
/// # Safety
///
/// - `upper` is a bio of a disk whose `poll_bio` is [`poll_bio`], owned by its driver,
///   not linked (the disk clears `REQ_DRV` as bios arrive), and submitted by a poller
///   (`REQ_POLLED`, [`wants_link`]).
/// - `lower` stands in for it, has its completion set, is not yet submitted, and stays
///   allocated until that completion runs.
/// - `link` is valid for writes and lives as long as `lower`.
pub(super) unsafe fn link(
    upper: *mut bindings::bio,
    lower: *mut bindings::bio,
    link: *mut PollLink,
) {
    // SAFETY: By the safety requirements, all three are valid and owned here; nothing
    // polls `upper` before the link is complete, since its submitter polls only once
    // `submit_bio` has returned.
    unsafe {
        link.write(PollLink {
            lower,
            upper_private: (*upper).bi_private,
            end_io: (*lower).bi_end_io,
            state: Atomic::new(IN_FLIGHT),
        });
        (*lower).bi_private = link.cast();
        (*lower).bi_end_io = Some(polled_end_io);
        (*upper).bi_private = link.cast();
        (*upper).__bindgen_anon_1.bi_cookie = !(bindings::BLK_QC_T_NONE as bindings::blk_qc_t);
        (*upper).bi_opf |= REQ_DRV;
    }
}

/// The completion of a linked lower bio: marks the link done, and nothing else.
///
/// # Safety
///
/// Called by the block layer once, for a bio linked by [`link`].
unsafe extern "C" fn polled_end_io(lower: *mut bindings::bio) {
    // SAFETY: A linked bio's `bi_private` is its link, valid until the poll that claims
    // it; nothing is touched after the store, since that poll may free it at once.
    unsafe {
        (*(*lower).bi_private.cast::<PollLink>())
            .state
            .store(DONE, Release)
    };
}

/// The `poll_bio` operation: polls the lower bio linked to `upper` once, and if it is
/// done, unlinks `upper` and runs the lower bio's completion, which ends `upper` or hands
/// it on (a copy-back or a retry on a worker). Returns 1 if it ran the completion, else 0.
///
/// # Safety
///
/// Called by `bio_poll()`, under the RCU read lock, for a bio of a disk whose linked bios
/// are linked by [`link`]. The bio may have completed and been reused since its submitter
/// found it (bios are `SLAB_TYPESAFE_BY_RCU`), so two threads may poll one linked bio, as
/// they may one of dm: the compare-and-exchange on the link's state lets one of them run
/// the completion.
pub(super) unsafe extern "C" fn poll_bio(
    upper: *mut bindings::bio,
    iob: *mut bindings::io_comp_batch,
    flags: c_uint,
) -> c_int {
    // SAFETY: `upper` is a bio; while it carries `REQ_DRV` it is linked and in flight, its
    // link valid (see [`link`]).
    unsafe {
        if (*upper).bi_opf & REQ_DRV == 0 {
            return 0;
        }
        let link = (*upper).bi_private.cast::<PollLink>();
        if (*link).state.load(Relaxed) == IN_FLIGHT {
            // Once: the lower device's queue is hidden from the caller, which decides
            // whether to spin on this disk, as `dm_poll_dm_io` says.
            bindings::bio_poll((*link).lower, iob, flags | bindings::BLK_POLL_ONESHOT);
        }
        if (*link).state.cmpxchg(DONE, CLAIMED, Acquire).is_err() {
            return 0;
        }
        // The upper bio is the submitter's again before it ends; the cookie first, so that
        // `bio_poll()` does not call in again (as `blk_steal_bios` resets it).
        (&raw mut (*upper).__bindgen_anon_1.bi_cookie)
            .write_volatile(bindings::BLK_QC_T_NONE as bindings::blk_qc_t);
        (*upper).bi_opf &= !REQ_DRV;
        (*upper).bi_private = (*link).upper_private;
        let lower = (*link).lower;
        let end_io = (*link).end_io;
        (*lower).bi_private = core::ptr::null_mut();
        (*lower).bi_end_io = end_io;
        if let Some(end_io) = end_io {
            end_io(lower);
        }
    }
    1
}
