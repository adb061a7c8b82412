// SPDX-License-Identifier: GPL-2.0

//! How bounce memory is cut into chunks.

#![deny(unsafe_code)]

use kernel::prelude::*;

/// The size of a page.
const PAGE_SIZE: u32 = kernel::page::PAGE_SIZE as u32;

/// The largest chunk: order 4, 64 KiB of contiguous pages. Larger orders are rarely free
/// on a busy machine, and a 64 KiB copy already runs at memory speed.
pub(crate) const MAX_CHUNK_ORDER: u32 = 4;

/// The most bytes one bounce bio carries: `BIO_MAX_VECS` (256) pages, so that a bio fits
/// in its bvecs and in the page reserve even when only single pages can be had. Larger
/// bios are split first.
pub(crate) const MAX_BOUNCE_BYTES: u32 = 256 * PAGE_SIZE;

/// The order of the chunk for the next `left` bytes: the smallest that holds them, at
/// most `max_order`.
pub(crate) fn chunk_order(left: u32, max_order: u32) -> u32 {
    let pages = left.div_ceil(PAGE_SIZE).max(1);
    pages.next_power_of_two().trailing_zeros().min(max_order)
}

/// The most chunks `size` bytes can take: one per page.
pub(crate) fn max_chunks(size: u32) -> u16 {
    size.div_ceil(PAGE_SIZE) as u16
}

#[kunit_tests(blkbounce_chunking)]
mod tests {
    use super::*;

    #[test]
    fn orders() {
        assert_eq!(chunk_order(1, MAX_CHUNK_ORDER), 0);
        assert_eq!(chunk_order(4096, MAX_CHUNK_ORDER), 0);
        assert_eq!(chunk_order(4097, MAX_CHUNK_ORDER), 1);
        assert_eq!(chunk_order(3 * 4096, MAX_CHUNK_ORDER), 2);
        assert_eq!(chunk_order(65536, MAX_CHUNK_ORDER), 4);
        assert_eq!(chunk_order(MAX_BOUNCE_BYTES, MAX_CHUNK_ORDER), 4);
        assert_eq!(chunk_order(MAX_BOUNCE_BYTES, 2), 2);
        assert_eq!(chunk_order(0, MAX_CHUNK_ORDER), 0);
    }

    #[test]
    fn chunks_fit_in_bvecs() {
        assert_eq!(max_chunks(512), 1);
        assert_eq!(max_chunks(4096), 1);
        assert_eq!(max_chunks(4097), 2);
        assert_eq!(max_chunks(MAX_BOUNCE_BYTES), 256);
    }
}
