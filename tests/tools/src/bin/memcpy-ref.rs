// SPDX-License-Identifier: GPL-2.0

//! memcpy-ref: the machine's own memory copy speed, the reference for the CPU that
//! bouncing costs per byte.
//!
//! ```text
//! memcpy-ref [--chunk SIZE] [--span SIZE] [--seconds S]
//! memcpy-ref --meter-tag N [--chunk SIZE] [--span SIZE] [--passes P]
//! ```
//!
//! Copies `--span` bytes (default 64 MiB, beyond the caches, as I/O buffers are) from one
//! buffer to another in pieces of `--chunk` bytes (default 4 KiB), again and again for
//! `--seconds` (default 2) with each of three copies: `rep movsb` (the x86-64 kernel's
//! `memcpy` on CPUs with fast short `rep movsb`, FSRM), a loop of four 8-byte moves (its
//! `memcpy` elsewhere) and the C library's `memcpy`. Prints one line of `key=value` pairs:
//! MiB/s and ns per KiB for each.
//!
//! With `--meter-tag`, for the instruction meter (`bench/insn-meter.c`): copies the span
//! once with the kernel's loop to warm up, then asks the meter for samples tagged `2N` and
//! `2N+1` around `--passes` (default 4) more copies of the span, and prints the bytes
//! copied between them.

use blkbounce_tests::{args::Args, meter};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Copies `len` bytes from `src` to `dst` with `rep movsb`.
///
/// # Safety
///
/// `src` must be valid for reads and `dst` for writes of `len` bytes, not overlapping.
#[cfg(target_arch = "x86_64")]
unsafe fn rep_movsb(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: The caller guarantees both ranges; `rep movsb` touches only them.
    unsafe {
        core::arch::asm!(
            "rep movsb",
            inout("rcx") len => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags)
        );
    }
}

/// Copies `len` bytes from `src` to `dst` in blocks of four 8-byte moves, as the x86-64
/// kernel's `memcpy` does without FSRM.
///
/// # Safety
///
/// As for [`rep_movsb`]; `len` must be a positive multiple of 32.
#[cfg(target_arch = "x86_64")]
unsafe fn movq_loop(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: The caller guarantees both ranges; the loop touches only them.
    unsafe {
        core::arch::asm!(
            "2:",
            "mov r8, [rsi]",
            "mov r9, [rsi + 8]",
            "mov r10, [rsi + 16]",
            "mov r11, [rsi + 24]",
            "lea rsi, [rsi + 32]",
            "mov [rdi], r8",
            "mov [rdi + 8], r9",
            "mov [rdi + 16], r10",
            "mov [rdi + 24], r11",
            "lea rdi, [rdi + 32]",
            "sub rcx, 32",
            "jnz 2b",
            inout("rcx") len => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            options(nostack)
        );
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn rep_movsb(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: As the caller guarantees.
    unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn movq_loop(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: As the caller guarantees.
    unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
}

/// Copies `src` into `dst` chunk by chunk for `seconds`; returns bytes copied per second.
fn measure(
    dst: &mut [u8],
    src: &[u8],
    chunk: usize,
    seconds: f64,
    copy: fn(&mut [u8], &[u8]),
) -> f64 {
    let deadline = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut bytes = 0u64;
    while start.elapsed() < deadline {
        for (d, s) in dst.chunks_mut(chunk).zip(src.chunks(chunk)) {
            copy(d, s);
        }
        bytes += src.len() as u64;
    }
    bytes as f64 / start.elapsed().as_secs_f64()
}

fn copy_rep_movsb(dst: &mut [u8], src: &[u8]) {
    // SAFETY: Both slices are valid for `src.len()` bytes (zip gave equal chunks) and
    // distinct.
    unsafe { rep_movsb(dst.as_mut_ptr(), src.as_ptr(), src.len()) };
}

fn copy_movq_loop(dst: &mut [u8], src: &[u8]) {
    // SAFETY: As in `copy_rep_movsb`; `run` makes chunks multiples of 32 bytes.
    unsafe { movq_loop(dst.as_mut_ptr(), src.as_ptr(), src.len()) };
}

fn copy_libc(dst: &mut [u8], src: &[u8]) {
    dst.copy_from_slice(src);
}

fn run() -> Result<(), String> {
    let args = Args::parse(&[])?;
    let chunk = args.size("chunk", 4096)? as usize;
    let span = args.size("span", 64 << 20)? as usize;
    let seconds: f64 = args.number("seconds", 2.0)?;
    if chunk == 0 || !chunk.is_multiple_of(32) || span < chunk || !span.is_multiple_of(chunk) {
        return Err("--chunk must be a multiple of 32, --span a multiple of --chunk".into());
    }
    let src: Vec<u8> = (0..span).map(|i| i as u8).collect();
    let mut dst = vec![0u8; span];
    if let Some(tag) = args.get("meter-tag") {
        let tag: u64 = tag
            .parse()
            .map_err(|_| format!("--meter-tag takes a number, not '{tag}'"))?;
        let passes: u64 = args.number("passes", 4)?;
        let copy_span = |dst: &mut [u8]| {
            for (d, s) in dst.chunks_mut(chunk).zip(src.chunks(chunk)) {
                copy_movq_loop(d, s);
            }
        };
        copy_span(&mut dst);
        meter::sample(2 * tag);
        for _ in 0..passes {
            copy_span(&mut dst);
        }
        meter::sample(2 * tag + 1);
        if dst != src {
            return Err("the copy is wrong".into());
        }
        println!(
            "memcpy-ref chunk={chunk} meter_tag={tag} meter_bytes={}",
            passes * span as u64
        );
        return Ok(());
    }
    let mut line = format!("memcpy-ref chunk={chunk} span={span}");
    for (name, copy) in [
        ("rep_movsb", copy_rep_movsb as fn(&mut [u8], &[u8])),
        ("movq_loop", copy_movq_loop),
        ("libc", copy_libc),
    ] {
        let rate = measure(&mut dst, &src, chunk, seconds, copy);
        line += &format!(
            " {name}_mib_s={:.0} {name}_ns_per_kib={:.1}",
            rate / (1 << 20) as f64,
            1e9 * 1024.0 / rate
        );
    }
    if dst != src {
        return Err("the copy is wrong".into());
    }
    println!("{line}");
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("memcpy-ref: {e}");
            ExitCode::from(2)
        }
    }
}
