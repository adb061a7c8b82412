// SPDX-License-Identifier: GPL-2.0

//! A bio-based disk whose `submit_bio` is a Rust trait method.
//!
//! Upstream `GenDisk` is blk-mq only and leaves `submit_bio` and `owner` unset. [`Disk`]
//! registers a bio-based `struct gendisk` whose operations come from a [`BioDriver`], with
//! `owner` set to this module, so the module cannot be unloaded while the disk is open.
//! Every bio handed to the driver is a [`SubmittedBio`], which must be ended exactly once;
//! [`Disk`] counts them and its drop waits until all have ended.
//!
//! As dm and md do, the disk splits each bio to its queue limits, accounts it in the disk's
//! I/O statistics (`BLK_FEAT_IO_STAT`) from then to its end, links itself as a holder of
//! the lower device (`/sys/block/<lower>/holders`, `lsblk`), and refuses new opens once its
//! removal has begun.

use super::{bio::Bio, helpers, lower::LowerDevice, status::BlkStatus, wait_queue::WaitQueue};
use core::{marker::PhantomData, mem::ManuallyDrop, ops::Deref, ptr::NonNull};
use kernel::{
    bindings,
    ffi::{c_int, c_ulong},
    new_mutex,
    prelude::*,
    static_lock_class,
    sync::{
        atomic::{Acquire, Atomic, Full},
        Arc, Completion, Mutex,
    },
    types::ForeignOwnable,
};

/// A bio-based block driver stacked on a lower device.
///
/// # Safety
///
/// [`BioDriver::lower`] returns a device that is part of the driver data (so it stays open
/// for as long as any bio of the disk exists), and the same device on every call: the disk
/// takes its queue limits over once, and bios are allocated for it.
pub(crate) unsafe trait BioDriver: Send + Sync + Sized + 'static {
    /// The device whose capacity and queue limits the disk takes over, and where bios go.
    fn lower(&self) -> &LowerDevice;

    /// Handles a bio submitted to the disk, already split to the disk's queue limits; it
    /// must be ended, now or later. The disk declares `BLK_FEAT_NOWAIT`: a `REQ_NOWAIT` bio must not make the submitter sleep,
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
    /// Whether removal has begun; taken by `open` and by `begin_removal`, so that the
    /// check of `opens` and the refusal of new opens are one step.
    #[pin]
    removing: Mutex<bool>,
    /// Successful opens not yet released.
    opens: Atomic<u32>,
    /// Woken when an open is released.
    #[pin]
    closed: WaitQueue,
}

impl<T: BioDriver> DiskShared<T> {
    /// Gives up one count of `inflight`.
    ///
    /// Works from a raw pointer: once the count is zero the disk's drop may free `*shared`
    /// (and the driver data in it), so no reference to it may be live when that happens.
    ///
    /// # Safety
    ///
    /// `shared` must be valid, and the caller must own one count, which this call gives up.
    unsafe fn put_inflight(shared: *const Self) {
        // SAFETY: `shared` is valid while the caller's count is held. The reference to the
        // counter lasts only for the atomic operation that drops the count, as in the
        // kernel's `Arc::drop`.
        let last = unsafe { (*shared).inflight.fetch_sub(1, Full) } == 1;
        if last {
            // SAFETY: The count is zero, so only the disk's drop, waiting in
            // `wait_for_completion`, still uses `*shared`; it frees it only after
            // `complete_all` has released the completion's lock, which the waiter takes
            // before it returns (Documentation/scheduler/completion.rst).
            unsafe { (*shared).drained.complete_all() };
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
    /// The disk is linked as a holder of the lower device.
    holder_linked: bool,
}

// SAFETY: `Disk` owns its gendisk; the driver data it shares is `Send + Sync`.
unsafe impl<T: BioDriver> Send for Disk<T> {}
// SAFETY: `&Disk` only locks the shared state and reads the driver data.
unsafe impl<T: BioDriver> Sync for Disk<T> {}

/// How a disk's queue limits differ from its lower device's.
#[derive(Clone, Copy, Default)]
pub(crate) struct DiskOptions {
    /// Declare stable writes (`BLK_FEAT_STABLE_WRITES`) even if the lower device does not,
    /// so that the page cache keeps pages stable during writeback.
    pub(crate) stable_writes: bool,
    /// Split bios larger than this many bytes before the driver sees them.
    pub(crate) max_io_bytes: Option<u32>,
}

/// `REQ_OP_MASK` (`include/linux/blk_types.h`): the operation bits of `bi_opf`.
const REQ_OP_MASK: bindings::blk_opf_t = (1 << bindings::REQ_OP_BITS) - 1;

/// Returns the queue feature flag `flag`, a constant of `helpers.c`.
fn feature(flag: &bindings::blk_features_t) -> bindings::blk_features_t {
    *flag
}

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
                removing <- new_mutex!(false),
                opens: Atomic::new(0),
                closed <- WaitQueue::new(),
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
        // SAFETY: Constants of `helpers.c`, never written.
        let (nowait, io_stat, stable_writes) = unsafe {
            (
                feature(&helpers::blkbounce_blk_feat_nowait),
                feature(&helpers::blkbounce_blk_feat_io_stat),
                feature(&helpers::blkbounce_blk_feat_stable_writes),
            )
        };
        // Drivers end `REQ_NOWAIT` bios with `BLK_STS_AGAIN` rather than block (see
        // [`BioDriver::submit_bio`]); stacking keeps this only if the lower device has it
        // too. Without it io_uring hands every I/O to a worker thread.
        lim.features |= nowait;
        // SAFETY: `lim` is valid, the lower device is open, and `name` is NUL-terminated.
        unsafe {
            bindings::queue_limits_stack_bdev(&mut lim, lower.as_raw(), 0, name.as_char_ptr())
        };
        // The disk accounts its own bios (see `DiskVTable::submit_bio`), as dm and md do.
        lim.features |= io_stat;
        if options.stable_writes {
            lim.features |= stable_writes;
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

        // INVARIANT: The disk was added above with `fops` and `private_data` set. From here
        // on it is live (udev opens and reads it at once): any failure unwinds through
        // `Drop`, which waits for its bios and its openers.
        let mut disk = Self {
            gendisk,
            shared,
            holder_linked: false,
        };
        // SAFETY: The disk is added, so its holder directory exists; the lower device is
        // open with a holder, for as long as the driver data lives.
        let ret = unsafe { bindings::bd_link_disk_holder(disk.driver().lower().as_raw(), raw) };
        kernel::error::to_result(ret)?;
        disk.holder_linked = true;
        Ok(disk)
    }

    /// Returns the driver data.
    pub(crate) fn driver(&self) -> &T {
        &self.shared.driver
    }

    /// Begins the removal of the disk: from now on every open fails with `ENXIO`, so the
    /// disk can be dropped without anybody using it. Fails with `EBUSY`, changing nothing,
    /// while the disk is open.
    pub(crate) fn begin_removal(&self) -> Result {
        let mut removing = self.shared.removing.lock();
        if self.shared.opens.load(Acquire) != 0 {
            return Err(EBUSY);
        }
        *removing = true;
        Ok(())
    }
}

impl<T: BioDriver> Drop for Disk<T> {
    fn drop(&mut self) {
        let raw = self.gendisk.as_ptr();
        // No new opens from here on. Those still open (udev, when creation failed) are
        // waited for below, since `release` uses the driver data.
        *self.shared.removing.lock() = true;
        if self.holder_linked {
            // SAFETY: The disk was linked as a holder of the lower device, which is open.
            unsafe { bindings::bd_unlink_disk_holder(self.shared.driver.lower().as_raw(), raw) };
        }
        // SAFETY: By the type invariant the disk was added. `del_gendisk` returns once no
        // `submit_bio` call runs any more and no new one can start.
        unsafe { bindings::del_gendisk(raw) };
        // Drop the disk's own count and wait for every bio still in flight to end.
        let shared: *const DiskShared<T> = &*self.shared;
        // SAFETY: The disk's own count is held until here; `self.shared` keeps `*shared`
        // alive in any case.
        unsafe { DiskShared::put_inflight(shared) };
        self.shared.drained.wait_for_completion();
        // Only when creation failed can an opener (udev) still be here: wait for it.
        let opens = &self.shared.opens;
        self.shared.closed.wait_until(|| opens.load(Acquire) == 0);
        // `release` runs under the disk's `open_mutex` (`bdev_release`): taking it waits
        // for one that has dropped the count but not yet returned from waking us.
        // SAFETY: The disk is valid until `put_disk` below.
        unsafe {
            bindings::mutex_lock(&raw mut (*raw).open_mutex);
            bindings::mutex_unlock(&raw mut (*raw).open_mutex);
        }
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
/// - `acct` says whether the bio's I/O accounting is to start, or when it started.
pub(crate) struct SubmittedBio<T: BioDriver> {
    bio: NonNull<bindings::bio>,
    acct: Acct,
    _driver: PhantomData<T>,
}

/// The I/O accounting of a bio.
#[derive(Clone, Copy)]
enum Acct {
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

/// A [`SubmittedBio`] set aside while the lower device works on its behalf, in the front
/// pad of a bio of the driver's own (see [`SubmittedBio::park`]).
#[derive(Clone, Copy)]
pub(super) struct ParkedBio {
    bio: *mut bindings::bio,
    acct: Acct,
}

impl ParkedBio {
    /// Returns a view of the parked bio.
    ///
    /// # Safety
    ///
    /// `self` must come from [`SubmittedBio::park`] and not be taken back yet; the reference
    /// must not outlive that.
    pub(super) unsafe fn bio<'a>(&self) -> &'a Bio {
        // SAFETY: A parked bio is valid and not ended until it is taken back.
        unsafe { Bio::from_raw(self.bio) }
    }

    /// Returns the driver data of the disk the parked bio was submitted to.
    ///
    /// # Safety
    ///
    /// As for [`ParkedBio::bio`], and the bio must have been a `SubmittedBio<T>`.
    pub(super) unsafe fn driver<'a, T: BioDriver>(&self) -> &'a T {
        // SAFETY: The parked bio is counted in its `Disk<T>`, which therefore lives.
        unsafe { &shared_of::<T>(self.bio).driver }
    }
}

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

impl<T: BioDriver> SubmittedBio<T> {
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

    /// Takes a count of the disk's own, so that its driver data outlives the returned
    /// hold even once this bio has ended.
    pub(super) fn hold_disk(&self) -> DiskHold<T> {
        let shared = self.shared();
        // The bio's own count keeps the total above zero, so the disk's drop has not
        // returned and cannot before the hold is dropped.
        shared.inflight.fetch_add(1, Full);
        // INVARIANT: A count was just taken.
        DiskHold {
            shared: NonNull::from(shared),
        }
    }

    /// Returns the gendisk the bio was submitted to.
    pub(super) fn gendisk(&self) -> *mut bindings::gendisk {
        // SAFETY: By the type invariant the bio and its disk are valid.
        unsafe { (*(*self.bio.as_ptr()).bi_bdev).bd_disk }
    }

    /// Gives up the handle without ending the bio, to be stored while the lower device
    /// works; [`SubmittedBio::unpark`] takes it back.
    pub(super) fn park(self) -> ParkedBio {
        let this = ManuallyDrop::new(self);
        ParkedBio {
            bio: this.bio.as_ptr(),
            acct: this.acct,
        }
    }

    /// Takes back a bio set aside by [`SubmittedBio::park`].
    ///
    /// # Safety
    ///
    /// `parked` must come from `park` on a `SubmittedBio<T>` and be taken back only once.
    pub(super) unsafe fn unpark(parked: ParkedBio) -> Self {
        // INVARIANT: By the safety requirements the bio is still counted and not ended.
        Self {
            // SAFETY: `park` stored a non-null pointer.
            bio: unsafe { NonNull::new_unchecked(parked.bio) },
            acct: parked.acct,
            _driver: PhantomData,
        }
    }

    /// Starts the bio's I/O accounting, if the disk accounts it and it has not started:
    /// called when the bio is committed to the lower device, so that a bio turned away
    /// first (`BLK_STS_AGAIN`, then resubmitted) is counted once. Its time counts from
    /// its arrival, waits for bounce memory included, as dm stamps `start_time`.
    pub(super) fn start_io_acct(&mut self) {
        if let Acct::Pending(arrived) = self.acct {
            let bio = self.bio.as_ptr();
            // SAFETY: By the type invariant the bio is valid and its disk live.
            let start = unsafe {
                bindings::bdev_start_io_acct((*bio).bi_bdev, (*bio).bi_opf & REQ_OP_MASK, arrived)
            };
            self.acct = Acct::Started(start);
        }
    }

    /// Completes the bio with `status`.
    pub(crate) fn end(self, status: BlkStatus) {
        let this = ManuallyDrop::new(self);
        let shared: *const DiskShared<T> = this.shared();
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
        // SAFETY: The bio was counted, so `shared` is still valid here; nothing touches it
        // after this call, since the disk may be freed as soon as the count drops.
        unsafe { DiskShared::put_inflight(shared) };
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
            acct: self.acct,
            _driver: PhantomData,
        };
        bio.end(BlkStatus::io_error());
    }
}

/// A count of a disk's `inflight` that is not a bio: the disk's drop, and with it the
/// freeing of the driver data, waits until it is dropped.
///
/// # Invariants
///
/// `shared` belongs to a `Disk<T>`, in whose `inflight` this hold owns one count.
pub(super) struct DiskHold<T: BioDriver> {
    shared: NonNull<DiskShared<T>>,
}

impl<T: BioDriver> DiskHold<T> {
    /// Returns the driver data.
    pub(super) fn driver(&self) -> &T {
        // SAFETY: By the type invariant the count keeps `*shared` alive while `self` lives.
        unsafe { &(*self.shared.as_ptr()).driver }
    }
}

impl<T: BioDriver> Drop for DiskHold<T> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the hold owns one count, given up once, here.
        unsafe { DiskShared::put_inflight(self.shared.as_ptr()) };
    }
}

/// The `block_device_operations` of a `Disk<T>`.
struct DiskVTable<T: BioDriver>(PhantomData<T>);

impl<T: BioDriver> DiskVTable<T> {
    /// Returns the shared part of a `Disk<T>`.
    ///
    /// # Safety
    ///
    /// `disk` must be the gendisk of a live `Disk<T>`.
    unsafe fn shared<'a>(disk: *mut bindings::gendisk) -> &'a DiskShared<T> {
        // SAFETY: The disk's `private_data` holds an `Arc` for as long as it lives.
        let shared: *const DiskShared<T> =
            unsafe { &*Arc::<DiskShared<T>>::borrow((*disk).private_data) };
        // SAFETY: See above.
        unsafe { &*shared }
    }

    /// # Safety
    ///
    /// Called by the block layer with a valid bio whose disk is a `Disk<T>`, while that
    /// disk is registered (`del_gendisk` waits for running calls).
    unsafe extern "C" fn submit_bio(bio: *mut bindings::bio) {
        // SAFETY: The disk is a live `Disk<T>`.
        let (shared, disk) = unsafe {
            let disk = (*(*bio).bi_bdev).bd_disk;
            (Self::shared(disk), disk)
        };
        shared.inflight.fetch_add(1, Full);
        // SAFETY: The bio is valid and not ended. If a front is split off, it is a new bio
        // of the same disk that stands in for this one in the count: the rest comes back
        // through `submit_bio` and is counted again there. On an error the block layer
        // has ended the bio.
        let front = unsafe { bindings::bio_split_to_limits(bio) };
        let Some(front) = NonNull::new(front) else {
            // SAFETY: The count taken above is given up once.
            unsafe { DiskShared::put_inflight(shared) };
            return;
        };
        // Counted in flight from when it is sent down, timed from now, to its end, as dm
        // does; a flush has no sectors to account. The `iostats` switch is read once, here.
        // SAFETY: The disk is live and `front` is valid.
        let accounted = unsafe {
            helpers::blkbounce_disk_io_stat(disk) && (*front.as_ptr()).bi_iter.bi_size != 0
        };
        let acct = if accounted {
            // SAFETY: `jiffies` is only ever written by the timekeeping code; a volatile
            // read is how C reads it (`READ_ONCE`).
            Acct::Pending(unsafe { core::ptr::read_volatile(&raw const bindings::jiffies) })
        } else {
            Acct::Off
        };
        // INVARIANT: The bio is valid, not ended, and counted.
        let bio = SubmittedBio {
            bio: front,
            acct,
            _driver: PhantomData,
        };
        shared.driver.submit_bio(bio);
    }

    /// # Safety
    ///
    /// Called by the block layer, under the disk's `open_mutex`, for a live `Disk<T>`.
    unsafe extern "C" fn open(disk: *mut bindings::gendisk, _mode: bindings::blk_mode_t) -> c_int {
        // SAFETY: The disk is a live `Disk<T>`.
        let shared = unsafe { Self::shared(disk) };
        let removing = shared.removing.lock();
        if *removing {
            return ENXIO.to_errno();
        }
        shared.opens.fetch_add(1, Full);
        0
    }

    /// # Safety
    ///
    /// Called by the block layer once for each successful `open`, for a live `Disk<T>`
    /// (its drop waits until every open is released).
    unsafe extern "C" fn release(disk: *mut bindings::gendisk) {
        // SAFETY: The disk is a live `Disk<T>`.
        let shared = unsafe { Self::shared(disk) };
        // An unmatched release would be a block layer bug: report it, and keep the count
        // from wrapping, which would make removal wait forever.
        let mut now = shared.opens.load(Acquire);
        loop {
            if kernel::warn_on!(now == 0) {
                return;
            }
            match shared.opens.cmpxchg(now, now - 1, Full) {
                Ok(_) => break,
                Err(seen) => now = seen,
            }
        }
        // The drop waits for the count in `closed`, then for the disk's `open_mutex`, which
        // the block layer holds around this call, before it frees `*shared`.
        shared.closed.wake_all();
    }

    const TABLE: bindings::block_device_operations = bindings::block_device_operations {
        submit_bio: Some(Self::submit_bio),
        open: Some(Self::open),
        release: Some(Self::release),
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
