// SPDX-License-Identifier: GPL-2.0

//! A read-only view of a `struct bio`, and a walk over its data page by page.

use kernel::{bindings, fmt, page::PAGE_SIZE, types::Opaque};

/// What a bio asks of the device, as far as blkbounce tells operations apart.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum BioOp {
    /// `REQ_OP_READ`.
    Read,
    /// `REQ_OP_WRITE`, with data or (as a flush) without.
    Write,
    /// `REQ_OP_DISCARD` or `REQ_OP_SECURE_ERASE`: its size is a range of sectors, not data.
    Discard,
    /// `REQ_OP_WRITE_ZEROES`: likewise.
    WriteZeroes,
    /// Anything else: flush, zone operations.
    Other,
}

impl fmt::Display for BioOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Discard => "discard",
            Self::WriteZeroes => "write-zeroes",
            Self::Other => "other",
        })
    }
}

/// `REQ_NOWAIT` (`enum req_flag_bits`, `include/linux/blk_types.h`).
pub(super) const REQ_NOWAIT: u32 = 1 << bindings::req_flag_bits___REQ_NOWAIT;
/// `REQ_POLLED` (`enum req_flag_bits`): the submitter polls for the completion.
pub(super) const REQ_POLLED: u32 = 1 << bindings::req_flag_bits___REQ_POLLED;
/// `REQ_DRV` (`enum req_flag_bits`): the driver's own flag.
pub(super) const REQ_DRV: u32 = 1 << bindings::req_flag_bits___REQ_DRV;
/// `REQ_NOMERGE` (`enum req_flag_bits`): not to be merged with other bios.
pub(super) const REQ_NOMERGE: u32 = 1 << bindings::req_flag_bits___REQ_NOMERGE;
/// `REQ_ATOMIC` (`enum req_flag_bits`): a write the device must not tear.
pub(super) const REQ_ATOMIC: u32 = 1 << bindings::req_flag_bits___REQ_ATOMIC;
/// `REQ_IDLE` (`enum req_flag_bits`).
const REQ_IDLE: u32 = 1 << bindings::req_flag_bits___REQ_IDLE;
/// `REQ_OP_MASK` (`include/linux/blk_types.h`): the operation bits of `bi_opf`.
const REQ_OP_MASK: bindings::blk_opf_t = (1 << bindings::REQ_OP_BITS) - 1;

/// A bio, seen through a shared reference.
///
/// # Invariants
///
/// The wrapped `struct bio` is valid and not completed for as long as the reference lives,
/// and its bvec table (`bi_io_vec` from `bi_iter` on) does not change. The data in its pages
/// may: user space can write them at any time, which is why blkbounce exists. So the data
/// is only ever read or written by the kernel's page-copy helpers, never through Rust
/// references or pointers.
#[repr(transparent)]
pub(crate) struct Bio(Opaque<bindings::bio>);

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

    /// Returns the raw bio, for the other wrappers of this module.
    pub(super) fn as_raw(&self) -> *mut bindings::bio {
        self.0.get()
    }

    /// Returns the operation and its flags (`bi_opf`).
    pub(super) fn opf(&self) -> u32 {
        // SAFETY: By the type invariant the bio is valid; `bi_opf` does not change while
        // the driver owns the bio.
        unsafe { (*self.as_raw()).bi_opf }
    }

    /// Returns the operation bits of `bi_opf` (`bio_op()`).
    pub(super) fn req_op(&self) -> bindings::blk_opf_t {
        self.opf() & REQ_OP_MASK
    }

    /// Returns the operation.
    pub(crate) fn op(&self) -> BioOp {
        match self.req_op() {
            bindings::req_op_REQ_OP_READ => BioOp::Read,
            bindings::req_op_REQ_OP_WRITE => BioOp::Write,
            bindings::req_op_REQ_OP_DISCARD | bindings::req_op_REQ_OP_SECURE_ERASE => {
                BioOp::Discard
            }
            bindings::req_op_REQ_OP_WRITE_ZEROES => BioOp::WriteZeroes,
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
        self.size() != 0 && matches!(self.op(), BioOp::Read | BioOp::Write)
    }

    /// Returns the bvecs that hold the data from `bi_iter` on, the offset of the data in
    /// the first of them, and its size.
    pub(super) fn data_bvecs(&self) -> (&[bindings::bio_vec], usize, usize) {
        let bio = self.as_raw();
        // SAFETY: By the type invariant the bio is valid.
        let iter = unsafe { (*bio).bi_iter };
        let (offset, size) = (iter.bi_offset as usize, iter.bi_size as usize);
        // A discard or write-zeroes bio has a size but no bvecs.
        if !self.has_data() {
            return (&[], 0, 0);
        }
        // SAFETY: By the type invariant the bvec table is valid and stable, and `bi_iter`
        // stays within it: the bvecs from `bi_idx` on cover `offset + size` bytes.
        unsafe {
            let first = (*bio).bi_io_vec.add(iter.bi_idx as usize);
            let (mut count, mut covered) = (0, 0);
            while covered < offset + size {
                covered += (*first.add(count)).bv_len as usize;
                count += 1;
            }
            (core::slice::from_raw_parts(first, count), offset, size)
        }
    }

    /// Calls `f` for each page of the data, in order, from `bi_iter` on, until `f`
    /// returns `false`. Multi-page bvecs give each of their pages.
    pub(super) fn for_each_page(&self, mut f: impl FnMut(*mut bindings::page) -> bool) {
        let (bvecs, mut skip, mut left) = self.data_bvecs();
        for bv in bvecs {
            let len = (bv.bv_len as usize - skip).min(left);
            let start = bv.bv_offset as usize + skip;
            skip = 0;
            if len == 0 {
                continue;
            }
            for page in start / PAGE_SIZE..=(start + len - 1) / PAGE_SIZE {
                if !f(bv.bv_page.wrapping_add(page)) {
                    return;
                }
            }
            left -= len;
        }
    }
}
