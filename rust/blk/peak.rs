// SPDX-License-Identifier: GPL-2.0

//! A high-water mark kept in an atomic counter.

use kernel::sync::atomic::{Atomic, Relaxed};

/// Raises `max` to `value` if it is smaller.
pub(crate) fn raise_max(max: &Atomic<u64>, value: u64) {
    let mut now = max.load(Relaxed);
    while value > now {
        match max.cmpxchg(now, value, Relaxed) {
            Ok(_) => break,
            Err(seen) => now = seen,
        }
    }
}
