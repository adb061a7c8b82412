// SPDX-License-Identifier: GPL-2.0

//! memhog: fills anonymous memory with a pattern, then checks it, so that in a
//! memory-limited cgroup the pages go out to swap and must come back intact.
//!
//! ```text
//! memhog --size SIZE [--passes N] [--seed N]
//! ```
//!
//! Writes every page of a `--size` buffer with the pattern of `--seed`, then reads the
//! whole buffer back `--passes` times (default 2), each pass also rewriting every page
//! with the pattern of the next seed, so that swapped-out pages are dirty again. Prints one
//! line of `key=value` pairs; exits 1 if any page held the wrong data.

use blkbounce_tests::{args::Args, pattern};
use std::process::ExitCode;
use std::time::Instant;

const PAGE: usize = 4096;

fn run() -> Result<u64, String> {
    let args = Args::parse(&[])?;
    let size = args.size("size", 256 << 20)? as usize;
    let passes: u64 = args.number("passes", 2)?;
    let seed: u64 = args.number("seed", 1)?;
    if size == 0 || !size.is_multiple_of(PAGE) {
        return Err("--size must be a positive multiple of 4096".into());
    }

    let start = Instant::now();
    let mut memory = vec![0u8; size];
    for (i, page) in memory.chunks_mut(PAGE).enumerate() {
        pattern::fill(page, seed, (i * PAGE) as u64);
    }
    let mut bad_pages = 0;
    for pass in 0..passes {
        let (current, next) = (seed + pass, seed + pass + 1);
        for (i, page) in memory.chunks_mut(PAGE).enumerate() {
            let offset = (i * PAGE) as u64;
            if pattern::first_mismatch(page, current, offset).is_some() {
                bad_pages += 1;
            }
            pattern::fill(page, next, offset);
        }
    }
    println!(
        "memhog size={size} passes={passes} bad_pages={bad_pages} seconds={:.1}",
        start.elapsed().as_secs_f64()
    );
    Ok(bad_pages)
}

fn main() -> ExitCode {
    match run() {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("memhog: {e}");
            ExitCode::from(2)
        }
    }
}
