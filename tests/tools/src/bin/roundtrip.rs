// SPDX-License-Identifier: GPL-2.0

//! roundtrip: writes patterns through one block device and compares them read back
//! through another (or the same) one, byte for byte.
//!
//! ```text
//! roundtrip --write-dev A --read-dev B [--write-mode direct|buffered]
//!           [--read-mode direct|buffered] [--seed N] [--iovecs] [--sizes]
//!           [--size-step N] [--memory heap|hugepage] [--mem-offset N] [--nowait]
//! ```
//!
//! The ranges cover several offsets and sizes from 4 KiB to 1 MiB, the device's last
//! block, and, with buffered writes, ranges that are not block aligned. Reads cover the
//! enclosing aligned range. Buffered writes are synced, and the reading device's page cache
//! is dropped first, so every comparison sees the device's data. Prints one line per
//! mismatch and a summary; exits 1 on any mismatch or I/O error.
//!
//! With `--iovecs`, direct I/O goes through one `pwritev` or `preadv` per range, cut into
//! iovecs of 512 to 8192 bytes, most of them smaller than a page, in a buffer that starts
//! 512 bytes past a page boundary.
//!
//! With `--sizes`, the ranges are instead every multiple of the device's logical block
//! size (or of `--size-step`, itself a multiple of it) up to 1 MiB, each at its own offset in the first 64 MiB (so that stacked devices
//! above split some of them). `--memory hugepage` puts direct I/O buffers in huge pages,
//! `--mem-offset` bytes in (default 0), so that bios carry multi-page bvecs.
//!
//! With `--nowait`, direct I/O asks not to wait (`RWF_NOWAIT`). An I/O that fails with
//! `EAGAIN` is counted and done again without the flag, as an application would; the data
//! must still verify.

use blkbounce_tests::{args::Args, buffer::Buffer, device, outcome, pattern};
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::process::ExitCode;

const BLOCK: u64 = 4096;

/// (offset, length) pairs; the unaligned ones are used with buffered writes only.
const ALIGNED: &[(u64, u64)] = &[
    (0, 4096),
    (4096, 8192),
    (65536, 65536),
    (3 << 20, 128 << 10),
    ((1 << 20) + 4096, 1 << 20),
    (5 << 20, 12288),
];
const UNALIGNED: &[(u64, u64)] = &[(513, 1000), (8191, 2), (7 << 20 | 100, 70000)];
/// The iovec sizes of `--iovecs`, repeated.
const IOVEC_PIECES: &[usize] = &[512, 3584, 1024, 3072, 4096, 8192, 1536, 2560];
/// Where `--iovecs` buffers start past a page boundary.
const IOVEC_MEM_OFFSET: usize = 512;

fn mode(args: &Args, key: &str) -> Result<bool, String> {
    match args.get(key).unwrap_or("direct") {
        "direct" => Ok(true),
        "buffered" => Ok(false),
        m => Err(format!("--{key} is direct or buffered, not '{m}'")),
    }
}

/// How direct I/O is done.
struct Direct {
    iovecs: bool,
    huge: bool,
    mem_offset: usize,
    nowait: bool,
    /// I/Os that failed with `EAGAIN` under `--nowait` and were done again.
    eagain: u64,
}

impl Direct {
    /// A buffer for direct I/O: page aligned, 512 bytes past a page with `iovecs`, or in
    /// huge pages.
    fn buffer(&self, len: usize) -> io::Result<Buffer> {
        if self.huge {
            Buffer::huge(len, self.mem_offset)
        } else if self.iovecs {
            Ok(Buffer::with_offset(len, IOVEC_MEM_OFFSET))
        } else {
            Ok(Buffer::with_offset(len, self.mem_offset))
        }
    }

    /// Writes (`write`) or reads all of `buf` at `offset`, in one piece or in iovecs.
    fn io(&mut self, file: &File, buf: &Buffer, offset: u64, write: bool) -> io::Result<()> {
        let (ptr, len) = (buf.as_ptr(), buf.len());
        let pieces: &[usize] = if self.iovecs {
            IOVEC_PIECES
        } else {
            &[usize::MAX]
        };
        let flags = if self.nowait { libc::RWF_NOWAIT } else { 0 };
        // SAFETY: `buf` is valid for `len` bytes and not touched by anybody else meanwhile.
        let first =
            unsafe { device::vectored_at_raw(file, ptr, len, pieces, offset, write, flags) };
        match first {
            Err(e) if self.nowait && e.raw_os_error() == Some(libc::EAGAIN) => {
                self.eagain += 1;
                // SAFETY: As above.
                unsafe { device::vectored_at_raw(file, ptr, len, pieces, offset, write, 0) }
            }
            other => other,
        }
    }
}

/// Every multiple of `step` up to 1 MiB, each at its own offset below 64 MiB, a multiple
/// of `block`.
fn all_sizes(block: u64, step: u64) -> Vec<(u64, u64)> {
    let span = (64 << 20) - (1 << 20);
    (1..=(1 << 20) / step)
        .map(|k| ((k * 7919 * block) % span / block * block, k * step))
        .collect()
}

fn run() -> Result<bool, String> {
    let args = Args::parse(&["iovecs", "sizes", "nowait"])?;
    let iovecs = args.flag("iovecs");
    let mut direct = Direct {
        iovecs,
        huge: match args.get("memory").unwrap_or("heap") {
            "heap" => false,
            "hugepage" => true,
            m => return Err(format!("--memory is heap or hugepage, not '{m}'")),
        },
        mem_offset: args.number("mem-offset", 0)?,
        nowait: args.flag("nowait"),
        eagain: 0,
    };
    let write_dev = args.required("write-dev")?;
    let read_dev = args.required("read-dev")?;
    let write_direct = mode(&args, "write-mode")?;
    let read_direct = mode(&args, "read-mode")?;
    let seed: u64 = args.number("seed", 1)?;

    let writer = device::open(write_dev, write_direct).map_err(|e| format!("{write_dev}: {e}"))?;
    let reader = device::open(read_dev, read_direct).map_err(|e| format!("{read_dev}: {e}"))?;
    let capacity = (&writer)
        .seek(SeekFrom::End(0))
        .map_err(|e| format!("{write_dev}: {e}"))?;

    let mut ranges: Vec<(u64, u64)> = if args.flag("sizes") {
        let block = device::logical_block_size(&writer).map_err(|e| format!("{write_dev}: {e}"))?;
        let step = args.size("size-step", block)?;
        if step == 0 || step % block != 0 {
            return Err(format!(
                "--size-step must be a multiple of the block size {block}"
            ));
        }
        all_sizes(block, step)
    } else {
        ALIGNED.to_vec()
    };
    ranges.push((capacity - BLOCK, BLOCK));
    if !write_direct {
        ranges.extend_from_slice(UNALIGNED);
    }

    let (mut ok, mut bad) = (0, 0);
    for &(offset, len) in &ranges {
        let label = format!("offset={offset} len={len}");
        let mut data = vec![0u8; len as usize];
        pattern::fill(&mut data, seed, offset);
        let written = if write_direct {
            direct.buffer(len as usize).and_then(|mut buf| {
                buf.bytes_mut().copy_from_slice(&data);
                direct.io(&writer, &buf, offset, true)
            })
        } else {
            device::write_all_at(&writer, &data, offset).and_then(|()| writer.sync_all())
        };
        if let Err(e) = written {
            println!("roundtrip: {label}: write failed: {e}");
            bad += 1;
            continue;
        }

        // Direct writes are whole blocks of the device; the rest reads enclosing pages.
        let (start, end) = if write_direct {
            (offset, offset + len)
        } else {
            (
                offset / BLOCK * BLOCK,
                (offset + len).div_ceil(BLOCK) * BLOCK,
            )
        };
        let mut buf = match direct.buffer((end - start) as usize) {
            Ok(buf) => buf,
            Err(e) => return Err(format!("buffer of {} bytes: {e}", end - start)),
        };
        let read = if read_direct {
            direct.io(&reader, &buf, start, false)
        } else {
            device::drop_cache(&reader)
                .and_then(|()| device::read_exact_at(&reader, buf.bytes_mut(), start))
        };
        if let Err(e) = read {
            println!("roundtrip: {label}: read failed: {e}");
            bad += 1;
            continue;
        }
        let got = &buf.bytes_mut()[(offset - start) as usize..][..len as usize];
        match pattern::first_mismatch(got, seed, offset) {
            None => ok += 1,
            Some(at) => {
                println!("roundtrip: {label}: first mismatch at byte {at}");
                bad += 1;
            }
        }
    }
    println!(
        "roundtrip write={write_dev}({}) read={read_dev}({}){}{} ranges={} ok={ok} bad={bad}{}",
        if write_direct { "direct" } else { "buffered" },
        if read_direct { "direct" } else { "buffered" },
        if iovecs { " iovecs" } else { "" },
        if direct.huge { " hugepage" } else { "" },
        ranges.len(),
        if direct.nowait {
            format!(" eagain={}", direct.eagain)
        } else {
            String::new()
        }
    );
    Ok(bad == 0)
}

fn main() -> ExitCode {
    outcome::exit_code("roundtrip", run())
}
