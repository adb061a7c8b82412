// SPDX-License-Identifier: GPL-2.0

//! Page-aligned I/O buffers that other threads may rewrite while the kernel uses them.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::fs::File;
use std::io;
use std::os::unix::io::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicU8, Ordering};

/// The alignment of every buffer: a page, enough for `O_DIRECT` on 4096-byte blocks.
pub const ALIGN: usize = 4096;

/// A zeroed buffer of `len` bytes at `offset` bytes past a page boundary: anonymous memory
/// of the heap, or a shared mapping of a file.
///
/// Its bytes are atomics, so threads may rewrite them while a system call reads or
/// writes the same memory, which is the point of the tests.
pub struct Buffer {
    base: *mut u8,
    backing: Backing,
    offset: usize,
    len: usize,
}

enum Backing {
    Heap(Layout),
    /// A shared mapping of this many bytes.
    Mapping(usize),
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
            backing: Backing::Heap(layout),
            offset,
            len,
        }
    }

    /// Maps the first `len` bytes of `file` shared (`MAP_SHARED`): writes to the buffer
    /// are writes to the file's pages.
    pub fn map_file(file: &File, len: usize) -> io::Result<Self> {
        // SAFETY: A new mapping at an address the kernel picks; nothing else is touched.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            base: base.cast(),
            backing: Backing::Mapping(len),
            offset: 0,
            len,
        })
    }

    /// Allocates `len` bytes at `offset` bytes into anonymous huge pages (`MAP_HUGETLB`, of
    /// the default huge page size), so that direct I/O gets multi-page bvecs. Needs huge
    /// pages reserved (`/proc/sys/vm/nr_hugepages`).
    pub fn huge(len: usize, offset: usize) -> io::Result<Self> {
        const HUGE: usize = 2 << 20;
        let map_len = (offset + len).div_ceil(HUGE).max(1) * HUGE;
        // SAFETY: A new private mapping at an address the kernel picks.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            base: base.cast(),
            backing: Backing::Mapping(map_len),
            offset,
            len,
        })
    }

    /// Allocates `len` bytes of shmem: a shared mapping of a new memfd.
    pub fn memfd(len: usize) -> io::Result<Self> {
        // SAFETY: The name is a NUL-terminated string.
        let fd = unsafe { libc::memfd_create(c"blkbounce-buffer".as_ptr(), 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor owned by nobody else.
        let file = unsafe { File::from_raw_fd(fd) };
        file.set_len(len as u64)?;
        // The mapping keeps the memfd's pages after the descriptor is closed.
        Self::map_file(&file, len)
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
        match self.backing {
            // SAFETY: `base` was allocated with `layout`.
            Backing::Heap(layout) => unsafe { dealloc(self.base, layout) },
            // SAFETY: `base` was mapped for `len` bytes and nobody uses it any more.
            Backing::Mapping(len) => unsafe {
                libc::munmap(self.base.cast(), len);
            },
        }
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

    #[test]
    fn memfd_is_shared_memory() {
        let mut b = Buffer::memfd(8192).unwrap();
        assert_eq!(b.as_ptr() as usize % ALIGN, 0);
        b.bytes_mut()[8191] = 3;
        assert_eq!(b.to_vec()[8191], 3);
    }
}
