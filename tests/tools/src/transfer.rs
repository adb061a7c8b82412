// SPDX-License-Identifier: GPL-2.0

//! Writes that reach a file without `write(2)` copying the data: `vmsplice` + `splice`,
//! `sendfile` and `copy_file_range`. Into a file opened `O_DIRECT`, each hands the block
//! layer the source's own pages (user memory, or another file's page cache) by reference,
//! not pinned.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Moves user memory into a file through a pipe: `vmsplice` then `splice`.
pub struct Splicer {
    read_end: OwnedFd,
    write_end: OwnedFd,
    size: usize,
}

impl Splicer {
    /// Creates a pipe that holds `size` bytes from any address: one page more than `size`,
    /// as a buffer off a page boundary spans one page more.
    pub fn new(size: usize) -> io::Result<Self> {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: Both descriptors are new and owned by nobody else.
        let (read_end, write_end) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: Plain fcntl on a descriptor owned here.
        if unsafe {
            libc::fcntl(
                write_end.as_raw_fd(),
                libc::F_SETPIPE_SZ,
                (size + 4096) as libc::c_int,
            )
        } < 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            read_end,
            write_end,
            size,
        })
    }

    /// Writes `len` bytes at `buf` to `file` at `offset`: `vmsplice` puts references to
    /// the pages in the pipe, `splice` writes them out. After a failed `splice` the pipe
    /// is replaced, dropping what it still held.
    ///
    /// # Safety
    ///
    /// `buf` must be valid for reads of `len` bytes until the call returns.
    pub unsafe fn write_at(
        &mut self,
        file: &File,
        buf: *const u8,
        len: usize,
        offset: u64,
    ) -> io::Result<()> {
        let result = self
            .vmsplice(buf, len)
            .and_then(|()| self.splice(file, len, offset));
        if result.is_err() {
            *self = Self::new(self.size)?;
        }
        result
    }

    fn vmsplice(&self, buf: *const u8, len: usize) -> io::Result<()> {
        let mut done = 0;
        while done < len {
            let iov = libc::iovec {
                iov_base: buf.wrapping_add(done).cast_mut().cast(),
                iov_len: len - done,
            };
            // SAFETY: The iovec lies within `buf`, valid for `len` bytes by the caller's
            // promise; without SPLICE_F_GIFT the pages stay the caller's.
            let n = unsafe { libc::vmsplice(self.write_end.as_raw_fd(), &iov, 1, 0) };
            done += progress(n)?;
        }
        Ok(())
    }

    fn splice(&self, file: &File, len: usize, offset: u64) -> io::Result<()> {
        let mut off = offset as libc::loff_t;
        let mut left = len;
        while left > 0 {
            // SAFETY: Plain splice between two descriptors; `off` is a valid offset.
            let n = unsafe {
                libc::splice(
                    self.read_end.as_raw_fd(),
                    std::ptr::null_mut(),
                    file.as_raw_fd(),
                    &mut off,
                    left,
                    0,
                )
            };
            left -= progress(n)?;
        }
        Ok(())
    }
}

/// Copies `len` bytes from the start of `src` to `dst` at `offset` with `sendfile`.
pub fn sendfile_at(dst: &File, src: &File, len: usize, offset: u64) -> io::Result<()> {
    // SAFETY: Plain lseek on a descriptor.
    if unsafe { libc::lseek(dst.as_raw_fd(), offset as libc::off_t, libc::SEEK_SET) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut in_off: libc::off_t = 0;
    let mut left = len;
    while left > 0 {
        // SAFETY: Plain sendfile between two descriptors; `in_off` is a valid offset.
        let n = unsafe { libc::sendfile(dst.as_raw_fd(), src.as_raw_fd(), &mut in_off, left) };
        left -= progress(n)?;
    }
    Ok(())
}

/// Copies `len` bytes from the start of `src` to `dst` at `offset` with
/// `copy_file_range`; within one filesystem without reflink (ext4) the kernel splices.
pub fn copy_file_range_at(dst: &File, src: &File, len: usize, offset: u64) -> io::Result<()> {
    let mut in_off: libc::loff_t = 0;
    let mut out_off = offset as libc::loff_t;
    let mut left = len;
    while left > 0 {
        // SAFETY: Plain copy_file_range between two descriptors with valid offsets.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut in_off,
                dst.as_raw_fd(),
                &mut out_off,
                left,
                0,
            )
        };
        left -= progress(n)?;
    }
    Ok(())
}

/// Turns a system call's byte count into progress: an error for -1, and for 0, which
/// would loop for ever.
fn progress(n: isize) -> io::Result<usize> {
    match n {
        n if n < 0 => Err(io::Error::last_os_error()),
        0 => Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "no progress (0 bytes)",
        )),
        n => Ok(n as usize),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    fn temp_file(name: &str, data: &[u8]) -> File {
        let path = std::env::temp_dir().join(format!("blkbounce-{name}-{}", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        file.write_all(data).unwrap();
        file
    }

    fn contents(mut file: &File) -> Vec<u8> {
        let mut out = Vec::new();
        file.rewind().unwrap();
        file.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn each_path_writes_the_data_at_the_offset() {
        let data: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
        let src = temp_file("src", &data);
        let mut splicer = Splicer::new(8192).unwrap();
        for (i, path) in ["splice", "sendfile", "copy_file_range"].iter().enumerate() {
            let dst = temp_file(path, &[0; 4096]);
            match i {
                // SAFETY: `data` is valid for its length.
                0 => unsafe { splicer.write_at(&dst, data.as_ptr(), data.len(), 4096) },
                1 => sendfile_at(&dst, &src, data.len(), 4096),
                _ => copy_file_range_at(&dst, &src, data.len(), 4096),
            }
            .unwrap();
            let out = contents(&dst);
            assert_eq!(&out[4096..], &data[..], "{path}");
            assert!(out[..4096].iter().all(|&b| b == 0), "{path}");
        }
    }

    #[test]
    fn errors_come_back_and_the_pipe_is_replaced() {
        let data = [1u8; 4096];
        let mut splicer = Splicer::new(4096).unwrap();
        let read_only = File::open("/proc/self/cmdline").unwrap();
        // SAFETY: `data` is valid for its length.
        assert!(unsafe { splicer.write_at(&read_only, data.as_ptr(), 4096, 0) }.is_err());
        let dst = temp_file("after-error", &[]);
        // SAFETY: As above.
        unsafe { splicer.write_at(&dst, data.as_ptr(), 4096, 0) }.unwrap();
        assert_eq!(contents(&dst), data);
    }
}
