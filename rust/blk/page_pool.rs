// SPDX-License-Identifier: GPL-2.0

//! Bounce memory: chunks of physically contiguous pages, a mempool reserve of single
//! pages that keeps I/O moving when the page allocator has none, per-CPU stacks of single
//! pages recycled from completed bios, and a cap on the bounce memory in flight.

use super::{bioset::Gfp, helpers, percpu_pages::PerCpuPages, wait_queue::WaitQueue};
use core::{ffi::c_void, ptr::NonNull};
use kernel::{
    bindings,
    prelude::*,
    sync::atomic::{Acquire, Atomic, Full, Relaxed},
    types::Opaque,
};

/// The size of a page.
pub(crate) const PAGE_SIZE: usize = kernel::page::PAGE_SIZE;

/// Returns the memory bounce chunks can come from, in bytes: RAM without highmem.
pub(crate) fn lowmem_bytes() -> u64 {
    // SAFETY: Reading the counts has no preconditions.
    let pages = unsafe { helpers::blkbounce_lowmem_pages() };
    pages as u64 * PAGE_SIZE as u64
}

/// A reserve of order-0 pages (`mempool_init_page_pool`), and the cap on bounce memory in
/// flight, which bios reserve before they take pages. Unlike dm-crypt's soft limit per
/// client, the cap is hard: a bio over it waits for room.
///
/// # Invariants
///
/// - `pool` was set up by `mempool_init` with the page allocation functions and is torn
///   down by `mempool_exit` on drop.
/// - `in_flight` is the sum of the live [`Reservation`]s and of the bytes they handed to
///   bios with [`Reservation::into_raw`] and not yet given back; it never exceeds `cap`.
/// - `recycled` holds free pages only: they count neither in `in_flight` nor in
///   `pages_out`, and its shrinker gives them back under memory pressure.
#[pin_data(PinnedDrop)]
pub(crate) struct PagePool {
    #[pin]
    pool: Opaque<bindings::mempool_t>,
    cap: u64,
    in_flight: Atomic<u64>,
    peak: Atomic<u64>,
    waits: Atomic<u64>,
    /// Tickets of bios that queued for room, and how many of them have been served: bios
    /// get room in the order they queued.
    tickets: Atomic<u64>,
    served: Atomic<u64>,
    /// Pages of chunks handed out and not yet freed, counted apart from the reservations
    /// (so that the cap can be checked against what is really held), and their peak.
    pages_out: Atomic<u64>,
    pages_peak: Atomic<u64>,
    /// Single pages of completed bios, kept for the next ones once the reserve is full;
    /// none for a pool that hands out no pages.
    recycled: Option<PerCpuPages>,
    #[pin]
    room: WaitQueue,
}

/// Bytes of a [`PagePool`]'s cap, held until dropped.
///
/// # Invariants
///
/// `bytes` are counted in `pool.in_flight`.
pub(crate) struct Reservation<'a> {
    pool: &'a PagePool,
    bytes: u32,
}

/// The figures of a pool's cap.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(crate) struct CapFigures {
    /// The cap, in bytes.
    pub(crate) cap: u64,
    /// Bytes reserved now.
    pub(crate) in_flight: u64,
    /// The most bytes ever reserved at once.
    pub(crate) peak: u64,
    /// Reservations that queued for room.
    pub(crate) waits: u64,
    /// The most bytes of chunks held at once, counted when they are allocated and freed.
    pub(crate) memory_peak: u64,
    /// Bytes of free pages kept on the CPUs for the next bios.
    pub(crate) recycled: u64,
}

// SAFETY: A mempool is used from any CPU; it locks internally.
unsafe impl Send for PagePool {}
// SAFETY: See above.
unsafe impl Sync for PagePool {}

/// A chunk of `1 << order` physically contiguous pages, owned until it is given to a bio.
///
/// # Invariants
///
/// `page` heads a compound allocation of `order` (order 0: a single page) that nobody else
/// owns. Order-0 pages go back to the pool if it is short, else to the recycled pages or
/// the page allocator; larger chunks go to the page allocator.
pub(crate) struct Chunk<'a> {
    page: NonNull<bindings::page>,
    order: u32,
    from_pool: bool,
    pool: &'a PagePool,
}

impl PagePool {
    /// Creates a pool holding `reserve` pages, whose bios may hold at most `cap` bytes at
    /// once. `cap` must be at least the largest reservation any bio asks for. With
    /// `recycle`, single pages of completed bios are kept per CPU for the next ones (with a
    /// shrinker); a device that does not bounce asks for none.
    pub(crate) fn new(reserve: u32, cap: u64, recycle: bool) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            cap,
            in_flight: Atomic::new(0),
            peak: Atomic::new(0),
            waits: Atomic::new(0),
            tickets: Atomic::new(0),
            served: Atomic::new(0),
            pages_out: Atomic::new(0),
            pages_peak: Atomic::new(0),
            recycled: if recycle {
                Some(PerCpuPages::new()?)
            } else {
                None
            },
            room <- WaitQueue::new(),
            pool <- Opaque::try_ffi_init(|slot: *mut bindings::mempool_t| {
                // SAFETY: `slot` is valid for writes. `mempool_init` expects a zeroed pool,
                // as `mempool_create` hands it (it counts elements up from `curr_nr`).
                unsafe { core::ptr::write_bytes(slot, 0, 1) };
                // SAFETY: `slot` is a zeroed, pinned pool. Order 0 is passed as the pool
                // data, as `mempool_init_page_pool` does.
                kernel::error::to_result(unsafe {
                    bindings::mempool_init_noprof(
                        slot,
                        reserve as i32,
                        Some(bindings::mempool_alloc_pages),
                        Some(bindings::mempool_free_pages),
                        core::ptr::null_mut(),
                    )
                })
            }),
        })
    }

    /// Reserves `bytes` of the cap. With [`Gfp::NoWait`] it fails when they do not fit at
    /// once, or when bios queue for room; otherwise it sleeps until they fit, and never
    /// fails. Queued bios are served in order, and a new bio queues behind them rather
    /// than take the room first, so that a large bio is not starved by small ones.
    pub(crate) fn reserve(&self, bytes: u32, gfp: Gfp) -> Option<Reservation<'_>> {
        let queued = self.tickets.load(Acquire) != self.served.load(Acquire);
        if queued || !self.try_reserve(bytes) {
            if gfp == Gfp::NoWait || kernel::warn_on!(u64::from(bytes) > self.cap) {
                return None;
            }
            self.waits.fetch_add(1, Relaxed);
            let ticket = self.tickets.fetch_add(1, Full);
            self.room
                .wait_until(|| self.served.load(Acquire) == ticket && self.try_reserve(bytes));
            // The next in line may fit too.
            self.served.fetch_add(1, Full);
            self.room.wake_all();
        }
        // INVARIANT: `try_reserve` counted the bytes.
        Some(Reservation { pool: self, bytes })
    }

    fn try_reserve(&self, bytes: u32) -> bool {
        let mut now = self.in_flight.load(Relaxed);
        loop {
            let want = now + u64::from(bytes);
            if want > self.cap {
                return false;
            }
            match self.in_flight.cmpxchg(now, want, Full) {
                Ok(_) => {
                    super::peak::raise_max(&self.peak, want);
                    return true;
                }
                Err(seen) => now = seen,
            }
        }
    }

    /// Gives back `bytes` of the cap and wakes bios waiting for room.
    ///
    /// # Safety
    ///
    /// `bytes` must come from [`Reservation::into_raw`] on a reservation of this pool, and
    /// be given back once.
    pub(super) unsafe fn release_raw(&self, bytes: u32) {
        // The fully ordered subtraction pairs with the waiter's queueing (`wake_all`).
        self.in_flight.fetch_sub(u64::from(bytes), Full);
        self.room.wake_all();
    }

    /// Returns the figures of the cap.
    pub(crate) fn cap_figures(&self) -> CapFigures {
        CapFigures {
            cap: self.cap,
            in_flight: self.in_flight.load(Relaxed),
            peak: self.peak.load(Relaxed),
            waits: self.waits.load(Relaxed),
            memory_peak: self.pages_peak.load(Relaxed) * PAGE_SIZE as u64,
            recycled: (self.recycled.as_ref().map_or(0, PerCpuPages::count) * PAGE_SIZE) as u64,
        }
    }

    /// Allocates a chunk of `1 << order` pages.
    ///
    /// A single page comes first from the local CPU's recycled pages. Then every order is
    /// asked of the page allocator, which fails fast (`__GFP_NORETRY`, no emergency
    /// reserves) whatever `gfp` says. A single page then comes from the pool
    /// ([`Chunk::came_from_pool`]): with [`Gfp::NoIo`] it waits for a page if it must and
    /// never fails.
    pub(crate) fn alloc(&self, order: u32, gfp: Gfp) -> Option<Chunk<'_>> {
        let recycled = match &self.recycled {
            Some(pages) if order == 0 => pages.pop(),
            _ => None,
        };
        let page = recycled.or_else(|| {
            // SAFETY: Allocating pages has no preconditions.
            NonNull::new(unsafe { bindings::alloc_pages_noprof(Gfp::HighOrder.as_raw(), order) })
        });
        let (page, from_pool) = match page {
            Some(page) => (page, false),
            None if order == 0 => {
                // SAFETY: The pool is initialised; it hands out order-0 pages.
                let page = unsafe { bindings::mempool_alloc_noprof(self.pool.get(), gfp.as_raw()) };
                (NonNull::new(page.cast())?, true)
            }
            None => return None,
        };
        let out = self.pages_out.fetch_add(1 << order, Relaxed) + (1 << order);
        super::peak::raise_max(&self.pages_peak, out);
        // INVARIANT: `page` is a new allocation of `order`, owned by the chunk. Order-0 pages
        // from the page allocator or the recycled ones are what the pool's own allocation
        // function returns, so they may go back through the pool too.
        Some(Chunk {
            page,
            order,
            from_pool,
            pool: self,
        })
    }

    /// Frees a page of a chunk that was handed to a bio. A single page refills the reserve
    /// if it is short (waking a bio that waits for it), else is kept on the local CPU if
    /// there is room.
    ///
    /// # Safety
    ///
    /// `page` must head a chunk allocated by [`PagePool::alloc`] of this pool and no longer
    /// be used.
    pub(super) unsafe fn free_raw(&self, page: *mut bindings::page) {
        // SAFETY: By the safety requirements `page` heads one of our chunks; its order is
        // recorded in the compound page.
        let order = unsafe { helpers::blkbounce_page_order(page) };
        self.pages_out.fetch_sub(1 << order, Relaxed);
        let mut element: *mut c_void = page.cast();
        // SAFETY: The chunk is ours and unused. A single page goes back to the pool if it
        // is short, as `mempool_free` would give it (`mempool_free_bulk` takes it and wakes
        // its waiters). The test before it is a superset of `mempool_free_bulk`'s own, with
        // the same barrier, so no refill or wake-up is missed, and a full pool costs a
        // one-line helper rather than the call. Else the page is recycled if nobody else
        // references it; pages not kept, and larger orders, go to the page allocator they
        // came from.
        unsafe {
            let pool = self.pool.get();
            if order == 0
                && helpers::blkbounce_mempool_short(pool)
                && bindings::mempool_free_bulk(pool, &mut element, 1) == 1
            {
                return;
            }
            let page = NonNull::new_unchecked(page);
            let freed = match order {
                0 => match &self.recycled {
                    Some(pages) => pages.push(page),
                    None => Err(page),
                },
                _ => Err(page),
            };
            if let Err(page) = freed {
                bindings::__free_pages(page.as_ptr(), order);
            }
        }
    }
}

#[pinned_drop]
impl PinnedDrop for PagePool {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariant the pool was initialised; every chunk has been
        // returned, since chunks borrow the pool.
        unsafe { bindings::mempool_exit(self.pool.get()) };
    }
}

impl Reservation<'_> {
    /// Returns `true` if this reserves bytes of `pool`.
    pub(super) fn is_of(&self, pool: &PagePool) -> bool {
        core::ptr::eq(self.pool, pool)
    }

    /// Gives up the reservation without giving back its bytes; see
    /// [`PagePool::release_raw`].
    pub(super) fn into_raw(self) -> u32 {
        core::mem::ManuallyDrop::new(self).bytes
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the bytes are counted; they are given back once.
        unsafe { self.pool.release_raw(self.bytes) };
    }
}

impl Chunk<'_> {
    /// Returns `true` if the chunk comes from `pool`.
    pub(super) fn is_of(&self, pool: &PagePool) -> bool {
        core::ptr::eq(self.pool, pool)
    }

    /// Returns the chunk's order: it has `1 << order` pages.
    pub(crate) fn order(&self) -> u32 {
        self.order
    }

    /// Returns `true` if the page came from the pool because the page allocator had none at
    /// once.
    pub(crate) fn came_from_pool(&self) -> bool {
        self.from_pool
    }

    /// Returns the chunk's size in bytes.
    pub(crate) fn size(&self) -> usize {
        PAGE_SIZE << self.order
    }

    /// Gives up ownership; the page goes back with [`PagePool::free_raw`].
    pub(super) fn into_raw(self) -> *mut bindings::page {
        core::mem::ManuallyDrop::new(self).page.as_ptr()
    }
}

impl Drop for Chunk<'_> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the chunk came from `self.pool` and is owned here.
        unsafe { self.pool.free_raw(self.page.as_ptr()) };
    }
}
