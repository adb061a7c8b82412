// SPDX-License-Identifier: GPL-2.0

//! The lower device's segment limits, and how a bounce bio is cut to them.
//!
//! A bounce bio is one bvec per chunk of bounce memory. The lower device splits a bio of
//! more segments than it takes, and the block layer ends a `REQ_NOWAIT` bio that needs a
//! split with `BLK_STS_AGAIN` (`bio_split_io_at`), whatever its submitter's buffer looked
//! like. So chunks are never larger than one segment, and a `REQ_NOWAIT` bounce bio of
//! more chunks than the lower device takes is sent down in pieces that each fit.

use core::iter::Peekable;
use kernel::{bindings, page::PAGE_SIZE};

/// What one bio of the lower device may carry without a split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentLimits {
    max_segments: u32,
    max_chunk_bytes: u32,
    logical_block_size: u32,
}

impl SegmentLimits {
    /// The limits of a device with `max_segments` segments per bio, of at most
    /// `max_segment_size` bytes each, none crossing a multiple of `seg_boundary_mask + 1`,
    /// and logical blocks of `logical_block_size` bytes (`struct queue_limits`).
    pub(crate) fn new(
        max_segments: u32,
        max_segment_size: u32,
        seg_boundary_mask: u64,
        logical_block_size: u32,
    ) -> Self {
        // A chunk is a power of two of pages, aligned to its size (the buddy allocator's),
        // so it is one segment if it is no larger than a segment and than the boundary.
        let boundary = seg_boundary_mask.saturating_add(1);
        let largest = u64::from(max_segment_size)
            .min(boundary)
            .max(PAGE_SIZE as u64);
        let max_chunk_bytes = 1u32 << largest.min(u64::from(u32::MAX)).ilog2();
        Self {
            max_segments: max_segments.max(1),
            max_chunk_bytes,
            logical_block_size,
        }
    }

    /// The most segments of one bio.
    pub(crate) fn max_segments(&self) -> u32 {
        self.max_segments
    }

    /// The largest chunk that is one segment: a power of two of at least a page. A device
    /// whose segments are smaller than a page still gets page-sized chunks, and splits them.
    pub(crate) fn max_chunk_bytes(&self) -> u32 {
        self.max_chunk_bytes
    }

    /// The largest atomic write unit whose bounce bio fits in one bio of the device: as
    /// many pages as it has segments, rounded down to a power of two. With logical blocks
    /// of up to a page, the block layer's own bound (`blk_queue_max_guaranteed_bio`) is no
    /// larger.
    pub(crate) fn max_atomic_unit(&self) -> u32 {
        let bytes = u64::from(self.max_segments.min(bindings::BIO_MAX_VECS)) * PAGE_SIZE as u64;
        1 << bytes.min(u64::from(u32::MAX)).ilog2()
    }

    /// The sizes in bytes of the pieces that a bio of chunks of `lens` bytes, in order, is
    /// cut into, so that each piece has at most [`Self::max_segments`] of them: every
    /// piece but the last, which is what is left. Pieces end on chunk ends, which are page
    /// boundaries: `None` for a device whose logical block is larger than a page, where a
    /// piece could end inside a block.
    pub(crate) fn pieces<I: Iterator<Item = u32>>(&self, lens: I) -> Option<Pieces<I>> {
        (self.logical_block_size as usize <= PAGE_SIZE).then(|| Pieces {
            lens: lens.peekable(),
            max: self.max_segments,
        })
    }
}

/// The iterator of [`SegmentLimits::pieces`].
pub(crate) struct Pieces<I: Iterator> {
    lens: Peekable<I>,
    max: u32,
}

impl<I: Iterator<Item = u32>> Iterator for Pieces<I> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let mut bytes = 0u32;
        for _ in 0..self.max {
            bytes += self.lens.next()?;
        }
        // A full piece is sent apart only if chunks follow it.
        self.lens.peek()?;
        Some(bytes)
    }
}

#[cfg(not(blk_sample))]
#[kernel::prelude::kunit_tests(blkbounce_segments)]
mod tests {
    use super::*;
    use kernel::prelude::*;

    const PAGE: u32 = PAGE_SIZE as u32;

    #[test]
    fn chunks_are_one_segment() {
        // NVMe (a virtual boundary): segments of any size.
        assert_eq!(
            SegmentLimits::new(128, u32::MAX, u64::MAX, 4096).max_chunk_bytes(),
            1 << 31
        );
        // The default: 64 KiB segments, a 4 GiB boundary.
        assert_eq!(
            SegmentLimits::new(128, 65536, 0xffff_ffff, 4096).max_chunk_bytes(),
            65536
        );
        // Not a power of two: the power of two below.
        assert_eq!(
            SegmentLimits::new(128, 65024, 0xffff_ffff, 4096).max_chunk_bytes(),
            32768
        );
        // A boundary below the segment size.
        assert_eq!(
            SegmentLimits::new(128, 65536, 0x3fff, 4096).max_chunk_bytes(),
            16384
        );
        // Smaller than a page: a page.
        assert_eq!(
            SegmentLimits::new(128, 512, 0xffff_ffff, 512).max_chunk_bytes(),
            PAGE
        );
        assert_eq!(
            SegmentLimits::new(0, 65536, 0xffff_ffff, 4096).max_segments(),
            1
        );
    }

    fn pieces(max_segments: u32, lens: &[u32]) -> KVec<u32> {
        let limits = SegmentLimits::new(max_segments, 65536, 0xffff_ffff, 512);
        let mut out = KVec::new();
        for p in limits.pieces(lens.iter().copied()).unwrap() {
            out.push(p, GFP_KERNEL).unwrap();
        }
        out
    }

    #[test]
    fn atomic_units_fit() {
        assert_eq!(
            SegmentLimits::new(128, u32::MAX, u64::MAX, 4096).max_atomic_unit(),
            512 * 1024
        );
        assert_eq!(
            SegmentLimits::new(127, u32::MAX, u64::MAX, 4096).max_atomic_unit(),
            256 * 1024
        );
        assert_eq!(
            SegmentLimits::new(2048, u32::MAX, u64::MAX, 4096).max_atomic_unit(),
            1 << 20
        );
        assert_eq!(
            SegmentLimits::new(1, u32::MAX, u64::MAX, 4096).max_atomic_unit(),
            PAGE
        );
    }

    #[test]
    fn no_pieces_over_large_blocks() {
        let limits = SegmentLimits::new(16, 65536, 0xffff_ffff, 16384);
        assert!(limits.pieces([PAGE; 32].into_iter()).is_none());
        let limits = SegmentLimits::new(16, 65536, 0xffff_ffff, 4096);
        assert!(limits.pieces([PAGE; 32].into_iter()).is_some());
    }

    #[test]
    fn pieces_fit_the_segments() {
        // 1 MiB of single pages over 128 segments: two pieces, the first sent apart.
        let pages = [PAGE; 256];
        assert_eq!(&pieces(128, &pages)[..], &[128 * PAGE]);
        // Over 16 segments: 16 pieces, 15 sent apart.
        let p = pieces(16, &pages);
        assert_eq!(p.len(), 15);
        assert!(p.iter().all(|&b| b == 16 * PAGE));
        // Exactly as many chunks as segments: no piece apart.
        assert!(pieces(256, &pages).is_empty());
        assert!(pieces(128, &pages[..128]).is_empty());
        // One chunk over: one piece apart.
        assert_eq!(&pieces(128, &pages[..129])[..], &[128 * PAGE]);
        // Mixed orders, and a short last chunk.
        let mixed = [65536, 65536, 8192, PAGE, 512];
        assert_eq!(&pieces(2, &mixed)[..], &[131072, 8192 + PAGE]);
        // Every piece but the last has `max_segments` chunks, and all add up.
        for max in 1..=256u32 {
            let p = pieces(max, &pages);
            let apart = p.len() as u32;
            assert_eq!(apart, 256u32.div_ceil(max) - 1);
            assert!(p.iter().all(|&b| b == max * PAGE));
            assert!(256 - apart * max <= max);
        }
    }
}
