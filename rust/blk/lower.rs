// SPDX-License-Identifier: GPL-2.0

//! The lower block device, opened exclusively.

use super::helpers;
use core::ptr::NonNull;
use kernel::{bindings, prelude::*};

/// `BLK_OPEN_READ | BLK_OPEN_WRITE` (`include/linux/blkdev.h`).
const OPEN_READ_WRITE: bindings::blk_mode_t = (1 << 0) | (1 << 1);

/// A block device opened for reading and writing, exclusively for one holder.
///
/// # Invariants
///
/// `file` was returned by `bdev_file_open_by_path` and is released by `bdev_fput` on drop.
pub(crate) struct LowerDevice {
    file: NonNull<bindings::file>,
}

// SAFETY: The open file may be used and released from any thread.
unsafe impl Send for LowerDevice {}
// SAFETY: `&LowerDevice` only reads the block device.
unsafe impl Sync for LowerDevice {}

impl LowerDevice {
    /// Checks that `path` names a block device, without opening it.
    ///
    /// Fails with `ENOENT` for a missing path and `ENOTBLK` for anything else.
    pub(crate) fn check_path(path: &CStr) -> Result {
        let mut dev: bindings::dev_t = 0;
        // SAFETY: `path` is NUL-terminated and `dev` is valid for writes.
        kernel::error::to_result(unsafe { bindings::lookup_bdev(path.as_char_ptr(), &mut dev) })
    }

    /// Opens the block device at `path` exclusively for `holder`.
    ///
    /// Fails with `EBUSY` when another holder has it, as the kernel reports.
    pub(crate) fn open<H>(path: &CStr, holder: &H) -> Result<Self> {
        // SAFETY: `path` is NUL-terminated. The holder is only compared, never dereferenced,
        // since no holder operations are given.
        let file = unsafe {
            bindings::bdev_file_open_by_path(
                path.as_char_ptr(),
                OPEN_READ_WRITE,
                core::ptr::from_ref(holder).cast_mut().cast(),
                core::ptr::null(),
            )
        };
        let file = kernel::error::from_err_ptr(file)?;
        // INVARIANT: `file` is a block device file just opened above.
        Ok(Self {
            file: NonNull::new(file).ok_or(ENODEV)?,
        })
    }

    /// Returns the `struct block_device`, for the other wrappers of this module.
    pub(super) fn as_raw(&self) -> *mut bindings::block_device {
        // SAFETY: By the type invariant `file` is an open block device file.
        unsafe { bindings::file_bdev(self.file.as_ptr()) }
    }

    /// Returns the capacity in 512-byte sectors.
    pub(crate) fn nr_sectors(&self) -> u64 {
        // SAFETY: The block device is valid while it is open.
        unsafe { helpers::blkbounce_bdev_nr_sectors(self.as_raw()) }
    }
}

impl Drop for LowerDevice {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the file is open; it is released once, here.
        unsafe { bindings::bdev_fput(self.file.as_ptr()) };
    }
}
