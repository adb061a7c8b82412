// SPDX-License-Identifier: GPL-2.0

//! Bounce memory: chunks of physically contiguous pages, and a mempool reserve of single
//! pages that keeps I/O moving when the page allocator has none.

use super::{bioset::Gfp, helpers};
use core::ptr::NonNull;
use kernel::{bindings, prelude::*, types::Opaque};

/// The size of a page.
pub(crate) const PAGE_SIZE: usize = kernel::page::PAGE_SIZE;

/// A reserve of order-0 pages (`mempool_init_page_pool`).
///
/// # Invariants
///
/// `pool` was set up by `mempool_init` with the page allocation functions and is torn
/// down by `mempool_exit` on drop.
#[pin_data(PinnedDrop)]
pub(crate) struct PagePool {
    #[pin]
    pool: Opaque<bindings::mempool_t>,
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
/// owns. Order-0 pages go back through the pool, larger chunks to the page allocator.
pub(crate) struct Chunk<'a> {
    page: NonNull<bindings::page>,
    order: u32,
    from_pool: bool,
    pool: &'a PagePool,
}

impl PagePool {
    /// Creates a pool holding `reserve` pages.
    pub(crate) fn new(reserve: u32) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
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

    /// Allocates a chunk of `1 << order` pages.
    ///
    /// Every order is first asked of the page allocator, which fails fast
    /// (`__GFP_NORETRY`, no emergency reserves) whatever `gfp` says. A single page then
    /// comes from the pool ([`Chunk::came_from_pool`]): with [`Gfp::NoIo`] it waits for a page if
    /// it must and never fails.
    pub(crate) fn alloc(&self, order: u32, gfp: Gfp) -> Option<Chunk<'_>> {
        // SAFETY: Allocating pages has no preconditions.
        let page = unsafe { bindings::alloc_pages_noprof(Gfp::HighOrder.as_raw(), order) };
        let (page, from_pool) = match NonNull::new(page) {
            Some(page) => (page, false),
            None if order == 0 => {
                // SAFETY: The pool is initialised; it hands out order-0 pages.
                let page = unsafe { bindings::mempool_alloc_noprof(self.pool.get(), gfp.as_raw()) };
                (NonNull::new(page.cast())?, true)
            }
            None => return None,
        };
        // INVARIANT: `page` is a new allocation of `order`, owned by the chunk. Order-0 pages
        // from the page allocator are what the pool's own allocation function returns, so
        // they may go back through the pool too.
        Some(Chunk {
            page,
            order,
            from_pool,
            pool: self,
        })
    }

    /// Frees a page of a chunk that was handed to a bio.
    ///
    /// # Safety
    ///
    /// `page` must head a chunk allocated by [`PagePool::alloc`] of this pool and no longer
    /// be used.
    pub(super) unsafe fn free_raw(&self, page: *mut bindings::page) {
        // SAFETY: By the safety requirements `page` heads one of our chunks; its order is
        // recorded in the compound page.
        unsafe {
            match helpers::blkbounce_page_order(page) {
                0 => bindings::mempool_free(page.cast(), self.pool.get()),
                order => bindings::__free_pages(page, order),
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

impl Chunk<'_> {
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
