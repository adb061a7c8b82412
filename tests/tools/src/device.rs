// SPDX-License-Identifier: GPL-2.0

//! Opening block devices with or without `O_DIRECT`, and positioned I/O that reports the
//! raw errno.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;

/// Opens `path` for reading and writing, with `O_DIRECT` if `direct`.
pub fn open(path: &str, direct: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    if direct {
        options.custom_flags(libc::O_DIRECT);
    }
    options.open(path)
}

/// Creates (or opens) the regular file `path` with `O_DIRECT` and makes it `len` bytes.
pub fn create(path: &str, len: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    file.set_len(len)?;
    Ok(file)
}

/// Writes all of `buf` at `offset`; a short write is an error.
///
/// # Safety
///
/// `buf` must be valid for reads of `len` bytes for the duration of the call.
pub unsafe fn write_at_raw(file: &File, buf: *const u8, len: usize, offset: u64) -> io::Result<()> {
    // SAFETY: The caller guarantees `buf` is valid for `len` bytes.
    let n = unsafe { libc::pwrite(file.as_raw_fd(), buf.cast(), len, offset as libc::off_t) };
    check(n, len)
}

/// Reads `len` bytes at `offset` into `buf`; a short read is an error.
///
/// # Safety
///
/// `buf` must be valid for writes of `len` bytes for the duration of the call.
pub unsafe fn read_at_raw(file: &File, buf: *mut u8, len: usize, offset: u64) -> io::Result<()> {
    // SAFETY: The caller guarantees `buf` is valid for `len` bytes.
    let n = unsafe { libc::pread(file.as_raw_fd(), buf.cast(), len, offset as libc::off_t) };
    check(n, len)
}

/// Writes (`write`) or reads `len` bytes at `offset` from or into `buf` with one
/// `pwritev2` or `preadv2` with `flags` (`RWF_*`), cut into iovecs of the sizes in `pieces`
/// (repeated; the last is shortened to fit).
///
/// # Safety
///
/// `buf` must be valid for reads and writes of `len` bytes for the duration of the call.
pub unsafe fn vectored_at_raw(
    file: &File,
    buf: *mut u8,
    len: usize,
    pieces: &[usize],
    offset: u64,
    write: bool,
    flags: i32,
) -> io::Result<()> {
    let iov = iovecs(buf, len, pieces);
    let (fd, count, off) = (file.as_raw_fd(), iov.len() as i32, offset as libc::off_t);
    // SAFETY: Each iovec lies within `buf`, valid for `len` bytes by the caller's promise.
    let n = unsafe {
        if write {
            libc::pwritev2(fd, iov.as_ptr(), count, off, flags)
        } else {
            libc::preadv2(fd, iov.as_ptr(), count, off, flags)
        }
    };
    check(n, len)
}

/// Returns the logical block size of the block device `file` (`BLKSSZGET`).
pub fn logical_block_size(file: &File) -> io::Result<u64> {
    let mut size: libc::c_int = 0;
    // SAFETY: `BLKSSZGET` writes one int.
    if unsafe { libc::ioctl(file.as_raw_fd(), libc::BLKSSZGET, &mut size) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(size as u64)
}

/// Cuts `len` bytes at `buf` into iovecs of the sizes in `pieces`, repeated.
fn iovecs(buf: *mut u8, len: usize, pieces: &[usize]) -> Vec<libc::iovec> {
    let mut iov = Vec::new();
    let mut at = 0;
    for &piece in pieces.iter().cycle() {
        if at >= len {
            break;
        }
        let n = piece.min(len - at);
        iov.push(libc::iovec {
            // The pointer stays within the caller's buffer: `at < len`.
            iov_base: buf.wrapping_add(at).cast(),
            iov_len: n,
        });
        at += n;
    }
    iov
}

fn check(n: isize, len: usize) -> io::Result<()> {
    match n {
        n if n < 0 => Err(io::Error::last_os_error()),
        n if n as usize != len => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("short transfer: {n} of {len} bytes"),
        )),
        _ => Ok(()),
    }
}

/// Drops the clean page cache pages of `file`, so buffered reads go to the device.
pub fn drop_cache(file: &File) -> io::Result<()> {
    file.sync_all()?;
    // SAFETY: `posix_fadvise` only reads its arguments.
    let ret = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    Ok(())
}

/// Writes `buf` at `offset` with the standard library (for buffered I/O).
pub fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    file.write_all_at(buf, offset)
}

/// Reads `buf.len()` bytes at `offset` with the standard library.
pub fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    file.read_exact_at(buf, offset)
}
