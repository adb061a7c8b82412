// SPDX-License-Identifier: GPL-2.0

//! What a stacked disk shares with its bios: the driver data, the lower device, the bio
//! sets, the bounce memory, the retry queue and the drain.

use super::{
    bioset::BioSet,
    bounce::BounceCtx,
    cap::{BounceCap, CapFigures},
    clone::CloneCtx,
    disk::{BioDriver, DiskOptions},
    drain::Drain,
    lower::LowerDevice,
    page_reserve::PageReserve,
    segments::SegmentLimits,
    wait_queue::WaitQueue,
    workqueue::Workqueue,
};
use kernel::{
    bindings, new_mutex,
    prelude::*,
    sync::{atomic::Atomic, Arc, Mutex},
    types::ForeignOwnable,
};

/// The state of a stacked disk, owned by the disk and reached from each of its bios.
///
/// The disk owns everything its bios use, so none of it can go before them: its drop waits
/// for the drain before it frees this state. Fields drop in order: the driver data first;
/// then the retry queue, whose destruction waits for the work still running (module code,
/// after its last count of the drain); the lower device last, since bios kept in the bio
/// sets' caches may still name it.
///
/// # Invariants
///
/// - This state is freed only once the drain is empty: no bio of `clones` or `bounces`
///   is outstanding, no chunk of `pages` and no byte of `cap` is held, and no work of
///   the retry queue is pending.
/// - The chunks of bounce bios come from `pages`, their bytes from `cap`.
#[pin_data]
pub(crate) struct Stacked<T: BioDriver> {
    #[pin]
    driver: T,
    retry_queue: Option<Workqueue>,
    #[pin]
    pub(super) drain: Drain,
    #[pin]
    clones: BioSet<CloneCtx<T>>,
    #[pin]
    bounces: BioSet<BounceCtx<T>>,
    #[pin]
    cap: BounceCap,
    #[pin]
    pages: PageReserve,
    /// Whether removal has begun; taken by `open` and by `begin_removal`, so that the
    /// check of `opens` and the refusal of new opens are one step.
    #[pin]
    pub(super) removing: Mutex<bool>,
    /// Successful opens not yet released.
    pub(super) opens: Atomic<u32>,
    /// Woken when an open is released.
    #[pin]
    pub(super) closed: WaitQueue,
    /// The sector of the lower device where the disk's sector 0 is.
    offset: u64,
    /// What one bio of the lower device carries without a split, when the disk was made.
    segments: SegmentLimits,
    lower: LowerDevice,
}

impl<T: BioDriver> Stacked<T> {
    /// Creates the state of the disk `name` over `lower`, with the clones, bounce memory
    /// and queues `options` asks for.
    pub(super) fn new(
        name: &CStr,
        lower: LowerDevice,
        options: DiskOptions,
        driver: impl PinInit<T, Error>,
    ) -> Result<impl PinInit<Self, Error>> {
        let cache = |on: bool| if on { bindings::BIOSET_PERCPU_CACHE } else { 0 };
        let queue = |prefix: Option<&CStr>| prefix.map(|p| Workqueue::new(p, name)).transpose();
        let bounce = options.bounce;
        let retry_queue = queue(options.retry_queue)?;
        Ok(try_pin_init!(Self {
            driver <- driver,
            retry_queue,
            drain <- Drain::new(),
            clones <- BioSet::new(options.clone_reserve, cache(true)),
            bounces <- BioSet::new(
                bounce.bio_reserve,
                bindings::BIOSET_NEED_BVECS | cache(bounce.bio_cache),
            ),
            cap <- BounceCap::new(bounce.cap),
            pages <- PageReserve::new(bounce.page_reserve, bounce.recycle),
            removing <- new_mutex!(false),
            opens: Atomic::new(0),
            closed <- WaitQueue::new(),
            offset: options.offset,
            segments: lower.segment_limits(),
            lower,
        }))
    }

    /// Returns the state of the disk `disk`.
    ///
    /// # Safety
    ///
    /// `disk` must be the gendisk of a live `Disk<T>`; the reference must not outlive it.
    pub(super) unsafe fn of_disk<'a>(disk: *mut bindings::gendisk) -> &'a Self {
        // SAFETY: The disk's `private_data` holds an `Arc<Stacked<T>>` made by
        // `into_foreign` for as long as the disk lives.
        let stacked: *const Self = unsafe { &*Arc::<Self>::borrow((*disk).private_data) };
        // SAFETY: See above.
        unsafe { &*stacked }
    }

    /// Returns the driver data.
    pub(crate) fn driver(&self) -> &T {
        &self.driver
    }

    /// Returns the lower device.
    pub(crate) fn lower(&self) -> &LowerDevice {
        &self.lower
    }

    /// Returns the sector of the lower device where the disk's sector 0 is.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Returns what one bio of the lower device carries without a split: bounce chunks
    /// are at most [`SegmentLimits::max_chunk_bytes`].
    pub(crate) fn segments(&self) -> SegmentLimits {
        self.segments
    }

    /// Returns the cap on bounce memory in flight.
    pub(crate) fn cap(&self) -> &BounceCap {
        &self.cap
    }

    /// Returns where bounce chunks come from.
    pub(crate) fn pages(&self) -> &PageReserve {
        &self.pages
    }

    /// Returns the figures of the bounce memory.
    pub(crate) fn cap_figures(&self) -> CapFigures {
        let (memory_peak, recycled) = self.pages.figures();
        CapFigures {
            memory_peak,
            recycled,
            ..self.cap.figures()
        }
    }

    /// Returns the queue of retries, if the disk has one.
    pub(super) fn retry_queue(&self) -> Option<&Workqueue> {
        self.retry_queue.as_ref()
    }

    /// Returns the bio set of clones.
    pub(super) fn clones(&self) -> &BioSet<CloneCtx<T>> {
        &self.clones
    }

    /// Returns the bio set of bounce bios.
    pub(super) fn bounces(&self) -> &BioSet<BounceCtx<T>> {
        &self.bounces
    }
}
