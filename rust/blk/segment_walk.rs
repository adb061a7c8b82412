// SPDX-License-Identifier: GPL-2.0

//! The walk of a copy between a bio's data and bounce memory.
//!
//! Two cursors advance together, as in `bio_copy_data()`: one over the bio's bvecs from its
//! iterator on, one over the bounce chunks from the first. Each step lies within one page of
//! the bio (what `memcpy_to_page()` and `memcpy_from_page()` take) and within one chunk
//! (contiguous memory). Each array is walked once, front to back.

#![deny(unsafe_code)]

use kernel::{
    bindings::{bio_vec, page},
    page::PAGE_SIZE,
};

/// One step of a copy.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Step {
    /// The page of the bio's data, and the offset in it.
    pub(crate) page: *mut page,
    pub(crate) offset: usize,
    /// The bounce chunk (index into the bounce bvecs), and the byte offset in it.
    pub(crate) chunk: usize,
    pub(crate) chunk_offset: usize,
    /// Bytes to copy.
    pub(crate) len: usize,
}

/// The walk over `size` bytes of a bio's data and the bounce chunks that hold them.
pub(crate) struct SegmentWalk<'a> {
    data: &'a [bio_vec],
    data_idx: usize,
    data_done: usize,
    left: usize,
    chunks: &'a [bio_vec],
    chunk_idx: usize,
    chunk_done: usize,
}

impl<'a> SegmentWalk<'a> {
    /// Walks `size` bytes of `data`, starting `offset` bytes into its first bvec (a bio
    /// iterator's `bi_offset`), against `chunks` from their start.
    pub(crate) fn new(
        data: &'a [bio_vec],
        offset: usize,
        size: usize,
        chunks: &'a [bio_vec],
    ) -> Self {
        Self {
            data,
            data_idx: 0,
            data_done: offset,
            left: size,
            chunks,
            chunk_idx: 0,
            chunk_done: 0,
        }
    }

    /// Returns the bytes not walked yet: zero once the walk has ended, unless one of the
    /// arrays was too short.
    pub(crate) fn left(&self) -> usize {
        self.left
    }

    /// Returns the only step of the walk of `size` bytes when the data lies within one page
    /// of its first bvec and within the first chunk, as a 4 KiB direct I/O's does, without
    /// the cursors' bookkeeping; else `None`, and the walk itself is taken.
    pub(crate) fn single_step(
        data: &[bio_vec],
        offset: usize,
        size: usize,
        chunks: &[bio_vec],
    ) -> Option<Step> {
        let (first, chunk) = (data.first()?, chunks.first()?);
        let at = first.bv_offset as usize + offset;
        let in_page = at % PAGE_SIZE;
        let one = size > 0
            && offset + size <= first.bv_len as usize
            && in_page + size <= PAGE_SIZE
            && size <= chunk.bv_len as usize;
        one.then(|| Step {
            page: first.bv_page.wrapping_add(at / PAGE_SIZE),
            offset: in_page,
            chunk: 0,
            chunk_offset: chunk.bv_offset as usize,
            len: size,
        })
    }
}

impl Iterator for SegmentWalk<'_> {
    type Item = Step;

    fn next(&mut self) -> Option<Step> {
        while self.left > 0 {
            let data = self.data.get(self.data_idx)?;
            let data_len = data.bv_len as usize;
            if self.data_done >= data_len {
                self.data_idx += 1;
                self.data_done = 0;
                continue;
            }
            let chunk = self.chunks.get(self.chunk_idx)?;
            let chunk_len = chunk.bv_len as usize;
            if self.chunk_done >= chunk_len {
                self.chunk_idx += 1;
                self.chunk_done = 0;
                continue;
            }
            let at = data.bv_offset as usize + self.data_done;
            let offset = at % PAGE_SIZE;
            let len = self
                .left
                .min(data_len - self.data_done)
                .min(PAGE_SIZE - offset)
                .min(chunk_len - self.chunk_done);
            let step = Step {
                page: data.bv_page.wrapping_add(at / PAGE_SIZE),
                offset,
                chunk: self.chunk_idx,
                chunk_offset: chunk.bv_offset as usize + self.chunk_done,
                len,
            };
            self.data_done += len;
            self.chunk_done += len;
            self.left -= len;
            return Some(step);
        }
        None
    }
}

#[cfg(not(blk_sample))]
#[kernel::prelude::kunit_tests(blkbounce_segment_walk)]
mod tests {
    use super::*;
    use kernel::prelude::*;

    /// A page address for a crafted bvec; never dereferenced.
    fn page_at(n: usize) -> *mut page {
        core::ptr::null_mut::<page>().wrapping_add(n)
    }

    fn bvec(page: usize, offset: usize, len: usize) -> bio_vec {
        bio_vec {
            bv_page: page_at(page),
            bv_len: len as u32,
            bv_offset: offset as u32,
        }
    }

    fn step(page: usize, offset: usize, chunk: usize, chunk_offset: usize, len: usize) -> Step {
        Step {
            page: page_at(page),
            offset,
            chunk,
            chunk_offset,
            len,
        }
    }

    fn walk(data: &[bio_vec], offset: usize, size: usize, chunks: &[bio_vec]) -> KVec<Step> {
        let mut steps = KVec::new();
        let mut walk = SegmentWalk::new(data, offset, size, chunks);
        for s in &mut walk {
            steps.push(s, GFP_KERNEL).unwrap();
        }
        assert_eq!(walk.left(), 0);
        steps
    }

    #[test]
    fn multi_page_bvec_is_cut_at_pages() {
        // 7680 bytes from offset 512 of a two-page bvec, into one 8 KiB chunk.
        let data = [bvec(10, 512, 7680)];
        let chunks = [bvec(50, 0, 8192)];
        let steps = walk(&data, 0, 7680, &chunks);
        assert_eq!(
            &steps[..],
            &[step(10, 512, 0, 0, 3584), step(11, 0, 0, 3584, 4096)]
        );
    }

    #[test]
    fn iterator_offset_and_chunk_boundaries() {
        // A split bio: its iterator starts 1024 bytes into the second bvec.
        let data = [bvec(1, 0, 4096), bvec(2, 0, 8192), bvec(5, 2048, 2048)];
        let chunks = [bvec(60, 0, 4096), bvec(70, 0, 4096), bvec(80, 0, 4096)];
        let steps = walk(&data[1..], 1024, 9216, &chunks);
        assert_eq!(
            &steps[..],
            &[
                step(2, 1024, 0, 0, 3072),
                step(3, 0, 0, 3072, 1024),
                step(3, 1024, 1, 0, 3072),
                step(5, 2048, 1, 3072, 1024),
                step(5, 3072, 2, 0, 1024),
            ]
        );
    }

    #[test]
    fn sector_sized_pieces() {
        // 512-byte bvecs in separate pages, into one chunk.
        let data = [bvec(1, 3584, 512), bvec(2, 0, 512), bvec(3, 1536, 512)];
        let chunks = [bvec(9, 0, 4096)];
        let steps = walk(&data, 0, 1536, &chunks);
        assert_eq!(
            &steps[..],
            &[
                step(1, 3584, 0, 0, 512),
                step(2, 0, 0, 512, 512),
                step(3, 1536, 0, 1024, 512)
            ]
        );
    }

    #[test]
    fn walks_each_array_once() {
        // 1 MiB of single pages into 64 KiB chunks: one step per page, chunks in order.
        let mut data = KVec::new();
        for i in 0..256 {
            data.push(bvec(2 * i, 0, 4096), GFP_KERNEL).unwrap();
        }
        let mut chunks = KVec::new();
        for i in 0..16 {
            chunks
                .push(bvec(1000 + 16 * i, 0, 65536), GFP_KERNEL)
                .unwrap();
        }
        let steps = walk(&data, 0, 1 << 20, &chunks);
        assert_eq!(steps.len(), 256);
        for (i, s) in steps.iter().enumerate() {
            assert_eq!(*s, step(2 * i, 0, i / 16, (i % 16) * 4096, 4096));
        }
    }

    #[test]
    fn single_step_is_the_walk_of_one_step() {
        /// The data, the offset and size of the copy, the chunks, and whether the data lies
        /// in one page of the first bvec and in the first chunk.
        type Case<'a> = (&'a [bio_vec], usize, usize, &'a [bio_vec], bool);
        let cases: [Case<'_>; 8] = [
            (&[bvec(1, 0, 4096)], 0, 4096, &[bvec(9, 0, 4096)], true),
            (&[bvec(1, 512, 1024)], 0, 1024, &[bvec(9, 0, 1024)], true),
            (&[bvec(1, 0, 8192)], 4096, 4096, &[bvec(9, 0, 4096)], true),
            (&[bvec(1, 0, 4096)], 1024, 2048, &[bvec(9, 0, 2048)], true),
            (&[bvec(1, 3584, 1024)], 0, 1024, &[bvec(9, 0, 4096)], false),
            (&[bvec(1, 0, 8192)], 0, 8192, &[bvec(9, 0, 8192)], false),
            (
                &[bvec(1, 0, 512), bvec(2, 0, 512)],
                0,
                1024,
                &[bvec(9, 0, 4096)],
                false,
            ),
            (
                &[bvec(1, 0, 4096)],
                0,
                4096,
                &[bvec(9, 0, 2048), bvec(8, 0, 2048)],
                false,
            ),
        ];
        for (data, offset, size, chunks, one) in cases {
            let steps = walk(data, offset, size, chunks);
            let single = SegmentWalk::single_step(data, offset, size, chunks);
            assert_eq!(single.is_some(), one);
            if let Some(step) = single {
                assert_eq!(&steps[..], &[step]);
            }
        }
    }

    #[test]
    fn short_chunks_leave_bytes() {
        let data = [bvec(1, 0, 8192)];
        let chunks = [bvec(9, 0, 4096)];
        let mut walk = SegmentWalk::new(&data, 0, 8192, &chunks);
        assert_eq!(walk.next(), Some(step(1, 0, 0, 0, 4096)));
        assert_eq!(walk.next(), None);
        assert_eq!(walk.left(), 4096);
    }
}
