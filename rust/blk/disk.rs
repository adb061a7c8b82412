// SPDX-License-Identifier: GPL-2.0

//! The registration of a bio-based disk stacked on a lower device, whose `submit_bio` is a
//! Rust trait method.
//!
//! Upstream `GenDisk` is blk-mq only and leaves `submit_bio` and `owner` unset. [`Disk`]
//! registers a bio-based `struct gendisk` whose operations come from a [`BioDriver`], with
//! `owner` set to the driver's module, so the module cannot be unloaded while the disk is
//! open. The disk owns its lower device, its bio sets, its bounce memory and its queues
//! ([`Stacked`]), so they outlive every bio of it and its work. Every bio handed to the driver is a [`SubmittedBio`],
//! which must be ended exactly once; the disk's drop waits until all have ended.
//!
//! As dm and md do, the disk splits each bio to its queue limits, accounts it in the disk's
//! I/O statistics (`BLK_FEAT_IO_STAT`) from then to its end, links itself as a holder of
//! the lower device (`/sys/block/<lower>/holders`, `lsblk`), and refuses new opens once its
//! removal has begun.

use super::{
    bio::REQ_DRV,
    helpers,
    lower::LowerDevice,
    stacked::Stacked,
    submitted_bio::{Acct, SubmittedBio},
};
use core::{fmt::Write, marker::PhantomData, ptr::NonNull};
use kernel::{
    bindings,
    ffi::c_int,
    prelude::*,
    static_lock_class,
    str::NullTerminatedFormatter,
    sync::{
        atomic::{Acquire, Full},
        Arc,
    },
    types::{ForeignOwnable, ScopeGuard},
    ModuleMetadata,
};

/// A bio-based block driver stacked on a lower device.
pub(crate) trait BioDriver: Send + Sync + Sized + 'static {
    /// The module that registers the disks (the `LocalModule` that `module!` makes):
    /// it cannot be unloaded while one is open.
    type Module: ModuleMetadata;

    /// Handles a bio submitted to the disk, already split to the disk's queue limits; it
    /// must be ended, now or later. The disk declares `BLK_FEAT_NOWAIT`: a `REQ_NOWAIT` bio
    /// must not make the submitter sleep, and is ended with `BLK_STS_AGAIN` where it would.
    fn submit_bio(stacked: &Stacked<Self>, bio: SubmittedBio<Self>);
}

/// How a disk's queue limits and bounce memory differ from its lower device's.
#[derive(Clone, Copy)]
pub(crate) struct DiskOptions {
    /// Declare stable writes (`BLK_FEAT_STABLE_WRITES`) even if the lower device does not,
    /// so that the page cache keeps pages stable during writeback.
    pub(crate) stable_writes: bool,
    /// Split bios larger than this many bytes before the driver sees them.
    pub(crate) max_io_bytes: Option<u32>,
    /// The first sector of the lower device the disk maps; the disk's sector 0 is there.
    /// Must be a multiple of the logical block size.
    pub(crate) offset: u64,
    /// Clones held in reserve, so that I/O moves when the slab allocator has no memory.
    pub(crate) clone_reserve: u32,
    /// The name prefix of a queue of the disk's own for [`CloneTarget::clone_retry`]
    /// (`prefix/<disk>`); `None`: clones are not retried.
    ///
    /// [`CloneTarget::clone_retry`]: super::clone::CloneTarget::clone_retry
    pub(crate) retry_queue: Option<&'static CStr>,
    /// Bounce bios and memory: none by default, for a disk that never bounces.
    pub(crate) bounce: BounceOptions,
}

impl Default for DiskOptions {
    fn default() -> Self {
        Self {
            stable_writes: false,
            max_io_bytes: None,
            offset: 0,
            clone_reserve: 16,
            retry_queue: None,
            bounce: BounceOptions::default(),
        }
    }
}

/// The bounce bios and memory of a disk.
#[derive(Clone, Copy, Default)]
pub(crate) struct BounceOptions {
    /// Bounce bios held in reserve.
    pub(crate) bio_reserve: u32,
    /// Keep free bounce bios per CPU (`BIOSET_PERCPU_CACHE`).
    pub(crate) bio_cache: bool,
    /// Pages held in reserve for bounce memory.
    pub(crate) page_reserve: u32,
    /// The cap on bounce memory in flight, in bytes: at least the largest bounce bio.
    pub(crate) cap: u64,
    /// Keep single pages of completed bios per CPU for the next ones.
    pub(crate) recycle: bool,
}

/// A registered bio-based disk.
///
/// # Invariants
///
/// - `gendisk` is valid and was added with `device_add_disk`.
/// - `gendisk.private_data` holds an `Arc<Stacked<T>>` made by `into_foreign`, and `fops`
///   is `DiskVTable::<T>::TABLE`.
pub(crate) struct Disk<T: BioDriver> {
    gendisk: NonNull<bindings::gendisk>,
    stacked: Arc<Stacked<T>>,
    /// The disk is linked as a holder of the lower device.
    holder_linked: bool,
}

// SAFETY: `Disk` owns its gendisk; the state it shares is `Send + Sync`.
unsafe impl<T: BioDriver> Send for Disk<T> {}
// SAFETY: `&Disk` only locks the shared state and reads the driver data.
unsafe impl<T: BioDriver> Sync for Disk<T> {}

/// Returns the queue feature flag `flag`, a constant of `helpers.c`.
fn feature(flag: &bindings::blk_features_t) -> bindings::blk_features_t {
    *flag
}

impl<T: BioDriver> Disk<T> {
    /// Creates the driver data, then the disk `name` over `lower`, with the lower device's
    /// capacity from `options.offset` on and its stacked queue limits, adjusted by
    /// `options`. Fails with `ENAMETOOLONG` for a name too long for a disk, with `EINVAL`
    /// for an offset past the end or not aligned to a logical block, and with
    /// `EOPNOTSUPP` for a zoned lower device, whose zones the disk does not report.
    pub(crate) fn new(
        name: &CStr,
        lower: LowerDevice,
        options: DiskOptions,
        driver: impl PinInit<T, Error>,
    ) -> Result<Self> {
        if lower.is_zoned() {
            return Err(EOPNOTSUPP);
        }
        let offset = options.offset;
        let stacked = Arc::pin_init(Stacked::new(name, lower, options, driver)?, GFP_KERNEL)?;
        let lower = stacked.lower();
        let mut lim: bindings::queue_limits = pin_init::zeroed();
        // SAFETY: `lim` is a valid, exclusively borrowed `queue_limits`.
        unsafe { bindings::blk_set_stacking_limits(&mut lim) };
        // Stacking keeps the larger alignment, and the default is 511: start from none, so
        // the disk asks exactly what the lower device asks of the pages it is given.
        lim.dma_alignment = 0;
        // SAFETY: Constants of `helpers.c`, never written.
        let (nowait, io_stat, stable_writes, poll, atomic_writes) = unsafe {
            (
                feature(&helpers::blkbounce_blk_feat_nowait),
                feature(&helpers::blkbounce_blk_feat_io_stat),
                feature(&helpers::blkbounce_blk_feat_stable_writes),
                feature(&helpers::blkbounce_blk_feat_poll),
                feature(&helpers::blkbounce_blk_feat_atomic_writes),
            )
        };
        // Drivers end `REQ_NOWAIT` bios with `BLK_STS_AGAIN` rather than block (see
        // [`BioDriver::submit_bio`]); stacking keeps this only if the lower device has it
        // too. Without it io_uring hands every I/O to a worker thread. Likewise polled I/O
        // (`DiskVTable::poll_bio`), kept if the lower device polls (NVMe with poll queues).
        lim.features |= nowait | poll;
        // Atomic writes, as dm stacks them: stacking does not inherit the feature, and
        // keeps the lower device's atomic write limits only where it is set. Clones carry
        // `REQ_ATOMIC` down as they are; a bounced one is one bio within the lower
        // device's limits (see `BounceBuffer::submit`).
        lim.features |= lower.limits().features & atomic_writes;
        // SAFETY: `lim` is valid, the lower device is open, and `name` is NUL-terminated.
        unsafe {
            bindings::queue_limits_stack_bdev(&mut lim, lower.as_raw(), offset, name.as_char_ptr())
        };
        // A bounced atomic write is one bounce bio of single pages at worst: its unit must
        // fit in the lower device's segments, a page each. Only over blocks larger than a
        // page does this lower what stacking found (`blk_queue_max_guaranteed_bio`).
        let most = stacked.segments().max_atomic_unit();
        if lim.atomic_write_hw_unit_max > most {
            lim.atomic_write_hw_unit_max = most;
            if lim.atomic_write_hw_unit_min > most {
                lim.atomic_write_hw_max = 0;
                lim.atomic_write_hw_unit_min = 0;
                lim.atomic_write_hw_unit_max = 0;
                lim.atomic_write_hw_boundary = 0;
            }
        }
        let capacity = lower.nr_sectors().checked_sub(offset).filter(|&n| n > 0);
        // `checked_rem`: a block size of 0 (never stacked) aligns nothing, and no panic path
        // is built.
        let aligned = (offset << bindings::SECTOR_SHIFT)
            .checked_rem(u64::from(lim.logical_block_size))
            == Some(0);
        let Some(capacity) = capacity.filter(|_| aligned) else {
            return Err(EINVAL);
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
        let raw = kernel::error::from_err_ptr(unsafe {
            bindings::__blk_alloc_disk(
                &mut lim,
                bindings::NUMA_NO_NODE,
                static_lock_class!().as_ptr(),
            )
        })?;
        // SAFETY: `raw` is a valid disk that is not added yet, so this thread owns it.
        unsafe { (*raw).private_data = stacked.clone().into_foreign() };
        let unwind = ScopeGuard::new_with_data(raw, |raw| {
            // SAFETY: The disk was not added; `put_disk` frees it. `private_data` came from
            // `into_foreign` above and is not used again.
            unsafe {
                let data = (*raw).private_data;
                bindings::put_disk(raw);
                drop(Arc::<Stacked<T>>::from_foreign(data));
            }
        });
        // SAFETY: The disk is not added yet, so this thread owns it.
        let mut writer =
            NullTerminatedFormatter::new(unsafe { &mut (*raw).disk_name }).ok_or(ENAMETOOLONG)?;
        writer.write_fmt(fmt!("{name}")).map_err(|_| ENAMETOOLONG)?;
        // SAFETY: As above.
        unsafe {
            (*raw).fops = &DiskVTable::<T>::TABLE;
            (*raw).flags |= bindings::GENHD_FL_NO_PART as c_int;
            bindings::set_capacity(raw, capacity);
        }
        // SAFETY: `raw` is a valid, fully set up disk; no parent device, no extra groups.
        kernel::error::to_result(unsafe {
            bindings::device_add_disk(core::ptr::null_mut(), raw, core::ptr::null_mut())
        })?;
        let raw = unwind.dismiss();

        // INVARIANT: The disk was added above with `fops` and `private_data` set. From here
        // on it is live (udev opens and reads it at once): any failure unwinds through
        // `Drop`, which waits for its bios and its openers.
        let mut disk = Self {
            // SAFETY: `__blk_alloc_disk` returned a disk, not an error.
            gendisk: unsafe { NonNull::new_unchecked(raw) },
            stacked,
            holder_linked: false,
        };
        // SAFETY: The disk is added, so its holder directory exists; the lower device is
        // open with a holder, for as long as the disk's state lives.
        let ret = unsafe { bindings::bd_link_disk_holder(disk.stacked.lower().as_raw(), raw) };
        kernel::error::to_result(ret)?;
        disk.holder_linked = true;
        Ok(disk)
    }

    /// Returns the driver data.
    pub(crate) fn driver(&self) -> &T {
        self.stacked.driver()
    }

    /// Returns the disk's state.
    pub(crate) fn stacked(&self) -> &Stacked<T> {
        &self.stacked
    }

    /// Begins the removal of the disk: from now on every open fails with `ENXIO`, so the
    /// disk can be dropped without anybody using it. Fails with `EBUSY`, changing nothing,
    /// while the disk is open.
    pub(crate) fn begin_removal(&self) -> Result {
        let mut removing = self.stacked.removing.lock();
        if self.stacked.opens.load(Acquire) != 0 {
            return Err(EBUSY);
        }
        *removing = true;
        Ok(())
    }
}

impl<T: BioDriver> Drop for Disk<T> {
    fn drop(&mut self) {
        let raw = self.gendisk.as_ptr();
        let stacked = &*self.stacked;
        // No new opens from here on. Those still open (udev, when creation failed) are
        // waited for below, since `release` uses the driver data.
        *stacked.removing.lock() = true;
        if self.holder_linked {
            // SAFETY: The disk was linked as a holder of the lower device, which is open.
            unsafe { bindings::bd_unlink_disk_holder(stacked.lower().as_raw(), raw) };
        }
        // SAFETY: By the type invariant the disk was added. `del_gendisk` returns once no
        // `submit_bio` call runs any more and no new one can start.
        unsafe { bindings::del_gendisk(raw) };
        // SAFETY: The disk's own count is held until here and given up once; `self.stacked`
        // keeps the drain alive in any case.
        unsafe { stacked.drain.drain() };
        // Only when creation failed can an opener (udev) still be here: wait for it.
        let opens = &stacked.opens;
        stacked.closed.wait_until(|| opens.load(Acquire) == 0);
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
            drop(Arc::<Stacked<T>>::from_foreign(data));
        }
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
        // SAFETY: The disk is a live `Disk<T>`.
        let (stacked, disk) = unsafe {
            let disk = (*(*bio).bi_bdev).bd_disk;
            (Stacked::<T>::of_disk(disk), disk)
        };
        // SAFETY: The disk is registered and `del_gendisk` waits for this call; its own
        // count is given up only after that.
        unsafe { stacked.drain.get() };
        // SAFETY: The bio is valid and not ended. If a front is split off, it is a new bio
        // of the same disk that stands in for this one in the count: the rest comes back
        // through `submit_bio` and is counted again there. On an error the block layer
        // has ended the bio.
        let front = unsafe { bindings::bio_split_to_limits(bio) };
        let Some(front) = NonNull::new(front) else {
            // SAFETY: The count taken above is given up once.
            unsafe { super::drain::Drain::put(&stacked.drain) };
            return;
        };
        // `REQ_DRV` is the flag of the driver a bio is sent to: here, a polled bio's link
        // (see `poll`), so one that a driver above left set must not be read as one.
        // SAFETY: `front` is valid and now this driver's.
        unsafe { (*front.as_ptr()).bi_opf &= !REQ_DRV };
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
        // SAFETY: The bio is valid, not ended, of a live `Disk<T>` whose state is
        // `stacked`, and owns the count taken above.
        let bio = unsafe { SubmittedBio::from_raw(front, stacked, acct) };
        T::submit_bio(stacked, bio);
    }

    /// # Safety
    ///
    /// Called by the block layer, under the disk's `open_mutex`, for a live `Disk<T>`.
    unsafe extern "C" fn open(disk: *mut bindings::gendisk, _mode: bindings::blk_mode_t) -> c_int {
        // SAFETY: The disk is a live `Disk<T>`.
        let stacked = unsafe { Stacked::<T>::of_disk(disk) };
        let removing = stacked.removing.lock();
        if *removing {
            return ENXIO.to_errno();
        }
        stacked.opens.fetch_add(1, Full);
        0
    }

    /// # Safety
    ///
    /// Called by the block layer once for each successful `open`, for a live `Disk<T>`
    /// (its drop waits until every open is released).
    unsafe extern "C" fn release(disk: *mut bindings::gendisk) {
        // SAFETY: The disk is a live `Disk<T>`.
        let stacked = unsafe { Stacked::<T>::of_disk(disk) };
        // An unmatched release would be a block layer bug: report it, and keep the count
        // from wrapping, which would make removal wait forever.
        let mut now = stacked.opens.load(Acquire);
        loop {
            if kernel::warn_on!(now == 0) {
                return;
            }
            match stacked.opens.cmpxchg(now, now - 1, Full) {
                Ok(_) => break,
                Err(seen) => now = seen,
            }
        }
        // The drop waits for the count in `closed`, then for the disk's `open_mutex`, which
        // the block layer holds around this call, before it frees the state.
        stacked.closed.wake_all();
    }

    /// The operations, with the driver's module as `owner`.
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
        owner: kernel::module::this_module::<T::Module>().as_ptr(),
        pr_ops: core::ptr::null_mut(),
        free_disk: None,
        poll_bio: Some(super::poll::poll_bio),
    };
}
