// SPDX-License-Identifier: GPL-2.0

//! Page-aligned I/O buffers that other threads may rewrite while the kernel uses them.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::sync::atomic::{AtomicU8, Ordering};

/// The alignment of every buffer: a page, enough for `O_DIRECT` on 4096-byte blocks.
pub const ALIGN: usize = 4096;

/// A zeroed buffer of `len` bytes at `offset` bytes past a page boundary.
///
/// Its bytes are atomics, so threads may rewrite them while a system call reads or
/// writes the same memory, which is the point of the tests.
pub struct Buffer {
    base: *mut u8,
    layout: Layout,
    offset: usize,
    len: usize,
}

// SAFETY: The buffer is plain memory; all access from Rust goes through atomics or through
// `&mut self`.
unsafe impl Send for Buffer {}
// SAFETY: Shared access only touches the bytes as `AtomicU8`.
unsafe impl Sync for Buffer {}

impl Buffer {
    /// Allocates a page-aligned buffer of `len` bytes.
    pub fn new(len: usize) -> Self {
        Self::with_offset(len, 0)
    }

    /// Allocates a buffer of `len` bytes that starts `offset` bytes past a page boundary.
    pub fn with_offset(len: usize, offset: usize) -> Self {
        let layout = Layout::from_size_align((offset + len).max(1), ALIGN).expect("buffer size");
        // SAFETY: The layout has a non-zero size.
        let base = unsafe { alloc_zeroed(layout) };
        assert!(!base.is_null(), "out of memory for a {len}-byte buffer");
        Self {
            base,
            layout,
            offset,
            len,
        }
    }

    /// Returns the buffer's length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Returns `true` for an empty buffer.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns the address of the first byte, for system calls.
    pub fn as_ptr(&self) -> *mut u8 {
        // SAFETY: `offset` is within the allocation.
        unsafe { self.base.add(self.offset) }
    }

    /// Returns the bytes as atomics, for concurrent rewriting.
    pub fn atomics(&self) -> &[AtomicU8] {
        // SAFETY: The memory is valid for `len` bytes; `AtomicU8` has the layout of `u8`.
        unsafe { std::slice::from_raw_parts(self.as_ptr().cast::<AtomicU8>(), self.len) }
    }

    /// Returns the bytes, while no other thread touches them.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `&mut self` excludes other users; the memory is valid for `len` bytes.
        unsafe { std::slice::from_raw_parts_mut(self.as_ptr(), self.len) }
    }

    /// Copies the bytes out.
    pub fn to_vec(&self) -> Vec<u8> {
        self.atomics()
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: `base` was allocated with `layout`.
        unsafe { dealloc(self.base, self.layout) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_and_offset() {
        let b = Buffer::new(8192);
        assert_eq!(b.as_ptr() as usize % ALIGN, 0);
        let mut c = Buffer::with_offset(100, 512);
        assert_eq!(c.as_ptr() as usize % ALIGN, 512);
        c.bytes_mut()[99] = 7;
        assert_eq!(c.to_vec()[99], 7);
        assert_eq!(c.len(), 100);
    }
}
