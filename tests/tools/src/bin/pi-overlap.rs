// SPDX-License-Identifier: GPL-2.0

//! pi-overlap: overlapping `O_DIRECT` writes of constant buffers, with a reader, on one
//! range of a PI block device.
//!
//! ```text
//! pi-overlap --dev PATH [--blocks N] [--seconds S] [--offset OFF] [--writers 1|2]
//! ```
//!
//! Two threads write two different buffers, each filled once and never changed again,
//! to the same `--blocks` logical blocks (default 8) at `--offset`, again and again, for
//! `--seconds` (default 3); a third thread reads the range meanwhile. Afterwards every
//! block is read once on its own. With `--writers 1`, one thread writes the two buffers
//! in turn: no writes overlap, each write changes the blocks, and what fails is a read
//! that overlaps a write.
//!
//! No buffer changes while it is in flight, so a device that stores each block's data and
//! protection information as one unit fails none of these I/Os, and every block it returns
//! holds the data of one of the two writes. A device that can interleave two writes of a
//! block can leave the data of one with the PI of the other: reads then fail their guard
//! check with `EILSEQ`, during the load and afterwards.
//!
//! The result is one line of `key=value` pairs: writes and reads ok and failed, `torn`
//! (blocks read without error that hold neither write's data) and the blocks that read
//! back, or fail, afterwards.

use blkbounce_tests::{args::Args, buffer::Buffer, device, outcome::Counts, pattern};
use std::fs::File;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The pattern seeds of the two writers.
const SEEDS: [u64; 2] = [11, 12];

/// Returns the blocks of `buf` (read at `offset`) that hold neither writer's data.
fn torn_blocks(buf: &[u8], block: usize, offset: u64) -> u64 {
    buf.chunks(block)
        .enumerate()
        .filter(|(i, data)| {
            let at = offset + (i * block) as u64;
            SEEDS
                .iter()
                .all(|&seed| pattern::first_mismatch(data, seed, at).is_some())
        })
        .count() as u64
}

/// Reads `len` bytes at `offset` into `buf`.
fn read(file: &File, buf: &Buffer, len: usize, offset: u64) -> std::io::Result<()> {
    // SAFETY: `buf` is valid for `len` bytes and only this thread uses it.
    unsafe { device::read_at_raw(file, buf.as_ptr(), len, offset) }
}

fn run() -> Result<(), String> {
    let args = Args::parse(&[])?;
    let dev = args.required("dev")?;
    let blocks: usize = args.number("blocks", 8)?;
    let seconds: f64 = args.number("seconds", 3.0)?;
    let offset = args.size("offset", 0)?;
    let writer_count: usize = args.number("writers", SEEDS.len())?;
    let file = device::open(dev, true).map_err(|e| format!("{dev}: {e}"))?;
    let block = device::logical_block_size(&file).map_err(|e| format!("{dev}: {e}"))? as usize;
    if blocks == 0
        || !offset.is_multiple_of(block as u64)
        || !(1..=SEEDS.len()).contains(&writer_count)
    {
        return Err(format!(
            "--blocks must be positive, --offset a multiple of {block}, --writers 1 or 2"
        ));
    }
    let len = blocks * block;
    let writes: Vec<Buffer> = SEEDS
        .iter()
        .map(|&seed| {
            let mut buf = Buffer::new(len);
            pattern::fill(buf.bytes_mut(), seed, offset);
            buf
        })
        .collect();
    // The range starts with the first writer's data, so that the reader never meets a
    // block that was never written.
    // SAFETY: The buffer is valid for `len` bytes and nobody changes it.
    unsafe { device::write_at_raw(&file, writes[0].as_ptr(), len, offset) }
        .map_err(|e| format!("{dev}: first write: {e}"))?;

    let stop = AtomicBool::new(false);
    let mut written = Counts::default();
    let (mut reads, mut torn) = (Counts::default(), 0);
    std::thread::scope(|s| {
        // Writer i writes buffers i, i + writers, ... in turn: each its own with two
        // writers, both with one.
        let writers: Vec<_> = (0..writer_count)
            .map(|first| {
                let (file, stop, writes) = (&file, &stop, &writes);
                s.spawn(move || {
                    let mut counts = Counts::default();
                    let mut turn = first;
                    while !stop.load(Ordering::Relaxed) {
                        let buf = &writes[turn];
                        // SAFETY: The buffer is valid for `len` bytes and nobody changes it.
                        counts.record(unsafe {
                            device::write_at_raw(file, buf.as_ptr(), len, offset)
                        });
                        turn = (turn + writer_count) % writes.len();
                    }
                    counts
                })
            })
            .collect();
        let reader = {
            let (file, stop) = (&file, &stop);
            s.spawn(move || {
                let buf = Buffer::new(len);
                let (mut counts, mut torn) = (Counts::default(), 0);
                while !stop.load(Ordering::Relaxed) {
                    let result = read(file, &buf, len, offset);
                    if result.is_ok() {
                        torn += torn_blocks(&buf.to_vec(), block, offset);
                    }
                    counts.record(result);
                }
                (counts, torn)
            })
        };
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            written.add(&writer.join().expect("writer thread"));
        }
        (reads, torn) = reader.join().expect("reader thread");
    });

    // Each block alone, after the load.
    let buf = Buffer::new(block);
    let mut after = Counts::default();
    for i in 0..blocks {
        let at = offset + (i * block) as u64;
        let result = read(&file, &buf, block, at);
        if result.is_ok() {
            torn += torn_blocks(&buf.to_vec(), block, at);
        }
        after.record(result);
    }
    println!(
        "pi-overlap dev={dev} blocks={blocks} block_size={block} writers={writer_count} \
         writes_ok={} writes_failed={} \
         reads_ok={} reads_failed={} reads_eilseq={} torn={torn} after_ok={} after_failed={}",
        written.ok,
        written.failed(),
        reads.ok,
        reads.failed(),
        reads.eilseq,
        after.ok,
        after.failed()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pi-overlap: {e}");
            ExitCode::from(2)
        }
    }
}
