// SPDX-License-Identifier: GPL-2.0

//! A bio-based disk whose `submit_bio` is a Rust trait method.
//!
//! Upstream `GenDisk` is blk-mq only and leaves `submit_bio` and `owner` unset. [`Disk`]
//! registers a bio-based `struct gendisk` whose operations come from a [`BioDriver`], with
//! `owner` set to this module, so the module cannot be unloaded while the disk is open.
//! Every bio handed to the driver is a [`SubmittedBio`], which must be ended exactly once;
//! [`Disk`] counts them and its drop waits until all have ended.

use super::{bio::Bio, helpers, lower::LowerDevice, status::BlkStatus};
use core::{marker::PhantomData, mem::ManuallyDrop, ops::Deref, ptr::NonNull};
use kernel::{
    bindings,
    prelude::*,
    static_lock_class,
    sync::{
        atomic::{Atomic, Full},
        Arc, Completion,
    },
    types::ForeignOwnable,
};

/// A bio-based block driver stacked on a lower device.
pub(crate) trait BioDriver: Send + Sync + Sized + 'static {
    /// The device whose capacity and queue limits the disk takes over, and where bios go.
    /// It must be the same device for as long as the driver data lives.
    fn lower(&self) -> &LowerDevice;

    /// Handles a bio submitted to the disk; it must be ended, now or later. The disk
    /// declares `BLK_FEAT_NOWAIT`: a `REQ_NOWAIT` bio must not make the submitter sleep,
    /// and is ended with `BLK_STS_AGAIN` where it would.
    fn submit_bio(&self, bio: SubmittedBio<Self>);
}

/// Shared between the disk and its bios: the driver, and the count of bios in flight.
#[pin_data]
struct DiskShared<T: BioDriver> {
    #[pin]
    driver: T,
    /// Bios handed to the driver and not yet ended, plus one while the disk accepts bios.
    inflight: Atomic<usize>,
    /// Completed when `inflight` drops to zero.
    #[pin]
    drained: Completion,
}

impl<T: BioDriver> DiskShared<T> {
    fn put_inflight(&self) {
        if self.inflight.fetch_sub(1, Full) == 1 {
            self.drained.complete_all();
        }
    }
}

/// A registered bio-based disk.
///
/// # Invariants
///
/// - `gendisk` is valid and was added with `device_add_disk`.
/// - `gendisk.private_data` holds an `Arc<DiskShared<T>>` made by `into_foreign`, and `fops`
///   is `DiskVTable::<T>::TABLE`.
pub(crate) struct Disk<T: BioDriver> {
    gendisk: NonNull<bindings::gendisk>,
    shared: Arc<DiskShared<T>>,
}

// SAFETY: `Disk` owns its gendisk; the driver data it shares is `Send + Sync`.
unsafe impl<T: BioDriver> Send for Disk<T> {}
// SAFETY: `&Disk` only reads the gendisk's open count and name.
unsafe impl<T: BioDriver> Sync for Disk<T> {}

/// How a disk's queue limits differ from its lower device's.
#[derive(Clone, Copy, Default)]
pub(crate) struct DiskOptions {
    /// Declare stable writes (`BLK_FEAT_STABLE_WRITES`) even if the lower device does not,
    /// so that the page cache keeps pages stable during writeback.
    pub(crate) stable_writes: bool,
    /// Split bios larger than this many bytes (see [`SubmittedBio::split_to_limits`]).
    pub(crate) max_io_bytes: Option<u32>,
}

/// `BLK_FEAT_STABLE_WRITES` (`include/linux/blkdev.h`).
const BLK_FEAT_STABLE_WRITES: bindings::blk_features_t = 1 << 5;
/// `BLK_FEAT_NOWAIT`.
const BLK_FEAT_NOWAIT: bindings::blk_features_t = 1 << 7;

impl<T: BioDriver> Disk<T> {
    /// Creates the driver data, then the disk `name` over the driver's lower device, with
    /// its capacity and stacked queue limits, adjusted by `options`.
    pub(crate) fn new(
        name: &CStr,
        options: DiskOptions,
        driver: impl PinInit<T, Error>,
    ) -> Result<Self> {
        let shared = Arc::pin_init(
            try_pin_init!(DiskShared {
                driver <- driver,
                inflight: Atomic::new(1),
                drained <- Completion::new(),
            }),
            GFP_KERNEL,
        )?;

        let lower = shared.driver.lower();
        let name_bytes = name.to_bytes();
        // SAFETY: An all-zero `queue_limits` is a valid value to start from.
        let mut lim: bindings::queue_limits = unsafe { core::mem::zeroed() };
        // SAFETY: `lim` is a valid, exclusively borrowed `queue_limits`.
        unsafe { bindings::blk_set_stacking_limits(&mut lim) };
        // Stacking keeps the larger alignment, and the default is 511: start from none, so
        // the disk asks exactly what the lower device asks of the pages it is given.
        lim.dma_alignment = 0;
        // Drivers end `REQ_NOWAIT` bios with `BLK_STS_AGAIN` rather than block (see
        // [`BioDriver::submit_bio`]); stacking keeps this only if the lower device has it
        // too. Without it io_uring hands every I/O to a worker thread.
        lim.features |= BLK_FEAT_NOWAIT;
        // SAFETY: `lim` is valid, the lower device is open, and `name` is NUL-terminated.
        unsafe {
            bindings::queue_limits_stack_bdev(&mut lim, lower.as_raw(), 0, name.as_char_ptr())
        };
        if options.stable_writes {
            lim.features |= BLK_FEAT_STABLE_WRITES;
        }
        if let Some(max) = options.max_io_bytes {
            let sectors = max >> bindings::SECTOR_SHIFT;
            lim.max_hw_sectors = lim.max_hw_sectors.min(sectors);
            lim.max_sectors = lim.max_sectors.min(sectors);
        }

        // SAFETY: `lim` is valid; the lock class key is static.
        let gendisk = unsafe {
            bindings::__blk_alloc_disk(
                &mut lim,
                bindings::NUMA_NO_NODE,
                static_lock_class!().as_ptr(),
            )
        };
        let gendisk = NonNull::new(kernel::error::from_err_ptr(gendisk)?).ok_or(ENOMEM)?;
        let raw = gendisk.as_ptr();

        // SAFETY: `raw` is a valid disk that is not added yet, so this thread owns it.
        unsafe {
            let disk_name = &mut (*raw).disk_name;
            if name_bytes.len() >= disk_name.len() {
                bindings::put_disk(raw);
                return Err(ENAMETOOLONG);
            }
            for (dst, src) in disk_name.iter_mut().zip(name_bytes) {
                *dst = *src as kernel::ffi::c_char;
            }
            (*raw).fops = &DiskVTable::<T>::TABLE;
            (*raw).flags |= bindings::GENHD_FL_NO_PART as kernel::ffi::c_int;
            (*raw).private_data = shared.clone().into_foreign();
            bindings::set_capacity(raw, lower.nr_sectors());
        }

        // SAFETY: `raw` is a valid, fully set up disk; no parent device, no extra groups.
        let ret =
            unsafe { bindings::device_add_disk(core::ptr::null_mut(), raw, core::ptr::null_mut()) };
        if let Err(e) = kernel::error::to_result(ret) {
            // SAFETY: The disk was not added; `put_disk` frees it. `private_data` came from
            // `into_foreign` above and is not used again.
            unsafe {
                let data = (*raw).private_data;
                bindings::put_disk(raw);
                drop(Arc::<DiskShared<T>>::from_foreign(data));
            }
            return Err(e);
        }

        // INVARIANT: The disk was added above with `fops` and `private_data` set.
        Ok(Self { gendisk, shared })
    }

    /// Returns the driver data.
    pub(crate) fn driver(&self) -> &T {
        &self.shared.driver
    }

    /// Returns `true` while anybody has the disk open.
    pub(crate) fn is_open(&self) -> bool {
        // SAFETY: By the type invariant `gendisk` is valid.
        unsafe { helpers::blkbounce_disk_openers(self.gendisk.as_ptr()) != 0 }
    }
}

impl<T: BioDriver> Drop for Disk<T> {
    fn drop(&mut self) {
        let raw = self.gendisk.as_ptr();
        // SAFETY: By the type invariant the disk was added. `del_gendisk` returns once no
        // `submit_bio` call runs any more and no new one can start.
        unsafe { bindings::del_gendisk(raw) };
        // Drop the disk's own count and wait for every bio still in flight to end.
        self.shared.put_inflight();
        self.shared.drained.wait_for_completion();
        // SAFETY: By the type invariant, `private_data` came from `into_foreign`; no bio
        // refers to it any more.
        unsafe {
            let data = (*raw).private_data;
            bindings::put_disk(raw);
            drop(Arc::<DiskShared<T>>::from_foreign(data));
        }
    }
}

/// A bio submitted to a [`Disk`], owned by the driver until it calls [`SubmittedBio::end`].
///
/// # Invariants
///
/// - `bio` is a valid bio submitted to a `Disk<T>` and not yet ended.
/// - It is counted in that disk's `inflight`, so the disk and its driver data outlive it.
pub(crate) struct SubmittedBio<T: BioDriver> {
    bio: NonNull<bindings::bio>,
    _driver: PhantomData<T>,
}

// SAFETY: The bio may be ended from any thread, e.g. a completion handler or a worker.
unsafe impl<T: BioDriver> Send for SubmittedBio<T> {}

/// Returns what the disk `bio` was submitted to shares with its bios.
///
/// # Safety
///
/// `bio` must be a bio submitted to a `Disk<T>` and not yet ended; the reference must not
/// outlive it.
unsafe fn shared_of<'a, T: BioDriver>(bio: *mut bindings::bio) -> &'a DiskShared<T> {
    // SAFETY: By the safety requirements the disk is a live `Disk<T>`, whose
    // `private_data` holds an `Arc<DiskShared<T>>` for longer than the bio.
    unsafe {
        let disk = (*(*bio).bi_bdev).bd_disk;
        let shared: *const DiskShared<T> = &*Arc::<DiskShared<T>>::borrow((*disk).private_data);
        &*shared
    }
}

/// Returns the driver data of the disk `bio` was submitted to.
///
/// # Safety
///
/// As for [`shared_of`].
pub(super) unsafe fn driver_of<'a, T: BioDriver>(bio: *mut bindings::bio) -> &'a T {
    // SAFETY: The caller meets the requirements of `shared_of`.
    unsafe { &shared_of::<T>(bio).driver }
}

impl<T: BioDriver> SubmittedBio<T> {
    /// Splits off the front of the bio that fits the disk's queue limits (`max_sectors`
    /// and the others) and returns it; the block layer resubmits the rest, which comes
    /// back through `submit_bio`. Returns `None` if the block layer ended the bio itself,
    /// with an error.
    pub(crate) fn split_to_limits(self) -> Option<Self> {
        let this = ManuallyDrop::new(self);
        let shared: *const DiskShared<T> = this.shared();
        // SAFETY: The bio is valid and not ended. If a front is split off, it is a new bio
        // of the same disk that stands in for this one in the count: this one comes back
        // through `submit_bio` and is counted again there.
        let front = unsafe { bindings::bio_split_to_limits(this.bio.as_ptr()) };
        match NonNull::new(front) {
            // INVARIANT: The front is a valid bio of the disk, not ended, and counted.
            Some(bio) => Some(Self {
                bio,
                _driver: PhantomData,
            }),
            None => {
                // SAFETY: The bio was counted and has been ended by the block layer.
                unsafe { (*shared).put_inflight() };
                None
            }
        }
    }

    fn shared(&self) -> &DiskShared<T> {
        // SAFETY: By the type invariant the bio belongs to a live `Disk<T>` and is not
        // ended while `self` lives.
        unsafe { shared_of(self.bio.as_ptr()) }
    }

    /// Returns the driver data of the disk the bio was submitted to.
    pub(crate) fn driver(&self) -> &T {
        &self.shared().driver
    }

    /// Returns the raw bio, for the other wrappers of this module.
    pub(super) fn as_raw(&self) -> *mut bindings::bio {
        self.bio.as_ptr()
    }

    /// Creates the handle for a bio that was handed back by the lower device.
    ///
    /// # Safety
    ///
    /// `bio` must come from [`SubmittedBio::into_raw`] and not be used otherwise.
    pub(super) unsafe fn from_raw(bio: *mut bindings::bio) -> Self {
        // INVARIANT: By the safety requirements the bio is still counted and not ended.
        Self {
            // SAFETY: `into_raw` returned a non-null pointer.
            bio: unsafe { NonNull::new_unchecked(bio) },
            _driver: PhantomData,
        }
    }

    /// Gives up the handle without ending the bio; see [`SubmittedBio::from_raw`].
    pub(super) fn into_raw(self) -> *mut bindings::bio {
        ManuallyDrop::new(self).bio.as_ptr()
    }

    /// Completes the bio with `status`.
    pub(crate) fn end(self, status: BlkStatus) {
        let this = ManuallyDrop::new(self);
        let shared: *const DiskShared<T> = this.shared();
        let raw = this.bio.as_ptr();
        // SAFETY: By the type invariant the bio is valid and not ended; it is ended once,
        // here, as `self` is consumed.
        unsafe {
            if !status.is_ok() {
                (*raw).bi_status = status.as_raw();
            }
            bindings::bio_endio(raw);
        }
        // SAFETY: The bio was counted, so `shared` is still alive; nothing touches it after
        // this last use, since the disk may be freed as soon as the count drops.
        unsafe { (*shared).put_inflight() };
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
    /// A bio that the driver forgot to end fails rather than hanging its submitter.
    fn drop(&mut self) {
        let bio = SubmittedBio::<T> {
            bio: self.bio,
            _driver: PhantomData,
        };
        bio.end(BlkStatus::IOERR);
    }
}

/// The `block_device_operations` of a `Disk<T>`.
struct DiskVTable<T: BioDriver>(PhantomData<T>);

impl<T: BioDriver> DiskVTable<T> {
    /// # Safety
    ///
    /// Called by the block layer with a valid bio whose disk is a `Disk<T>`, while that
    /// disk is registered (`del_gendisk` waits for running calls).
    unsafe extern "C" fn submit_bio(bio: *mut bindings::bio) {
        // SAFETY: The disk is a live `Disk<T>`, so `private_data` holds an `Arc`.
        let shared = unsafe {
            let disk = (*(*bio).bi_bdev).bd_disk;
            Arc::<DiskShared<T>>::borrow((*disk).private_data)
        };
        shared.inflight.fetch_add(1, Full);
        // INVARIANT: The bio is valid, not ended, and now counted.
        let bio = SubmittedBio {
            // SAFETY: The block layer never passes a null bio.
            bio: unsafe { NonNull::new_unchecked(bio) },
            _driver: PhantomData,
        };
        shared.driver.submit_bio(bio);
    }

    const TABLE: bindings::block_device_operations = bindings::block_device_operations {
        submit_bio: Some(Self::submit_bio),
        open: None,
        release: None,
        ioctl: None,
        compat_ioctl: None,
        check_events: None,
        unlock_native_capacity: None,
        getgeo: None,
        set_read_only: None,
        swap_slot_free_notify: None,
        report_zones: None,
        devnode: None,
        alternative_gpt_sector: None,
        get_unique_id: None,
        owner: kernel::module::this_module::<crate::LocalModule>().as_ptr(),
        pr_ops: core::ptr::null_mut(),
        free_disk: None,
        poll_bio: None,
    };
}
