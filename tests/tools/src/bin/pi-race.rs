// SPDX-License-Identifier: GPL-2.0

//! pi-race: `O_DIRECT` I/O on a block device while other threads rewrite the buffer.
//!
//! ```text
//! pi-race --dev PATH --op write|read|verify --size SIZE [--seconds S] [--offset OFF]
//!         [--span SIZE] [--modifiers N] [--stride N] [--create]
//! ```
//!
//! `write` writes the buffer again and again while `--modifiers` threads (default 2) keep
//! rewriting every `--stride`th byte of it (default 61), each from its own start (thread
//! `t` from byte `31 t mod stride`). `read` first writes the span
//! cleanly, then reads it under the same rewriting. `verify` reads the span once, cleanly.
//! I/O goes round the span (default 16 times the size) from `--offset`. With `--create`,
//! PATH is a regular file, created if needed and sized to hold the span.
//!
//! On a device that checks protection information against data the submitter can still
//! change, most such I/O fails with `EILSEQ`; through blkbounce none should. The result is
//! one line of `key=value` pairs: `ok`, `failed` and the failures by errno.

use blkbounce_tests::{args::Args, buffer::Buffer, device, pattern};
use std::fs::File;
use std::io;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Default distance between the bytes one modifier rewrites.
const STRIDE: usize = 61;

/// The largest write of the clean prefill before a read race.
const PREFILL_PIECE: u64 = 1 << 20;

#[derive(Default)]
struct Counts {
    ok: u64,
    eilseq: u64,
    eio: u64,
    other: u64,
}

impl Counts {
    fn record(&mut self, result: io::Result<()>) {
        match result {
            Ok(()) => self.ok += 1,
            Err(e) if e.raw_os_error() == Some(libc::EILSEQ) => self.eilseq += 1,
            Err(e) if e.raw_os_error() == Some(libc::EIO) => self.eio += 1,
            Err(_) => self.other += 1,
        }
    }

    fn failed(&self) -> u64 {
        self.eilseq + self.eio + self.other
    }
}

struct Job {
    file: File,
    size: usize,
    offset: u64,
    blocks: u64,
}

impl Job {
    fn offset_of(&self, i: u64) -> u64 {
        self.offset + (i % self.blocks) * self.size as u64
    }

    /// Writes the whole span with its pattern, no rewriting, in pieces of up to 1 MiB;
    /// returns the failed writes.
    fn prefill(&self) -> u64 {
        let span = self.blocks * self.size as u64;
        let piece = span.min(PREFILL_PIECE);
        let mut buf = Buffer::new(piece as usize);
        let mut failed = 0;
        let mut done = 0;
        while done < span {
            let len = piece.min(span - done) as usize;
            let off = self.offset + done;
            pattern::fill(&mut buf.bytes_mut()[..len], 1, off);
            // SAFETY: `buf` is valid for `len` bytes and not shared.
            if unsafe { device::write_at_raw(&self.file, buf.as_ptr(), len, off) }.is_err() {
                failed += 1;
            }
            done += len as u64;
        }
        failed
    }

    /// Reads every block of the span once, no rewriting.
    fn verify(&self) -> Counts {
        let buf = Buffer::new(self.size);
        let mut counts = Counts::default();
        for i in 0..self.blocks {
            // SAFETY: `buf` is valid for `size` bytes and not shared.
            counts.record(unsafe {
                device::read_at_raw(&self.file, buf.as_ptr(), self.size, self.offset_of(i))
            });
        }
        counts
    }

    /// Runs reads or writes for `seconds` while `modifiers` threads rewrite the buffer.
    fn race(&self, write: bool, seconds: f64, modifiers: usize, stride: usize) -> Counts {
        let buf = Buffer::new(self.size);
        let stop = AtomicBool::new(false);
        let mut counts = Counts::default();
        std::thread::scope(|s| {
            for t in 0..modifiers {
                let (buf, stop) = (&buf, &stop);
                s.spawn(move || {
                    let bytes = buf.atomics();
                    let start = (t * 31) % stride;
                    while !stop.load(Ordering::Relaxed) {
                        for b in bytes.iter().skip(start).step_by(stride) {
                            b.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
            let deadline = Instant::now() + Duration::from_secs_f64(seconds);
            let mut i = 0;
            while Instant::now() < deadline {
                let off = self.offset_of(i);
                // SAFETY: `buf` is valid for `size` bytes for the whole call; the other
                // threads only touch it through atomics.
                counts.record(unsafe {
                    if write {
                        device::write_at_raw(&self.file, buf.as_ptr(), self.size, off)
                    } else {
                        device::read_at_raw(&self.file, buf.as_ptr(), self.size, off)
                    }
                });
                i += 1;
            }
            stop.store(true, Ordering::Relaxed);
        });
        counts
    }
}

fn run() -> Result<(), String> {
    let args = Args::parse(&["create"])?;
    let dev = args.required("dev")?;
    let op = args.required("op")?;
    let size = args.size("size", 4096)? as usize;
    let seconds: f64 = args.number("seconds", 3.0)?;
    let modifiers: usize = args.number("modifiers", 2)?;
    let stride = args.size("stride", STRIDE as u64)? as usize;
    let offset = args.size("offset", 0)?;
    let span = args.size("span", 16 * size as u64)?;
    if stride == 0 {
        return Err("--stride must be positive".into());
    }
    if size == 0 || !size.is_multiple_of(4096) || span < size as u64 || !offset.is_multiple_of(4096)
    {
        return Err("--size, --span and --offset must be multiples of 4096, span >= size".into());
    }
    let file = if args.flag("create") {
        device::create(dev, offset + span)
    } else {
        device::open(dev, true)
    }
    .map_err(|e| format!("{dev}: {e}"))?;
    let job = Job {
        file,
        size,
        offset,
        blocks: span / size as u64,
    };

    let mut line = format!("pi-race dev={dev} op={op} size={size}");
    let counts = match op {
        "write" => job.race(true, seconds, modifiers, stride),
        "read" => {
            line += &format!(" prefill_failed={}", job.prefill());
            job.race(false, seconds, modifiers, stride)
        }
        "verify" => job.verify(),
        _ => return Err(format!("unknown --op '{op}' (write, read or verify)")),
    };
    println!(
        "{line} ok={} failed={} eilseq={} eio={} other={}",
        counts.ok,
        counts.failed(),
        counts.eilseq,
        counts.eio,
        counts.other
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pi-race: {e}");
            ExitCode::from(2)
        }
    }
}
