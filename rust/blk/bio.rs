// SPDX-License-Identifier: GPL-2.0

//! A read-only view of a `struct bio`.

use kernel::{bindings, types::Opaque};

/// `REQ_NOWAIT` (`enum req_flag_bits`, `include/linux/blk_types.h`).
const REQ_NOWAIT: u32 = 1 << bindings::req_flag_bits___REQ_NOWAIT;

/// A bio, seen through a shared reference.
///
/// # Invariants
///
/// The wrapped `struct bio` is valid and not completed for as long as the reference lives.
#[repr(transparent)]
pub(crate) struct Bio(Opaque<bindings::bio>);

impl Bio {
    /// Creates a reference to the bio at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid bio that is not completed, freed or changed by anybody
    /// else while the returned reference lives.
    pub(super) unsafe fn from_raw<'a>(ptr: *mut bindings::bio) -> &'a Self {
        // SAFETY: `Bio` is a transparent wrapper of `bindings::bio`, and the caller
        // guarantees validity for `'a`.
        unsafe { &*ptr.cast::<Self>() }
    }

    fn as_raw(&self) -> *mut bindings::bio {
        self.0.get()
    }

    /// Returns `true` if the submitter must not be made to sleep (`REQ_NOWAIT`).
    pub(crate) fn is_nowait(&self) -> bool {
        // SAFETY: By the type invariant the bio is valid; `bi_opf` does not change while
        // the driver owns the bio.
        unsafe { (*self.as_raw()).bi_opf & REQ_NOWAIT != 0 }
    }

    /// Returns the number of bytes the bio covers.
    pub(crate) fn size(&self) -> u32 {
        // SAFETY: By the type invariant the bio is valid.
        unsafe { (*self.as_raw()).bi_iter.bi_size }
    }
}
