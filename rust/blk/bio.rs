// SPDX-License-Identifier: GPL-2.0

//! A read-only view of a `struct bio`, and a walk over its data page by page.

use kernel::{bindings, fmt, types::Opaque};

/// What a bio asks of the device, as far as blkbounce tells operations apart.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum BioOp {
    /// `REQ_OP_READ`.
    Read,
    /// `REQ_OP_WRITE`, with data or (as a flush) without.
    Write,
    /// Anything else: flush, discard, write zeroes, zone operations.
    Other,
}

impl fmt::Display for BioOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Other => "other",
        })
    }
}

/// `REQ_NOWAIT` (`enum req_flag_bits`, `include/linux/blk_types.h`).
const REQ_NOWAIT: u32 = 1 << bindings::req_flag_bits___REQ_NOWAIT;
/// `REQ_IDLE` (`enum req_flag_bits`).
const REQ_IDLE: u32 = 1 << bindings::req_flag_bits___REQ_IDLE;
const REQ_OP_MASK: u32 = (1 << bindings::REQ_OP_BITS) - 1;
const PAGE_SIZE: u32 = kernel::page::PAGE_SIZE as u32;

/// A bio, seen through a shared reference.
///
/// # Invariants
///
/// The wrapped `struct bio` is valid and not completed for as long as the reference lives,
/// and its data (`bi_io_vec` from `bi_iter` on) does not change.
#[repr(transparent)]
pub(crate) struct Bio(Opaque<bindings::bio>);

/// A piece of a bio's data that lies within one page.
#[derive(Clone, Copy)]
pub(super) struct PagePiece {
    pub(super) page: *mut bindings::page,
    pub(super) offset: u32,
    pub(super) len: u32,
}

impl Bio {
    /// Creates a reference to the bio at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid bio that is not completed, freed or changed by anybody
    /// else while the returned reference lives.
    pub(super) unsafe fn from_raw<'a>(ptr: *mut bindings::bio) -> &'a Self {
        // SAFETY: `Bio` is a transparent wrapper of `bindings::bio`, and the caller
        // guarantees validity for `'a`.
        unsafe { &*ptr.cast::<Self>() }
    }

    pub(super) fn as_raw(&self) -> *mut bindings::bio {
        self.0.get()
    }

    pub(super) fn opf(&self) -> u32 {
        // SAFETY: By the type invariant the bio is valid; `bi_opf` does not change while
        // the driver owns the bio.
        unsafe { (*self.as_raw()).bi_opf }
    }

    /// Returns the operation.
    pub(crate) fn op(&self) -> BioOp {
        match self.opf() & REQ_OP_MASK {
            bindings::req_op_REQ_OP_READ => BioOp::Read,
            bindings::req_op_REQ_OP_WRITE => BioOp::Write,
            _ => BioOp::Other,
        }
    }

    /// Returns `true` if the submitter must not be made to sleep (`REQ_NOWAIT`).
    pub(crate) fn is_nowait(&self) -> bool {
        self.opf() & REQ_NOWAIT != 0
    }

    /// Returns `true` for a bio that may come from direct I/O (`REQ_IDLE`): every direct I/O
    /// path sets it on writes (`block/fops.c`, `fs/iomap/direct-io.c`, `fs/direct-io.c`),
    /// and page cache writeback never does (`wbc_to_write_flags`).
    pub(crate) fn may_be_direct(&self) -> bool {
        self.opf() & REQ_IDLE != 0
    }

    /// Returns the first sector (512 bytes) the bio addresses.
    pub(crate) fn sector(&self) -> u64 {
        // SAFETY: By the type invariant the bio is valid.
        unsafe { (*self.as_raw()).bi_iter.bi_sector }
    }

    /// Returns the number of bytes the bio covers.
    pub(crate) fn size(&self) -> u32 {
        // SAFETY: By the type invariant the bio is valid.
        unsafe { (*self.as_raw()).bi_iter.bi_size }
    }

    /// Returns `true` for a read or write that moves data.
    pub(crate) fn has_data(&self) -> bool {
        self.size() != 0 && self.op() != BioOp::Other
    }

    /// Calls `f` for each piece of the data, in order, from `bi_iter` on, until `f`
    /// returns `false`. Multi-page bvecs are cut at page boundaries.
    pub(super) fn for_each_piece(&self, mut f: impl FnMut(PagePiece) -> bool) {
        // SAFETY: By the type invariant the bio and its bvec table are valid and stable;
        // `bi_iter` stays within the table.
        unsafe {
            let bio = self.as_raw();
            let iter = (*bio).bi_iter;
            let (mut idx, mut done, mut left) =
                (iter.bi_idx as usize, iter.bi_offset, iter.bi_size);
            while left > 0 {
                let bv = *(*bio).bi_io_vec.add(idx);
                let mut len = (bv.bv_len - done).min(left);
                let mut offset = bv.bv_offset + done;
                left -= len;
                while len > 0 {
                    let piece = PagePiece {
                        page: bv.bv_page.add((offset / PAGE_SIZE) as usize),
                        offset: offset % PAGE_SIZE,
                        len: len.min(PAGE_SIZE - offset % PAGE_SIZE),
                    };
                    if !f(piece) {
                        return;
                    }
                    offset += piece.len;
                    len -= piece.len;
                }
                idx += 1;
                done = 0;
            }
        }
    }
}
