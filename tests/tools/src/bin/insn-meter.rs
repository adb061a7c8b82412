// SPDX-License-Identifier: GPL-2.0

//! insn-meter: marks points in the guest for the instruction meter (`bench/insn-meter.c`).
//!
//! ```text
//! insn-meter sample TAG        the plugin appends its counters, tagged TAG
//! insn-meter module NAME KO    the plugin also counts inside module NAME's .text
//! insn-meter profile-zero      the plugin zeroes its per-block profile
//! insn-meter profile-dump TAG  the plugin writes its per-block profile, tagged TAG
//! insn-meter window TAG SECONDS PARTS STAT...
//!                              zeroes the profile, then samples PARTS + 1 times,
//!                              SECONDS / PARTS apart, tagged TAG * 16 + 0..=PARTS;
//!                              writes the profile tagged TAG and prints, per part, how
//!                              many I/Os the block devices of the STAT files
//!                              (`/sys/block/DEV/stat`) completed in it and how long it
//!                              lasted: `IOS:NANOSECONDS`, comma-separated
//! ```
//!
//! `window` measures a load that runs already, in its steady state: what starts and ends
//! the load (process creation, buffers, io_uring setup) stays outside the samples, and so
//! does this tool's own start; between them it only sleeps and reads the STAT files. The
//! parts let a report take the median over them, so that a burst of something else in
//! the guest (a page-in, a flusher) spoils one part and not the figure.
//!
//! `module` takes the start of `.text` from `/sys/module/NAME/sections/.text` and its size
//! from the section headers of the module file KO (the loaded `.ko`), and prints the range.
//! Outside the meter both do nothing visible.

use blkbounce_tests::meter;
use std::process::ExitCode;

/// Returns the size of section `.text` of the ELF64 little-endian file `image`.
fn text_size(image: &[u8]) -> Result<u64, String> {
    let u16_at = |o: usize| {
        image
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        image
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let u64_at = |o: usize| {
        image
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    if image.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let bad = || "truncated ELF headers".to_string();
    let shoff = u64_at(0x28).ok_or_else(bad)? as usize;
    let shentsize = u16_at(0x3a).ok_or_else(bad)? as usize;
    let shnum = u16_at(0x3c).ok_or_else(bad)? as usize;
    let shstrndx = u16_at(0x3e).ok_or_else(bad)? as usize;
    let section = |i: usize| shoff + i * shentsize;
    let names = u64_at(section(shstrndx) + 0x18).ok_or_else(bad)? as usize;
    for i in 0..shnum {
        let name = names + u32_at(section(i)).ok_or_else(bad)? as usize;
        if image.get(name..name + 6) == Some(&b".text\0"[..]) {
            return u64_at(section(i) + 0x20).ok_or_else(bad);
        }
    }
    Err("no .text section".into())
}

/// Returns the start and end of module `name`'s `.text`, loaded from the file `ko`.
fn module_text(name: &str, ko: &str) -> Result<(u64, u64), String> {
    let path = format!("/sys/module/{name}/sections/.text");
    let value = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let value = value.trim();
    let start = u64::from_str_radix(value.trim_start_matches("0x"), 16)
        .map_err(|_| format!("{path}: not an address: '{value}'"))?;
    if start == 0 {
        return Err(format!("{path} reads 0: run as root"));
    }
    let image = std::fs::read(ko).map_err(|e| format!("{ko}: {e}"))?;
    let size = text_size(&image).map_err(|e| format!("{ko}: {e}"))?;
    if size == 0 || size > 64 << 20 {
        return Err(format!("{ko}: .text of {size} bytes"));
    }
    Ok((start, start + size))
}

/// The most parts of a window: its samples are tagged `TAG * 16 + 0..=15`.
const WINDOW_PARTS_MAX: u64 = 15;

fn parse_tag(text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("a tag is a number, not '{text}'"))
}

/// Returns the reads and writes completed by the devices of the `stat` files.
fn completed_ios(stats: &[&str]) -> Result<u64, String> {
    let mut total = 0;
    for path in stats {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        let fields: Vec<u64> = text
            .split_whitespace()
            .map(|f| {
                f.parse()
                    .map_err(|_| format!("{path}: not a number: '{f}'"))
            })
            .collect::<Result<_, _>>()?;
        // Documentation/block/stat.rst: read I/Os first, write I/Os fifth.
        if fields.len() < 5 {
            return Err(format!("{path}: {} fields", fields.len()));
        }
        total += fields[0] + fields[4];
    }
    Ok(total)
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["sample", tag] => meter::sample(parse_tag(tag)?),
        ["profile-zero"] => meter::profile_zero(),
        ["profile-dump", tag] => meter::profile_dump(parse_tag(tag)?),
        ["window", tag, seconds, parts, ref stats @ ..] if !stats.is_empty() => {
            let tag = parse_tag(tag)?;
            let seconds: f64 = seconds
                .parse()
                .map_err(|_| format!("seconds is a number, not '{seconds}'"))?;
            let parts: u64 = match parts.parse() {
                Ok(n) if (1..=WINDOW_PARTS_MAX).contains(&n) => n,
                _ => return Err(format!("parts is 1 to {WINDOW_PARTS_MAX}, not '{parts}'")),
            };
            let part = std::time::Duration::from_secs_f64(seconds / parts as f64);
            meter::profile_zero();
            let mut ios = completed_ios(stats)?;
            meter::sample(tag * (WINDOW_PARTS_MAX + 1));
            let mut start = std::time::Instant::now();
            let mut out = Vec::new();
            for j in 1..=parts {
                std::thread::sleep(part);
                meter::sample(tag * (WINDOW_PARTS_MAX + 1) + j);
                let now = std::time::Instant::now();
                let done = completed_ios(stats)?;
                out.push(format!("{}:{}", done - ios, (now - start).as_nanos()));
                (ios, start) = (done, now);
            }
            meter::profile_dump(tag);
            println!("{}", out.join(","));
        }
        ["module", name, ko] => {
            let (start, end) = module_text(name, ko)?;
            meter::set_range(start, end);
            println!("insn-meter module={name} start={start:#x} end={end:#x}");
        }
        _ => {
            return Err(
                "usage: insn-meter sample TAG | module NAME KO | profile-zero | \
                 profile-dump TAG | window TAG SECONDS PARTS STAT..."
                    .into(),
            )
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("insn-meter: {e}");
            ExitCode::from(2)
        }
    }
}
