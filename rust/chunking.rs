// SPDX-License-Identifier: GPL-2.0

//! How bounce memory is cut into chunks.

use kernel::{page::PAGE_SIZE, prelude::*};

/// The largest chunk: order 4, 64 KiB of contiguous pages. Larger orders are rarely free
/// on a busy machine, and a 64 KiB copy already runs at memory speed.
pub(crate) const MAX_CHUNK_ORDER: u32 = 4;

/// The largest chunk order for a lower device whose segments hold chunks of up to
/// `max_chunk_bytes` each (`SegmentLimits::max_chunk_bytes`), and at most `limit`: a chunk
/// is one segment, so that a bounce bio has no more segments than chunks.
pub(crate) fn max_chunk_order(max_chunk_bytes: u32, limit: u32) -> u32 {
    (max_chunk_bytes / PAGE_SIZE as u32)
        .max(1)
        .ilog2()
        .min(limit)
}

/// The most bytes one bounce bio carries: `BIO_MAX_VECS` (256) pages, so that a bio fits
/// in its bvecs and in the page reserve even when only single pages can be had. Larger
/// bios are split first.
pub(crate) const MAX_BOUNCE_BYTES: u32 = 256 * PAGE_SIZE as u32;

/// The order of the chunk for the next `left` bytes: the largest that they fill (rounded
/// up to whole pages), at most `max_order`. A 36 KiB bio takes 32 KiB and 4 KiB, not 64 KiB.
pub(crate) fn chunk_order(left: u32, max_order: u32) -> u32 {
    let pages = left.div_ceil(PAGE_SIZE as u32).max(1);
    pages.ilog2().min(max_order)
}

/// The bounce memory a bio of `size` bytes takes: whole pages.
pub(crate) fn bounce_bytes(size: u32) -> u32 {
    size.div_ceil(PAGE_SIZE as u32) * PAGE_SIZE as u32
}

/// The most chunks `size` bytes can take: one per page.
pub(crate) fn max_chunks(size: u32) -> u16 {
    size.div_ceil(PAGE_SIZE as u32) as u16
}

#[kunit_tests(blkbounce_chunking)]
mod tests {
    use super::*;

    #[test]
    fn orders() {
        assert_eq!(chunk_order(1, MAX_CHUNK_ORDER), 0);
        assert_eq!(chunk_order(4096, MAX_CHUNK_ORDER), 0);
        assert_eq!(chunk_order(4097, MAX_CHUNK_ORDER), 1);
        assert_eq!(chunk_order(3 * 4096, MAX_CHUNK_ORDER), 1);
        assert_eq!(chunk_order(4 * 4096, MAX_CHUNK_ORDER), 2);
        assert_eq!(chunk_order(36 * 1024, MAX_CHUNK_ORDER), 3);
        assert_eq!(chunk_order(65536, MAX_CHUNK_ORDER), 4);
        assert_eq!(chunk_order(MAX_BOUNCE_BYTES, MAX_CHUNK_ORDER), 4);
        assert_eq!(chunk_order(MAX_BOUNCE_BYTES, 2), 2);
        assert_eq!(chunk_order(0, MAX_CHUNK_ORDER), 0);
    }

    /// The chunks of a bio, in order, when every order is to be had.
    fn chunks(size: u32) -> KVec<u32> {
        let mut out = KVec::new();
        let mut left = bounce_bytes(size);
        while left > 0 {
            let chunk = (PAGE_SIZE as u32) << chunk_order(left, MAX_CHUNK_ORDER);
            out.push(chunk, GFP_KERNEL).unwrap();
            left -= chunk;
        }
        out
    }

    #[test]
    fn chunks_never_exceed_the_bio() {
        assert_eq!(&chunks(36 * 1024)[..], &[32768, 4096]);
        assert_eq!(&chunks(512)[..], &[4096]);
        assert_eq!(&chunks(4096 + 512)[..], &[8192]);
        assert_eq!(&chunks(200 * 1024)[..], &[65536, 65536, 65536, 8192]);
        for kib in 1..=1024 {
            let c = chunks(kib * 1024);
            assert_eq!(c.iter().sum::<u32>(), bounce_bytes(kib * 1024));
            assert!(c.len() <= max_chunks(kib * 1024) as usize);
        }
    }

    #[test]
    fn chunks_are_segments() {
        assert_eq!(max_chunk_order(1 << 31, MAX_CHUNK_ORDER), MAX_CHUNK_ORDER);
        assert_eq!(max_chunk_order(65536, MAX_CHUNK_ORDER), 4);
        assert_eq!(max_chunk_order(32768, MAX_CHUNK_ORDER), 3);
        assert_eq!(max_chunk_order(4096, MAX_CHUNK_ORDER), 0);
        assert_eq!(max_chunk_order(65536, 0), 0);
    }

    #[test]
    fn chunks_fit_in_bvecs() {
        assert_eq!(max_chunks(512), 1);
        assert_eq!(max_chunks(4096), 1);
        assert_eq!(max_chunks(4097), 2);
        assert_eq!(max_chunks(MAX_BOUNCE_BYTES), 256);
    }
}
