// SPDX-License-Identifier: GPL-2.0

//! The lower block device, opened exclusively.

use super::{helpers, segments::SegmentLimits};
use core::ptr::NonNull;
use kernel::{bindings, prelude::*, ThisModule};

/// `BLK_OPEN_READ` and `BLK_OPEN_WRITE` (`include/linux/blkdev.h`), from `helpers.c`.
fn open_modes() -> (bindings::blk_mode_t, bindings::blk_mode_t) {
    // SAFETY: Constants defined in `helpers.c`, never written.
    unsafe {
        (
            helpers::blkbounce_blk_open_read,
            helpers::blkbounce_blk_open_write,
        )
    }
}

/// What [`LowerDevice::inspect`] found out about a block device.
pub(crate) struct Inspection {
    /// Its disk is one of this module's: stacking on it would bounce twice, or loop.
    pub(crate) is_ours: bool,
    /// Somebody holds it exclusively (a mount, md, dm, another blkbounce device).
    pub(crate) is_held: bool,
    /// It is zoned: blkbounce does not stack on zoned devices.
    pub(crate) is_zoned: bool,
}

/// What the integrity profile of a block device checks (`/sys/block/<dev>/integrity/`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Integrity {
    /// The profile has a guard checksum (`format` is a T10 PI or NVMe PI type), so
    /// protected I/O has a guard over its data.
    pub(crate) guard: bool,
    /// The block layer computes the guard of each write at submission (`write_generate`).
    pub(crate) generated: bool,
    /// The device itself stores and checks the protection information
    /// (`integrity/device_is_integrity_capable`), as NVMe and SCSI DIF devices declare.
    /// That it checks the guard of a write against the data it stores is what the
    /// standards ask of such a device; blkbounce cannot verify it, and does not rely on
    /// it.
    pub(crate) device_checks: bool,
    /// The block layer checks the guard of each read after it completes (`read_verify`).
    pub(crate) verified: bool,
    /// The profile is stacked from the devices of a dm or md device, which may send the
    /// data of one bio to more than one of them.
    pub(crate) stacked: bool,
    /// The device needs stable pages for a check of its own (`BLK_FEAT_STABLE_WRITES`: a
    /// transport data digest, as nvme-tcp's), whose failures are not protection errors.
    pub(crate) other_checks: bool,
}

/// A block device opened for reading and writing, exclusively for one holder.
///
/// # Invariants
///
/// `file` was returned by `bdev_file_open_by_path` and is released by `bdev_fput` on drop;
/// `bdev` is its block device (`file_bdev`), valid while it is open.
pub(crate) struct LowerDevice {
    file: NonNull<bindings::file>,
    bdev: *mut bindings::block_device,
}

// SAFETY: The open file may be used and released from any thread.
unsafe impl Send for LowerDevice {}
// SAFETY: `&LowerDevice` only reads the block device.
unsafe impl Sync for LowerDevice {}

impl LowerDevice {
    /// Looks at the block device at `path` through a shared, read-only open.
    ///
    /// Fails with `ENOENT` for a missing path, `ENOTBLK` for anything but a block device
    /// and `ENXIO` for a device without a disk behind it. Whether it is held is a snapshot:
    /// [`LowerDevice::open`] is what claims it.
    /// `is_ours` tells whether the device is a disk of the module `owner`.
    pub(crate) fn inspect(path: &CStr, owner: &ThisModule) -> Result<Inspection> {
        let (read, _) = open_modes();
        // SAFETY: `path` is NUL-terminated. No holder: the open claims nothing.
        let file = unsafe {
            bindings::bdev_file_open_by_path(
                path.as_char_ptr(),
                read,
                core::ptr::null_mut(),
                core::ptr::null(),
            )
        };
        let file = kernel::error::from_err_ptr(file)?;
        // SAFETY: `file` is an open block device file.
        let bdev = unsafe { bindings::file_bdev(file) };
        let inspection = Inspection {
            // SAFETY: The device is open, so its disk is valid.
            is_ours: unsafe { is_of(bdev, owner) },
            // SAFETY: The device is open.
            is_held: unsafe { !helpers::blkbounce_bdev_holder(bdev).is_null() },
            // SAFETY: The device is open.
            is_zoned: unsafe { helpers::blkbounce_bdev_is_zoned(bdev) },
        };
        // SAFETY: `file` was opened above and is released once, here.
        unsafe { bindings::bdev_fput(file) };
        Ok(inspection)
    }

    /// Opens the block device at `path` exclusively for `holder`.
    ///
    /// Fails with `EBUSY` when another holder has it, as the kernel reports.
    pub(crate) fn open<H>(path: &CStr, holder: &H) -> Result<Self> {
        let (read, write) = open_modes();
        // SAFETY: `path` is NUL-terminated. The holder is only compared, never dereferenced,
        // since no holder operations are given.
        let file = unsafe {
            bindings::bdev_file_open_by_path(
                path.as_char_ptr(),
                read | write,
                core::ptr::from_ref(holder).cast_mut().cast(),
                core::ptr::null(),
            )
        };
        // SAFETY: `file` was just returned by `bdev_file_open_by_path`.
        unsafe { Self::from_opened(file) }
    }

    /// Opens the block device `major:minor` exclusively for `holder`, as
    /// [`LowerDevice::open`] does a path.
    // blkbounce opens paths; the sample driver opens a device number.
    #[allow(dead_code)]
    pub(crate) fn open_by_dev<H>(major: u32, minor: u32, holder: &H) -> Result<Self> {
        // A `dev_t` holds 12 bits of major and 20 of minor.
        if major >= 1 << (32 - bindings::MINORBITS) || minor >= 1 << bindings::MINORBITS {
            return Err(EINVAL);
        }
        let (read, write) = open_modes();
        // SAFETY: As in `open`: the holder is only compared.
        let file = unsafe {
            bindings::bdev_file_open_by_dev(
                (major << bindings::MINORBITS) | minor,
                read | write,
                core::ptr::from_ref(holder).cast_mut().cast(),
                core::ptr::null(),
            )
        };
        // SAFETY: `file` was just returned by `bdev_file_open_by_dev`.
        unsafe { Self::from_opened(file) }
    }

    /// Takes over the result of a `bdev_file_open_by_*` call.
    ///
    /// # Safety
    ///
    /// `file` must be what such a call returned, and not be used elsewhere.
    unsafe fn from_opened(file: *mut bindings::file) -> Result<Self> {
        let file = NonNull::new(kernel::error::from_err_ptr(file)?).ok_or(ENODEV)?;
        // SAFETY: `file` is an open block device file.
        let bdev = unsafe { bindings::file_bdev(file.as_ptr()) };
        // INVARIANT: `file` is a block device file opened by the caller, `bdev` its device.
        Ok(Self { file, bdev })
    }

    /// Returns the `struct block_device`, for the other wrappers of this module.
    pub(super) fn as_raw(&self) -> *mut bindings::block_device {
        self.bdev
    }

    /// Returns `true` if the device's disk is one of the module `owner`'s.
    pub(crate) fn is_of(&self, owner: &ThisModule) -> bool {
        // SAFETY: The block device is valid while it is open.
        unsafe { is_of(self.as_raw(), owner) }
    }

    /// Returns `true` if the device is zoned.
    pub(crate) fn is_zoned(&self) -> bool {
        // SAFETY: The block device is valid while it is open.
        unsafe { helpers::blkbounce_bdev_is_zoned(self.as_raw()) }
    }

    /// Returns a copy of the device's queue limits, as they are now. May sleep.
    pub(super) fn limits(&self) -> bindings::queue_limits {
        let mut lim: bindings::queue_limits = pin_init::zeroed();
        // SAFETY: The block device is valid while it is open; `lim` is valid for writes.
        // The copy is taken under the queue's limits lock, so its fields agree.
        unsafe { helpers::blkbounce_bdev_limits(self.as_raw(), &mut lim) };
        lim
    }

    /// Returns what one bio of the device may carry without a split. May sleep.
    pub(crate) fn segment_limits(&self) -> SegmentLimits {
        let lim = self.limits();
        SegmentLimits::new(
            u32::from(lim.max_segments),
            lim.max_segment_size,
            lim.seg_boundary_mask as u64,
            lim.logical_block_size,
        )
    }

    /// Returns what the device's integrity profile checks, as it is now: an administrator
    /// may turn `read_verify` and `write_generate` off at any time. May sleep.
    pub(crate) fn integrity(&self) -> Integrity {
        let lim = self.limits();
        let (csum, flags) = (lim.integrity.csum_type, lim.integrity.flags);
        // SAFETY: Constants defined in `helpers.c`, never written.
        let (noverify, nogenerate, stacked, capable, stable_writes) = unsafe {
            (
                helpers::blkbounce_blk_integrity_noverify,
                helpers::blkbounce_blk_integrity_nogenerate,
                helpers::blkbounce_blk_integrity_stacked,
                helpers::blkbounce_blk_integrity_device_capable,
                helpers::blkbounce_blk_feat_stable_writes,
            )
        };
        let guard = csum != bindings::blk_integrity_checksum_BLK_INTEGRITY_CSUM_NONE;
        Integrity {
            guard,
            generated: guard && flags & nogenerate == 0,
            verified: guard && flags & noverify == 0,
            device_checks: flags & capable != 0,
            stacked: flags & stacked != 0,
            other_checks: lim.features & stable_writes != 0,
        }
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

/// Returns `true` if the disk of `bdev` was registered by the module `owner`.
///
/// # Safety
///
/// `bdev` must be an open block device.
unsafe fn is_of(bdev: *mut bindings::block_device, owner: &ThisModule) -> bool {
    // SAFETY: An open block device has a valid disk with valid operations.
    let fops_owner = unsafe { (*(*(*bdev).bd_disk).fops).owner };
    fops_owner == owner.as_ptr()
}
