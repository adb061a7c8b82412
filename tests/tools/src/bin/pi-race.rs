// SPDX-License-Identifier: GPL-2.0

//! pi-race: `O_DIRECT` I/O on a block device while other threads rewrite the buffer.
//!
//! ```text
//! pi-race --dev PATH --op write|read|verify --size SIZE [--seconds S] [--offset OFF]
//!         [--span SIZE] [--modifiers N] [--stride N] [--create]
//!         [--via pwrite|vmsplice|sendfile|copy-file-range] [--memory heap|memfd]
//!         [--src PATH] [--sync-src] [--buffered-readers N] [--readback]
//!         [--buf-offset N]
//! ```
//!
//! `write` writes the buffer again and again while `--modifiers` threads (default 2) keep
//! rewriting every `--stride`th byte of it (default 61), each from its own start (thread
//! `t` from byte `31 t mod stride`). `read` first writes the span
//! cleanly, then reads it under the same rewriting. `verify` reads the span once, cleanly.
//! I/O goes round the span (default 16 times the size) from `--offset`. With `--create`,
//! PATH is a regular file, created if needed and sized to hold the span.
//!
//! `--via` says how a write reaches PATH, which is opened `O_DIRECT` in every case:
//! - `pwrite` (default): `pwrite`/`pread` of the buffer, whose pages direct I/O pins;
//! - `vmsplice`: the buffer is vmspliced into a pipe and spliced into PATH, so the block
//!   layer gets the buffer's pages by reference, not pinned;
//! - `sendfile`, `copy-file-range`: the buffer is a shared mapping of the file `--src`
//!   (created, `--size` bytes), copied into PATH with that system call, which hands the
//!   block layer the source's page cache. `copy_file_range` needs PATH and `--src` on one
//!   filesystem without reflink (ext4).
//!
//! `--buffered-readers N` adds N threads that read the span through the page cache (no
//! `O_DIRECT`, read-only), dropping the cache before each pass; their failures are counted
//! apart (`buffered_ok`, `buffered_failed`). `--readback` reads the span once more after a
//! write race, calmly: every block the device stored must
//! pass its check (`readback_blocks`, `readback_failed`, and the first failing block),
//! re-reading a failed 64 KiB piece logical block by logical block.
//!
//! Sizes, the span and the offset are multiples of the device's logical block size (4096
//! for a regular file). `--buf-offset N` starts the buffer of `pwrite` and of reads `N`
//! bytes past a page boundary.
//!
//! `--memory memfd` puts the buffer of `pwrite` and `vmsplice` in shmem instead of the
//! heap. `--sync-src` adds a thread that keeps starting writeback of `--src`
//! (`sync_file_range`), so that copies often find its pages under writeback.
//!
//! On a device that checks protection information against data the submitter can still
//! change, most such I/O fails with `EILSEQ`; through blkbounce none should. The result is
//! one line of `key=value` pairs: `ok`, `failed` and the failures by errno.

use blkbounce_tests::{
    args::Args,
    buffer::Buffer,
    device,
    outcome::Counts,
    pattern,
    transfer::{self, Splicer},
};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::io::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Default distance between the bytes one modifier rewrites.
const STRIDE: usize = 61;

/// The largest write of the clean prefill before a read race.
const PREFILL_PIECE: u64 = 1 << 20;

/// The piece a read-back reads at once; where a piece fails, it reads each logical block
/// again.
const READBACK_PIECE: u64 = 64 << 10;

/// How the writes of a race reach the device.
enum Via {
    Pwrite,
    Vmsplice(Splicer),
    Sendfile(File),
    CopyFileRange(File),
}

/// Starts writeback of all of `src` every millisecond until `stop`.
fn sync_loop(src: &File, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: Plain sync_file_range on a descriptor; 0 bytes means to the end.
        unsafe { libc::sync_file_range(src.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
        std::thread::sleep(Duration::from_millis(1));
    }
}

impl Via {
    /// Sets up `--via` (with `--memory` and `--src`) for writes of `size` bytes; returns
    /// it with the buffer the writes take their data from.
    fn new(args: &Args, size: usize) -> Result<(Self, Buffer), String> {
        let via = args.get("via").unwrap_or("pwrite");
        let from_file = matches!(via, "sendfile" | "copy-file-range");
        if from_file && args.get("memory").is_some() {
            return Err(format!("--memory does not apply to --via {via}"));
        }
        if !from_file && (args.get("src").is_some() || args.flag("sync-src")) {
            return Err(format!("--src and --sync-src do not apply to --via {via}"));
        }
        let memory = args.get("memory").unwrap_or("heap");
        let buffer = || match memory {
            "heap" => Ok(Buffer::with_offset(
                size,
                args.size("buf-offset", 0)? as usize,
            )),
            "memfd" => Buffer::memfd(size).map_err(|e| format!("memfd: {e}")),
            _ => Err(format!("unknown --memory '{memory}' (heap or memfd)")),
        };
        let source = || -> Result<(File, Buffer), String> {
            let path = args.required("src")?;
            let src = source_file(path, size).map_err(|e| format!("{path}: {e}"))?;
            let map = Buffer::map_file(&src, size).map_err(|e| format!("{path}: mmap: {e}"))?;
            Ok((src, map))
        };
        Ok(match via {
            "pwrite" => (Via::Pwrite, buffer()?),
            "vmsplice" => {
                let splicer = Splicer::new(size).map_err(|e| format!("pipe: {e}"))?;
                (Via::Vmsplice(splicer), buffer()?)
            }
            "sendfile" => source().map(|(src, map)| (Via::Sendfile(src), map))?,
            "copy-file-range" => source().map(|(src, map)| (Via::CopyFileRange(src), map))?,
            via => {
                return Err(format!(
                    "unknown --via '{via}' (pwrite, vmsplice, sendfile or copy-file-range)"
                ))
            }
        })
    }

    /// The source file of `sendfile` and `copy-file-range`.
    fn source(&self) -> Option<&File> {
        match self {
            Via::Sendfile(src) | Via::CopyFileRange(src) => Some(src),
            _ => None,
        }
    }

    /// Writes `buf` to `file` at `offset`.
    fn write(&mut self, buf: &Buffer, file: &File, offset: u64) -> io::Result<()> {
        let len = buf.len();
        match self {
            // SAFETY: The buffer is valid for its length for the whole call; the
            // modifiers only touch it through atomics.
            Via::Pwrite => unsafe { device::write_at_raw(file, buf.as_ptr(), len, offset) },
            // SAFETY: As above.
            Via::Vmsplice(splicer) => unsafe { splicer.write_at(file, buf.as_ptr(), len, offset) },
            Via::Sendfile(src) => transfer::sendfile_at(file, src, len, offset),
            Via::CopyFileRange(src) => transfer::copy_file_range_at(file, src, len, offset),
        }
    }
}

/// Creates the source file of `sendfile` and `copy-file-range`: `size` bytes of data,
/// so that no page of it is a hole (which the page cache serves as the zero page).
fn source_file(path: &str, size: usize) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let mut data = vec![0u8; size];
    pattern::fill(&mut data, 2, 0);
    device::write_all_at(&file, &data, 0)?;
    Ok(file)
}

struct Job {
    file: File,
    size: usize,
    offset: u64,
    blocks: u64,
    /// The logical block size.
    lbs: u64,
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

    fn span(&self) -> u64 {
        self.blocks * self.size as u64
    }

    /// Reads the whole span back calmly; returns the logical blocks read and the offsets of
    /// those that failed. A 64 KiB piece that fails is read again block by block.
    fn readback(&self) -> (u64, Vec<u64>) {
        let buf = Buffer::new(READBACK_PIECE as usize);
        let mut bad = Vec::new();
        let mut done = 0;
        while done < self.span() {
            let len = READBACK_PIECE.min(self.span() - done);
            let off = self.offset + done;
            // SAFETY: `buf` is valid for `READBACK_PIECE >= len` bytes and not shared.
            if unsafe { device::read_at_raw(&self.file, buf.as_ptr(), len as usize, off) }.is_err()
            {
                for block in (off..off + len).step_by(self.lbs as usize) {
                    let block_len = self.lbs as usize;
                    // SAFETY: As above, `lbs <= READBACK_PIECE`.
                    if unsafe { device::read_at_raw(&self.file, buf.as_ptr(), block_len, block) }
                        .is_err()
                    {
                        bad.push(block);
                    }
                }
            }
            done += len;
        }
        (self.span() / self.lbs, bad)
    }

    /// Runs reads into `buf` (`via` is `None`) or writes of it for `seconds` while
    /// `modifiers` threads rewrite it, one more starts writeback of `sync` if given, and
    /// `buffered` reads the span through the page cache if given. Returns the counts of
    /// the race and of the buffered reads.
    #[allow(clippy::too_many_arguments)]
    fn race(
        &self,
        buf: &Buffer,
        mut via: Option<Via>,
        sync: Option<File>,
        buffered: &[File],
        seconds: f64,
        modifiers: usize,
        stride: usize,
    ) -> (Counts, Counts) {
        let stop = AtomicBool::new(false);
        let mut counts = Counts::default();
        let mut buffered_counts = Counts::default();
        std::thread::scope(|s| {
            if let Some(src) = &sync {
                let stop = &stop;
                s.spawn(move || sync_loop(src, stop));
            }
            let readers: Vec<_> = buffered
                .iter()
                .map(|file| {
                    let stop = &stop;
                    s.spawn(move || self.buffered_reads(file, stop))
                })
                .collect();
            for t in 0..modifiers {
                let stop = &stop;
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
                counts.record(match &mut via {
                    Some(via) => via.write(buf, &self.file, off),
                    // SAFETY: `buf` is valid for `size` bytes for the whole call; the other
                    // threads only touch it through atomics.
                    None => unsafe {
                        device::read_at_raw(&self.file, buf.as_ptr(), self.size, off)
                    },
                });
                i += 1;
            }
            stop.store(true, Ordering::Relaxed);
            for reader in readers {
                buffered_counts.add(&reader.join().unwrap_or_default());
            }
        });
        (counts, buffered_counts)
    }

    /// Reads the span through the page cache of `file` in 64 KiB pieces, dropping the
    /// cache before each pass, until `stop`.
    fn buffered_reads(&self, file: &File, stop: &AtomicBool) -> Counts {
        let mut counts = Counts::default();
        let mut buf = vec![0u8; READBACK_PIECE as usize];
        while !stop.load(Ordering::Relaxed) {
            // SAFETY: `posix_fadvise` only reads its arguments.
            unsafe {
                libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
            }
            let mut done = 0;
            while done < self.span() && !stop.load(Ordering::Relaxed) {
                let len = READBACK_PIECE.min(self.span() - done) as usize;
                counts.record(device::read_exact_at(
                    file,
                    &mut buf[..len],
                    self.offset + done,
                ));
                done += len as u64;
            }
        }
        counts
    }
}

fn run() -> Result<(), String> {
    let args = Args::parse(&["create", "sync-src", "readback"])?;
    let dev = args.required("dev")?;
    let op = args.required("op")?;
    let size = args.size("size", 4096)? as usize;
    let seconds: f64 = args.number("seconds", 3.0)?;
    let modifiers: usize = args.number("modifiers", 2)?;
    let stride = args.size("stride", STRIDE as u64)? as usize;
    let offset = args.size("offset", 0)?;
    let span = args.size("span", 16 * size as u64)?;
    let buffered_readers: usize = args.number("buffered-readers", 0)?;
    if stride == 0 {
        return Err("--stride must be positive".into());
    }
    let buf_offset = args.size("buf-offset", 0)? as usize;
    let file = if args.flag("create") {
        device::create(dev, offset + span)
    } else {
        device::open(dev, true)
    }
    .map_err(|e| format!("{dev}: {e}"))?;
    let lbs = device::logical_block_size(&file).unwrap_or(4096);
    if size == 0
        || !(size as u64).is_multiple_of(lbs)
        || span < size as u64
        || !span.is_multiple_of(lbs)
        || !offset.is_multiple_of(lbs)
        || !(buf_offset as u64).is_multiple_of(lbs.min(512))
        || lbs > READBACK_PIECE
    {
        return Err(format!(
            "--size, --span and --offset must be multiples of the logical block size ({lbs}), span >= size, --buf-offset of 512"
        ));
    }
    let job = Job {
        file,
        lbs,
        size,
        offset,
        blocks: span / size as u64,
    };

    let buffered = (0..buffered_readers)
        .map(|_| File::open(dev).map_err(|e| format!("{dev}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if !buffered.is_empty() && op == "verify" {
        return Err("--buffered-readers applies to races only".into());
    }
    if args.flag("readback") && op != "write" {
        return Err("--readback applies to writes only".into());
    }
    let heap_buffer = op == "read"
        || (op == "write"
            && args.get("memory").unwrap_or("heap") == "heap"
            && matches!(args.get("via").unwrap_or("pwrite"), "pwrite" | "vmsplice"));
    if buf_offset != 0 && !heap_buffer {
        return Err(
            "--buf-offset applies to heap buffers of reads, pwrite and vmsplice only".into(),
        );
    }

    let mut line = format!("pi-race dev={dev} op={op} size={size}");
    let (counts, buffered_counts) = match op {
        "write" => {
            let (via, buf) = Via::new(&args, size)?;
            line += &format!(" via={}", args.get("via").unwrap_or("pwrite"));
            let sync = match via.source() {
                Some(src) if args.flag("sync-src") => {
                    line += " sync_src=1";
                    Some(src.try_clone().map_err(|e| format!("--src: {e}"))?)
                }
                _ => None,
            };
            job.race(&buf, Some(via), sync, &buffered, seconds, modifiers, stride)
        }
        "read" => {
            if args.get("via").is_some_and(|via| via != "pwrite") {
                return Err("--via applies to writes only".into());
            }
            line += &format!(" prefill_failed={}", job.prefill());
            let buf = Buffer::with_offset(size, buf_offset);
            job.race(&buf, None, None, &buffered, seconds, modifiers, stride)
        }
        "verify" => (job.verify(), Counts::default()),
        _ => return Err(format!("unknown --op '{op}' (write, read or verify)")),
    };
    line += &format!(
        " ok={} failed={} eilseq={} eio={} other={}",
        counts.ok,
        counts.failed(),
        counts.eilseq,
        counts.eio,
        counts.other
    );
    if !buffered.is_empty() {
        line += &format!(
            " buffered_ok={} buffered_failed={}",
            buffered_counts.ok,
            buffered_counts.failed()
        );
    }
    if args.flag("readback") {
        let (blocks, bad) = job.readback();
        line += &format!(" readback_blocks={blocks} readback_failed={}", bad.len());
        if let Some(first) = bad.first() {
            line += &format!(" readback_first_bad={first}");
        }
    }
    println!("{line}");
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
