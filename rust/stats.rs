// SPDX-License-Identifier: GPL-2.0

//! Per-device counters, shown by the `stats` attribute as one `key value` per line.

#![deny(unsafe_code)]

use kernel::{
    fmt,
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

/// Counters of one enabled device. Updated with relaxed atomics: each is exact, but a
/// reader may see them a few bios apart.
pub(crate) struct Stats {
    passthrough_bios: Atomic<u64>,
    passthrough_bytes: Atomic<u64>,
    errors: Atomic<u64>,
}

impl Stats {
    /// Creates counters at zero.
    pub(crate) fn new() -> Self {
        Self {
            passthrough_bios: Atomic::new(0),
            passthrough_bytes: Atomic::new(0),
            errors: Atomic::new(0),
        }
    }

    /// Counts a bio of `bytes` passed through to the lower device unchanged.
    pub(crate) fn passed_through(&self, bytes: u32) {
        self.passthrough_bios.fetch_add(1, Relaxed);
        self.passthrough_bytes.fetch_add(u64::from(bytes), Relaxed);
    }

    /// Counts a bio that completed with an error.
    pub(crate) fn failed(&self) {
        self.errors.fetch_add(1, Relaxed);
    }

    /// Reads all counters.
    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            passthrough_bios: self.passthrough_bios.load(Relaxed),
            passthrough_bytes: self.passthrough_bytes.load(Relaxed),
            errors: self.errors.load(Relaxed),
        }
    }
}

/// The counters at one moment; all zero for a disabled device.
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct StatsSnapshot {
    /// Bios passed to the lower device unchanged.
    pub(crate) passthrough_bios: u64,
    /// Bytes of data in those bios.
    pub(crate) passthrough_bytes: u64,
    /// Bios that completed with an error, the lower device's or blkbounce's own.
    pub(crate) errors: u64,
}

impl fmt::Display for StatsSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "passthrough_bios {}", self.passthrough_bios)?;
        writeln!(f, "passthrough_bytes {}", self.passthrough_bytes)?;
        writeln!(f, "errors {}", self.errors)
    }
}

#[kunit_tests(blkbounce_stats)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        let stats = Stats::new();
        stats.passed_through(4096);
        stats.passed_through(0);
        stats.failed();
        let s = stats.snapshot();
        assert_eq!(s.passthrough_bios, 2);
        assert_eq!(s.passthrough_bytes, 4096);
        assert_eq!(s.errors, 1);
    }
}
