// SPDX-License-Identifier: GPL-2.0

//! The folios of a bio's data, seen through the folio tests the bounce policy asks.
//!
//! One C helper (`helpers.c`) answers every test of a folio in one call, as bits, since
//! the kernel's folio tests are static inlines. It only reads the folio; which answers
//! make a page stable is decided in safe Rust (`policy.rs`), through the [`FolioState`]
//! and [`FolioWalk`] traits, so that the decision table can be tested on made-up folios.

use super::{bio::Bio, helpers};

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

/// The answers of one folio that holds part of a bio's data, as `blkbounce_folio_flags`
/// gave them: one bit per test of [`FolioState`], in the order the trait lists them
/// (`has_mapping` is bit 6). Each holds at the moment it was asked.
pub(crate) struct FolioFlags(u32);

impl FolioFlags {
    /// The folio is the one of the page before.
    const SAME: u32 = 1 << 31;

    /// Returns `true` if bit `n` is set.
    fn bit(&self, n: u32) -> bool {
        self.0 & (1 << n) != 0
    }
}

impl FolioState for FolioFlags {
    fn is_zero(&self) -> bool {
        self.bit(0)
    }
    fn maybe_dma_pinned(&self) -> bool {
        self.bit(1)
    }
    fn is_slab(&self) -> bool {
        self.bit(2)
    }
    fn is_anon(&self) -> bool {
        self.bit(3)
    }
    fn is_swapbacked(&self) -> bool {
        self.bit(4)
    }
    fn in_swap_cache(&self) -> bool {
        self.bit(5)
    }
    fn has_mapping(&self) -> bool {
        self.bit(6)
    }
    fn under_writeback(&self) -> bool {
        self.bit(7)
    }
    fn is_locked(&self) -> bool {
        self.bit(8)
    }
    fn is_uptodate(&self) -> bool {
        self.bit(9)
    }
    fn is_mapped(&self) -> bool {
        self.bit(10)
    }
    fn is_foreign(&self) -> bool {
        self.bit(11)
    }
    fn in_bdev_cache(&self) -> bool {
        self.bit(12)
    }
    fn has_stable_writes(&self) -> bool {
        self.bit(13)
    }
}

impl FolioWalk for Bio {
    type Folio = FolioFlags;

    fn find_folio<R>(&self, mut f: impl FnMut(&FolioFlags) -> Option<R>) -> Option<R> {
        let mut last = core::ptr::null_mut();
        let mut found = None;
        self.for_each_page(|page| {
            // SAFETY: The page belongs to the bio, which keeps it and its folio alive;
            // `last` is a folio pointer the helper only compares and writes.
            let flags = unsafe { helpers::blkbounce_folio_flags(page, &mut last) };
            if flags & FolioFlags::SAME == 0 {
                found = f(&FolioFlags(flags));
            }
            found.is_none()
        });
        found
    }
}
