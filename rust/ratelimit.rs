// SPDX-License-Identifier: GPL-2.0

//! A rate limit for kernel log lines: a burst per interval, and a count of what was held
//! back.

use kernel::{
    prelude::*,
    sync::atomic::{Atomic, Full, Relaxed},
    time::{Instant, Monotonic},
};

/// Lines allowed per interval.
const BURST: u32 = 10;
/// The interval, in nanoseconds (5 s, as `printk_ratelimit`).
const INTERVAL_NS: i64 = 5_000_000_000;

/// A rate limit shared by all CPUs.
pub(crate) struct RateLimit {
    base: Instant<Monotonic>,
    window_start_ns: Atomic<i64>,
    in_window: Atomic<u32>,
    suppressed: Atomic<u64>,
}

impl RateLimit {
    pub(crate) fn new() -> Self {
        Self {
            base: Instant::now(),
            window_start_ns: Atomic::new(0),
            in_window: Atomic::new(0),
            suppressed: Atomic::new(0),
        }
    }

    /// Returns `Some(n)` if a line may be logged now, where `n` lines were held back since
    /// the last one logged; `None` if this one must be held back.
    pub(crate) fn check(&self) -> Option<u64> {
        self.check_at((Instant::now() - self.base).as_nanos())
    }

    fn check_at(&self, now_ns: i64) -> Option<u64> {
        let start = self.window_start_ns.load(Relaxed);
        if now_ns - start >= INTERVAL_NS
            && self.window_start_ns.cmpxchg(start, now_ns, Full).is_ok()
        {
            self.in_window.store(0, Relaxed);
        }
        if self.in_window.fetch_add(1, Relaxed) < BURST {
            Some(self.suppressed.xchg(0, Relaxed))
        } else {
            self.suppressed.fetch_add(1, Relaxed);
            None
        }
    }
}

#[kunit_tests(blkbounce_ratelimit)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_holds_back() {
        let rl = RateLimit::new();
        for _ in 0..BURST {
            assert_eq!(rl.check_at(1), Some(0));
        }
        assert_eq!(rl.check_at(2), None);
        assert_eq!(rl.check_at(3), None);
        // A new interval lets lines through again and reports what was held back.
        assert_eq!(rl.check_at(INTERVAL_NS + 1), Some(2));
        assert_eq!(rl.check_at(INTERVAL_NS + 2), Some(0));
    }
}
