// SPDX-License-Identifier: GPL-2.0

//! A bio set (`struct bio_set`) whose bios carry a context of one type in front of them.

use core::marker::PhantomData;
use kernel::{bindings, prelude::*, types::Opaque};

/// A bio set with a mempool reserve of bios, each of which carries a `C` in its front pad.
///
/// The context type is the layout: a bio of a `BioSet<C>` has room for exactly one `C`
/// before it, and only this module computes where. Bio sets are made only inside `blk`,
/// each for one context type, so a context is never read from a bio of another set.
///
/// # Invariants
///
/// `inner` was set up by `bioset_init` with a front pad of [`BioSet::FRONT_PAD`] bytes,
/// and is torn down by `bioset_exit` on drop. Its owner, a disk's state
/// ([`super::stacked::Stacked`]), drops it only once no bio of it is outstanding.
#[pin_data(PinnedDrop)]
pub(crate) struct BioSet<C> {
    #[pin]
    inner: Opaque<bindings::bio_set>,
    _ctx: PhantomData<C>,
}

// SAFETY: A bio set is used from any CPU; its mempools lock internally. The contexts are
// only reached through the bios, whose owners decide where they go.
unsafe impl<C> Send for BioSet<C> {}
// SAFETY: See above; all operations take `&self` and are thread safe in C.
unsafe impl<C> Sync for BioSet<C> {}

impl<C> BioSet<C> {
    /// The front pad: room for the context, keeping the bio 8-byte aligned.
    const FRONT_PAD: usize = core::mem::size_of::<C>().next_multiple_of(8);

    /// Creates a bio set holding `pool_size` bios in reserve, with `flags`
    /// (`BIOSET_NEED_BVECS`, `BIOSET_PERCPU_CACHE`).
    ///
    /// With `BIOSET_PERCPU_CACHE`, as the block layer's own direct I/O bio sets have
    /// (`block/fops.c`, `fs/iomap/direct-io.c`), `bio_alloc_bioset()` takes bios of up to
    /// `BIO_INLINE_VECS` bvecs (bounce bios up to 16 KiB, all clones) from a list of the
    /// local CPU, and `bio_put()` puts them on the list of the CPU where they complete,
    /// when that is process or hard interrupt context. Bios completed in soft interrupt
    /// context, larger ones and those the reserve served are freed as before (through the
    /// reserve's mempool, which refills first), and the reserve still backs what neither
    /// the cache nor the slab allocator can serve. A CPU's list holds up to about
    /// `ALLOC_CACHE_MAX` (256) bios: up to about 100 KiB per CPU and device over both sets.
    /// Nothing shrinks it; it is freed when the CPU goes offline and by `bioset_exit()`.
    pub(super) fn new(pool_size: u32, flags: u32) -> impl PinInit<Self, Error> {
        const { assert!(core::mem::align_of::<C>() <= 8) };
        try_pin_init!(Self {
            inner <- Opaque::try_ffi_init(|slot: *mut bindings::bio_set| {
                // SAFETY: `slot` is valid for writes. `bioset_init` expects a zeroed set: it
                // leaves the fields of features not asked for (rescuer, per-CPU cache) alone.
                unsafe { core::ptr::write_bytes(slot, 0, 1) };
                // SAFETY: `slot` is a zeroed, pinned `bio_set`.
                kernel::error::to_result(unsafe {
                    bindings::bioset_init(slot, pool_size, Self::FRONT_PAD as u32, flags as i32)
                })
            }),
            _ctx: PhantomData,
        })
    }

    /// Returns the raw bio set, for the other wrappers of this module.
    pub(super) fn as_raw(&self) -> *mut bindings::bio_set {
        self.inner.get()
    }

    /// Returns the context of `bio`.
    ///
    /// # Safety
    ///
    /// `bio` must have been allocated from a `BioSet<C>` and not be freed.
    pub(super) unsafe fn ctx_of(bio: *mut bindings::bio) -> *mut C {
        // SAFETY: The bio set places the context `FRONT_PAD` bytes before each bio, within
        // the same allocation; the pad is a multiple of 8 and `C` needs no more.
        unsafe { bio.cast::<u8>().sub(Self::FRONT_PAD).cast() }
    }

    /// Returns the bio whose context is at `ctx`.
    ///
    /// # Safety
    ///
    /// `ctx` must be the context of a bio allocated from a `BioSet<C>` and not freed.
    pub(super) unsafe fn bio_of(ctx: *mut C) -> *mut bindings::bio {
        // SAFETY: The bio follows its context `FRONT_PAD` bytes on, in the same allocation.
        unsafe { ctx.cast::<u8>().add(Self::FRONT_PAD).cast() }
    }
}

#[pinned_drop]
impl<C> PinnedDrop for BioSet<C> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariant the set was initialised and no bio of it is
        // outstanding any more.
        unsafe { bindings::bioset_exit(self.inner.get()) };
    }
}
