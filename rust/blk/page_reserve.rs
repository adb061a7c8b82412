// SPDX-License-Identifier: GPL-2.0

//! Bounce memory: chunks of physically contiguous pages, a mempool reserve of single pages
//! that keeps I/O moving when the page allocator has none, and per-CPU stacks of single
//! pages recycled from completed bios.

use super::{gfp::Gfp, helpers, peak::raise_max, percpu_pages::PerCpuPages};
use core::{ffi::c_void, ptr::NonNull};
use kernel::{
    bindings,
    page::PAGE_SIZE,
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
    types::Opaque,
};

/// Returns the memory bounce chunks can come from, in bytes: RAM without highmem.
pub(crate) fn lowmem_bytes() -> u64 {
    // SAFETY: Reading the counts has no preconditions.
    let pages = unsafe { helpers::blkbounce_lowmem_pages() };
    pages as u64 * PAGE_SIZE as u64
}

/// Where a disk's bounce chunks come from: the page allocator, a reserve of order-0 pages
/// (`mempool_init_page_pool`) and the recycled pages of completed bios.
///
/// # Invariants
///
/// - `pool` was set up by `mempool_init` with the page allocation functions and is torn
///   down by `mempool_exit` on drop.
/// - `recycled` holds free pages only, and its shrinker gives them back under memory
///   pressure.
/// - `taken` counts the pages of chunks taken from the page allocator or the reserve and
///   not given back to them by [`PageReserve::free_raw`]: pages held by bios, and pages
///   kept in `recycled` (or freed from there, which `recycled` counts).
#[pin_data(PinnedDrop)]
pub(crate) struct PageReserve {
    #[pin]
    pool: Opaque<bindings::mempool_t>,
    /// Pages taken from the page allocator or the reserve (see the invariants): written
    /// only when a chunk does not come from, or go to, the recycled pages. The pages held
    /// by bios are these less the recycled ones; their peak is sampled by
    /// [`PageReserve::sample_peak`].
    taken: Atomic<u64>,
    pages_peak: Atomic<u64>,
    /// The pages freed from the recycled ones as the last walk over the CPUs saw them: at
    /// most as many as are freed now.
    freed_seen: Atomic<u64>,
    /// Single pages of completed bios, kept for the next ones once the reserve is full;
    /// none for a disk that does not bounce.
    recycled: Option<PerCpuPages>,
}

// SAFETY: A mempool is used from any CPU; it locks internally.
unsafe impl Send for PageReserve {}
// SAFETY: See above.
unsafe impl Sync for PageReserve {}

/// A chunk of `1 << order` physically contiguous pages, owned until it is given to a bio.
///
/// # Invariants
///
/// `page` heads a compound allocation of `order` (order 0: a single page) that nobody else
/// owns, and goes back to `pages` ([`PageReserve::free_raw`]).
pub(crate) struct Chunk<'a> {
    page: NonNull<bindings::page>,
    order: u32,
    from_pool: bool,
    recycled: bool,
    pages: &'a PageReserve,
}

impl PageReserve {
    /// Creates a reserve of `reserve` pages. With `recycle`, single pages of completed bios
    /// are kept per CPU for the next ones (with a shrinker).
    pub(super) fn new(reserve: u32, recycle: bool) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            taken: Atomic::new(0),
            pages_peak: Atomic::new(0),
            freed_seen: Atomic::new(0),
            recycled: if recycle {
                Some(PerCpuPages::new()?)
            } else {
                None
            },
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

    /// Returns the most bytes of chunks held at once, and the bytes of recycled pages.
    pub(super) fn figures(&self) -> (u64, u64) {
        let recycled = self.recycled.as_ref().map_or(0, PerCpuPages::count);
        let peak = self.pages_peak.load(Relaxed).max(self.held());
        (
            peak.saturating_mul(PAGE_SIZE as u64),
            (recycled * PAGE_SIZE) as u64,
        )
    }

    /// Returns the pages held by bios now: exact for chunks that did not come from the
    /// recycled pages, and a racy figure for those.
    fn held(&self) -> u64 {
        let (kept, freed) = self
            .recycled
            .as_ref()
            .map_or((0, 0), |r| (r.count() as u64, r.freed()));
        raise_max(&self.freed_seen, freed);
        self.taken.load(Relaxed).saturating_sub(kept + freed)
    }

    /// Raises the peak of the pages held to the pages held now. It reads every CPU's
    /// recycled pages, so it is for the slow path: a bio that took pages from the page
    /// allocator or the reserve, not only recycled ones.
    pub(crate) fn sample_peak(&self) {
        // The pages held are at most `taken` less the pages freed from the recycled ones,
        // which only grow: once that bound is under the peak, as in a steady state, the
        // walk over the CPUs is not needed.
        let bound = self
            .taken
            .load(Relaxed)
            .saturating_sub(self.freed_seen.load(Relaxed));
        if bound > self.pages_peak.load(Relaxed) {
            raise_max(&self.pages_peak, self.held());
        }
    }

    /// Allocates a chunk of `1 << order` pages.
    ///
    /// A single page comes first from the local CPU's recycled pages. Then every order is
    /// asked of the page allocator, which fails fast (`__GFP_NORETRY`, no emergency
    /// reserves) whatever `gfp` says. A single page then comes from the reserve
    /// ([`Chunk::came_from_pool`]): with [`Gfp::NoIo`] it waits for a page if it must and
    /// never fails.
    pub(crate) fn alloc(&self, order: u32, gfp: Gfp) -> Option<Chunk<'_>> {
        let recycled = match &self.recycled {
            Some(pages) if order == 0 => pages.pop(),
            _ => None,
        };
        let recycled_page = recycled.is_some();
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
        if !recycled_page {
            self.taken.fetch_add(1u64 << order, Relaxed);
        }
        // INVARIANT: `page` is a new allocation of `order`, owned by the chunk. Order-0 pages
        // from the page allocator or the recycled ones are what the pool's own allocation
        // function returns, so they may go back through the pool too.
        Some(Chunk {
            page,
            order,
            from_pool,
            recycled: recycled_page,
            pages: self,
        })
    }

    /// Frees a chunk that was handed to a bio. A single page refills the reserve if it is
    /// short (waking a bio that waits for it), else is kept on the local CPU if there is
    /// room; larger chunks go back to the page allocator.
    ///
    /// # Safety
    ///
    /// `page` must head a chunk allocated by [`PageReserve::alloc`] of this reserve and no
    /// longer be used.
    pub(super) unsafe fn free_raw(&self, page: *mut bindings::page) {
        // SAFETY: By the safety requirements `page` heads one of our chunks; its order is
        // recorded in the compound page.
        let order = unsafe { helpers::blkbounce_page_order(page) };
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
                self.taken.fetch_sub(1, Relaxed);
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
                self.taken.fetch_sub(1u64 << order, Relaxed);
                bindings::__free_pages(page.as_ptr(), order);
            }
        }
    }
}

#[pinned_drop]
impl PinnedDrop for PageReserve {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariant the pool was initialised; every chunk has been
        // returned, since chunks borrow the reserve and the disk drops it only once no bio
        // holds any.
        unsafe { bindings::mempool_exit(self.pool.get()) };
    }
}

impl Chunk<'_> {
    /// Returns `true` if the chunk comes from `pages`.
    pub(super) fn is_of(&self, pages: &PageReserve) -> bool {
        core::ptr::eq(self.pages, pages)
    }

    /// Returns the chunk's order: it has `1 << order` pages.
    pub(crate) fn order(&self) -> u32 {
        self.order
    }

    /// Returns `true` if the page came from the reserve because the page allocator had
    /// none at once.
    pub(crate) fn came_from_pool(&self) -> bool {
        self.from_pool
    }

    /// Returns `true` if the page is one a completed bio gave back on this CPU.
    pub(crate) fn was_recycled(&self) -> bool {
        self.recycled
    }

    /// Returns the chunk's size in bytes.
    pub(crate) fn size(&self) -> usize {
        PAGE_SIZE << self.order
    }

    /// Gives up ownership; the page goes back with [`PageReserve::free_raw`].
    pub(super) fn into_raw(self) -> *mut bindings::page {
        core::mem::ManuallyDrop::new(self).page.as_ptr()
    }
}

impl Drop for Chunk<'_> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the chunk came from `self.pages` and is owned here.
        unsafe { self.pages.free_raw(self.page.as_ptr()) };
    }
}
