// SPDX-License-Identifier: GPL-2.0

//! How an allocation of a bio or of bounce memory may wait for memory.

use kernel::bindings;

/// How an allocation may wait for memory.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Gfp {
    /// May sleep and reclaim, but not start I/O (`GFP_NOIO`): falls back to the reserve.
    NoIo,
    /// Never sleeps (`GFP_NOWAIT`): fails when neither the allocator nor the reserve has
    /// memory at once. For `REQ_NOWAIT` bios, and for the first, optimistic try of others.
    NoWait,
    /// A high-order chunk, only if there is one at once: `GFP_NOWAIT | __GFP_NORETRY |
    /// __GFP_NOMEMALLOC | __GFP_COMP`, as dm-crypt asks for its large pages.
    HighOrder,
}

impl Gfp {
    /// Returns the `gfp_t` flags.
    pub(super) fn as_raw(self) -> bindings::gfp_t {
        let bit = |b: u32| (1 as bindings::gfp_t) << b;
        match self {
            Self::NoIo => {
                bit(bindings::___GFP_DIRECT_RECLAIM_BIT) | bit(bindings::___GFP_KSWAPD_RECLAIM_BIT)
            }
            Self::NoWait => bindings::GFP_NOWAIT,
            Self::HighOrder => {
                bindings::GFP_NOWAIT
                    | bit(bindings::___GFP_NORETRY_BIT)
                    | bit(bindings::___GFP_NOMEMALLOC_BIT)
                    | bit(bindings::___GFP_COMP_BIT)
            }
        }
    }
}
