// SPDX-License-Identifier: GPL-2.0

//! Block layer completion status (`blk_status_t`).

use super::helpers;
use kernel::bindings;

/// The status a bio completes with.
///
/// Errors of the lower device are carried unchanged from the lower bio to the upper one.
/// The values come from C (`include/linux/blk_types.h`), never from numbers written here.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct BlkStatus(bindings::blk_status_t);

impl BlkStatus {
    /// Success (`BLK_STS_OK`).
    pub(crate) const OK: Self = Self(bindings::BLK_STS_OK as bindings::blk_status_t);

    /// A generic I/O error (`BLK_STS_IOERR`).
    pub(crate) fn io_error() -> Self {
        // SAFETY: A constant defined in `helpers.c`, never written.
        Self(unsafe { helpers::blkbounce_blk_sts_ioerr })
    }

    /// Try again: what a `REQ_NOWAIT` bio gets instead of sleeping (`BLK_STS_AGAIN`).
    pub(crate) fn again() -> Self {
        // SAFETY: A constant defined in `helpers.c`, never written.
        Self(unsafe { helpers::blkbounce_blk_sts_again })
    }

    /// The device found the data and its protection information disagree
    /// (`BLK_STS_PROTECTION`, `EILSEQ`): a PI guard or reference tag check failed.
    pub(crate) fn protection() -> Self {
        // SAFETY: A constant defined in `helpers.c`, never written.
        Self(unsafe { helpers::blkbounce_blk_sts_protection })
    }

    /// `BLK_STS_INVAL` (`EINVAL`): a bio the device cannot carry out as asked.
    pub(crate) fn invalid() -> Self {
        // SAFETY: A constant defined in `helpers.c`, never written.
        Self(unsafe { helpers::blkbounce_blk_sts_inval })
    }

    /// Wraps the raw status of a completed bio.
    pub(super) fn from_raw(raw: bindings::blk_status_t) -> Self {
        Self(raw)
    }

    /// Returns the raw value for the C side.
    pub(super) fn as_raw(self) -> bindings::blk_status_t {
        self.0
    }

    /// Returns `true` for success.
    pub(crate) fn is_ok(self) -> bool {
        self == Self::OK
    }
}
