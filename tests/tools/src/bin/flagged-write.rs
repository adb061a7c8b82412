// SPDX-License-Identifier: GPL-2.0

//! flagged-write: `O_DIRECT` writes with `RWF_ATOMIC` or `RWF_NOWAIT`, read back calmly,
//! and the atomic write unit that `statx` shows.
//!
//! ```text
//! flagged-write --dev PATH [--size SIZE] [--count N] [--offset BYTES] [--atomic]
//!               [--nowait] [--huge] [--seed N]
//! ```
//!
//! Prints `unit_min=A unit_max=B` (`STATX_WRITE_ATOMIC`; 0 and 0 if the device offers no
//! atomic writes), then, with `--count` above 0 (default 0), writes `--count` blocks of
//! `--size` bytes (default 4096) one after another from `--offset` on (default 0) with
//! `pwritev2()` and the flags asked for, each with the pattern of `--seed` at its offset,
//! from a buffer in huge pages with `--huge` (one physically contiguous segment;
//! `/proc/sys/vm/nr_hugepages` must have some). Then reads every block that was written
//! back without flags and checks it. Prints
//! `ok=N eagain=N einval=N other=N first_error=ERRNO verified=N bad=N`; exits 0 whatever
//! the writes did (the caller decides what each device should do), 1 only if a block
//! whose write succeeded reads back wrong.

use blkbounce_tests::{args::Args, buffer::Buffer, device, outcome, pattern};
use std::io;
use std::os::unix::io::AsRawFd;
use std::process::ExitCode;

/// `RWF_ATOMIC` (`include/uapi/linux/fs.h`).
const RWF_ATOMIC: i32 = 0x40;
/// `STATX_WRITE_ATOMIC` (`include/uapi/linux/stat.h`).
const STATX_WRITE_ATOMIC: u32 = 0x10000;
/// Offsets of `stx_atomic_write_unit_min` and `_max` in `struct statx`.
const UNIT_MIN_AT: usize = 168;
const UNIT_MAX_AT: usize = 172;

/// The atomic write unit of the file at `path`: (min, max), 0 and 0 without one.
fn atomic_unit(path: &str) -> io::Result<(u32, u32)> {
    let c_path = std::ffi::CString::new(path).map_err(io::Error::other)?;
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is as large as `struct statx`, which the kernel writes.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_statx,
            libc::AT_FDCWD,
            c_path.as_ptr(),
            0,
            STATX_WRITE_ATOMIC,
            buf.as_mut_ptr(),
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    let word = |at: usize| u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap());
    if word(0) & STATX_WRITE_ATOMIC == 0 {
        return Ok((0, 0));
    }
    Ok((word(UNIT_MIN_AT), word(UNIT_MAX_AT)))
}

/// One `pwritev2()` of all of `buf` at `offset` with `flags`.
fn pwritev2(file: &std::fs::File, buf: &Buffer, offset: u64, flags: i32) -> io::Result<()> {
    let iov = libc::iovec {
        iov_base: buf.as_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: `iov` describes `buf`, which lives across the call.
    let ret = unsafe { libc::pwritev2(file.as_raw_fd(), &iov, 1, offset as i64, flags) };
    match ret {
        n if n < 0 => Err(io::Error::last_os_error()),
        n if n as usize != buf.len() => Err(io::Error::other(format!("short write: {n}"))),
        _ => Ok(()),
    }
}

fn run() -> Result<bool, String> {
    let args = Args::parse(&["atomic", "nowait", "huge"])?;
    let path = args.required("dev")?;
    let size = args.size("size", 4096)? as usize;
    let count: u64 = args.number("count", 0)?;
    let start = args.size("offset", 0)?;
    let seed: u64 = args.number("seed", 1)?;
    let mut flags = 0;
    if args.flag("atomic") {
        flags |= RWF_ATOMIC;
    }
    if args.flag("nowait") {
        flags |= libc::RWF_NOWAIT;
    }

    let (unit_min, unit_max) = atomic_unit(path).map_err(|e| format!("statx {path}: {e}"))?;
    println!("unit_min={unit_min} unit_max={unit_max}");
    if count == 0 {
        return Ok(true);
    }
    let file = device::open(path, true).map_err(|e| format!("open {path}: {e}"))?;
    let mut buf = if args.flag("huge") {
        Buffer::huge(size, 0).map_err(|e| format!("huge pages: {e}"))?
    } else {
        Buffer::new(size)
    };
    let (mut ok, mut eagain, mut einval, mut other) = (0u64, 0u64, 0u64, 0u64);
    let mut first_error = String::from("none");
    let mut written = Vec::new();
    for i in 0..count {
        let offset = start + i * size as u64;
        pattern::fill(buf.bytes_mut(), seed, offset);
        match pwritev2(&file, &buf, offset, flags) {
            Ok(()) => {
                ok += 1;
                written.push(offset);
            }
            Err(e) => {
                if first_error == "none" {
                    first_error = e.to_string();
                }
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => eagain += 1,
                    Some(libc::EINVAL) => einval += 1,
                    _ => other += 1,
                }
            }
        }
    }
    let (mut verified, mut bad) = (0u64, 0u64);
    let mut back = Buffer::new(size);
    for offset in written {
        let good = device::read_exact_at(&file, back.bytes_mut(), offset).is_ok()
            && pattern::first_mismatch(back.bytes_mut(), seed, offset).is_none();
        if good {
            verified += 1;
        } else {
            bad += 1;
        }
    }
    println!(
        "ok={ok} eagain={eagain} einval={einval} other={other} first_error={} verified={verified} bad={bad}",
        first_error.replace(' ', "_")
    );
    Ok(bad == 0)
}

fn main() -> ExitCode {
    outcome::exit_code("flagged-write", run())
}
