// SPDX-License-Identifier: GPL-2.0

//! The folios of a bio's data, seen through the folio tests the bounce policy asks.
//!
//! Each test is one C helper (`helpers.c`), since the kernel's folio tests are static
//! inlines. The tests only read the folio; which answers make a page stable is decided in
//! safe Rust (`policy.rs`), through the [`FolioState`] and [`FolioWalk`] traits, so that
//! the decision table can be tested on made-up folios.

use super::{bio::Bio, helpers};
use kernel::{bindings, types::Opaque};

/// What the bounce policy asks of a folio. Each answer holds at the moment it is asked;
/// none of them is stable unless the folio's owner makes it so.
pub(crate) trait FolioState {
    /// The shared zero page, or the huge zero folio.
    fn is_zero(&self) -> bool;
    /// Someone may hold a DMA pin on it (`FOLL_PIN`): direct I/O from user memory, io_uring
    /// fixed buffers, RDMA. May also be `true` for a folio with very many references.
    fn maybe_dma_pinned(&self) -> bool;
    /// Slab memory (`kmalloc`, caches): never mapped into user space.
    fn is_slab(&self) -> bool;
    /// Anonymous memory of a process (`PG_anon` mapping).
    fn is_anon(&self) -> bool;
    /// Backed by swap: anonymous memory, or shmem (tmpfs, memfd, SysV shared memory).
    fn is_swapbacked(&self) -> bool;
    /// In the swap cache.
    fn in_swap_cache(&self) -> bool;
    /// Has a mapping: a file's page cache, or the swap cache.
    fn has_mapping(&self) -> bool;
    /// Under writeback (`PG_writeback`).
    fn under_writeback(&self) -> bool;
    /// Locked (`PG_locked`).
    fn is_locked(&self) -> bool;
    /// Holds valid data (`PG_uptodate`).
    fn is_uptodate(&self) -> bool;
    /// Mapped into some process's page tables.
    fn is_mapped(&self) -> bool;
    /// Another Xen domain's page, grant-mapped here (`PG_foreign`): the data of
    /// xen-blkback, or of xen-scsiback through a target backend. The flag bit is shared
    /// (`PG_owner_priv_1`: `PG_checked` of filesystems, the swap cache, Xen page tables,
    /// `PG_xen_remapped`, `PG_vmemmap_self_hosted`), so the answer is meant only for folios
    /// of no mapping that are not in the swap cache; a false yes only bounces a bio that
    /// did not need it.
    fn is_foreign(&self) -> bool;
    /// In the page cache of a block device: filesystem metadata in buffer heads, buffered
    /// I/O to the device.
    fn in_bdev_cache(&self) -> bool;
    /// Its mapping asks for stable writes: writers wait for writeback to end
    /// (`mapping_stable_writes`, `folio_wait_stable`).
    fn has_stable_writes(&self) -> bool;
}

/// Something whose data lies in folios that can be walked, a bio for one.
pub(crate) trait FolioWalk {
    /// The folios walked.
    type Folio: FolioState;

    /// Calls `f` for each folio of the data in order, once per run of pages of the same
    /// folio, until `f` returns `Some`; returns that value.
    fn find_folio<R>(&self, f: impl FnMut(&Self::Folio) -> Option<R>) -> Option<R>;
}

/// A folio that holds part of a bio's data.
///
/// # Invariants
///
/// The wrapped `struct folio` is valid for as long as the reference lives: it holds data
/// of a bio in flight, whose submitter keeps its pages allocated until the bio ends.
#[repr(transparent)]
pub(crate) struct Folio(Opaque<bindings::folio>);

impl Folio {
    /// Returns a reference to the folio at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a folio that stays valid while the returned reference lives.
    unsafe fn from_raw<'a>(ptr: *mut bindings::folio) -> &'a Self {
        // SAFETY: `Folio` is a transparent wrapper of `bindings::folio`, and the caller
        // guarantees validity for `'a`.
        unsafe { &*ptr.cast::<Self>() }
    }

    /// Returns the raw folio.
    fn as_raw(&self) -> *mut bindings::folio {
        self.0.get()
    }
}

/// Implements `FolioState` tests as calls of the `helpers.c` wrappers they name.
macro_rules! folio_tests {
    ($($test:ident => $helper:ident,)*) => {
        $(
            fn $test(&self) -> bool {
                // SAFETY: By the type invariant the folio is valid, and every
                // `blkbounce_folio_*` test of `helpers.c` takes any valid folio and only
                // reads it.
                unsafe { helpers::$helper(self.as_raw()) }
            }
        )*
    };
}

impl FolioState for Folio {
    folio_tests! {
        is_zero => blkbounce_folio_is_zero,
        maybe_dma_pinned => blkbounce_folio_maybe_dma_pinned,
        is_slab => blkbounce_folio_is_slab,
        is_anon => blkbounce_folio_anon,
        is_swapbacked => blkbounce_folio_swapbacked,
        in_swap_cache => blkbounce_folio_swapcache,
        under_writeback => blkbounce_folio_writeback,
        is_locked => blkbounce_folio_locked,
        is_uptodate => blkbounce_folio_uptodate,
        is_mapped => blkbounce_folio_mapped,
        is_foreign => blkbounce_folio_foreign,
        in_bdev_cache => blkbounce_folio_bdev_cache,
        has_stable_writes => blkbounce_folio_stable_writes,
    }

    fn has_mapping(&self) -> bool {
        // SAFETY: By the type invariant the folio is valid; `folio_mapping` only reads the
        // folio (not the mapping it returns).
        !unsafe { bindings::folio_mapping(self.as_raw()) }.is_null()
    }
}

impl FolioWalk for Bio {
    type Folio = Folio;

    fn find_folio<R>(&self, mut f: impl FnMut(&Folio) -> Option<R>) -> Option<R> {
        let mut last = core::ptr::null_mut();
        let mut found = None;
        self.for_each_page(|page| {
            // SAFETY: The page belongs to the bio, which keeps it alive.
            let folio = unsafe { helpers::blkbounce_page_folio(page) };
            if folio != last {
                last = folio;
                // SAFETY: The folio holds data of `self`, which is in flight while it lives.
                found = f(unsafe { Folio::from_raw(folio) });
            }
            found.is_none()
        });
        found
    }
}
