// SPDX-License-Identifier: GPL-2.0

//! The pool of disk numbers: `blkbounce0`, `blkbounce1`, ...

use kernel::{
    prelude::*,
    sync::atomic::{Atomic, Full, Relaxed},
};

/// The most devices enabled at once.
pub(crate) const MAX_DISKS: u32 = 64;

/// A set of disk numbers below [`MAX_DISKS`], each handed out to one device at a time.
pub(crate) struct DiskIndexPool {
    used: Atomic<u64>,
}

impl DiskIndexPool {
    /// Creates a pool with every number free.
    pub(crate) fn new() -> Self {
        Self {
            used: Atomic::new(0),
        }
    }

    /// Takes the lowest free number, or fails with `ENOSPC`.
    pub(crate) fn take(&self) -> Result<u32> {
        let mut index = 0;
        self.update(|used| {
            index = (!used).trailing_zeros();
            (index < MAX_DISKS).then(|| used | (1 << index))
        })
        .ok_or(ENOSPC)?;
        Ok(index)
    }

    /// Returns `index` to the pool.
    pub(crate) fn give_back(&self, index: u32) {
        self.update(|used| Some(used & !(1u64 << index)));
    }

    /// Replaces the set with `f(set)` atomically, unless `f` returns `None`.
    fn update(&self, mut f: impl FnMut(u64) -> Option<u64>) -> Option<u64> {
        let mut used = self.used.load(Relaxed);
        loop {
            let new = f(used)?;
            match self.used.cmpxchg(used, new, Full) {
                Ok(_) => return Some(new),
                Err(now) => used = now,
            }
        }
    }
}

#[kunit_tests(blkbounce_disk_index)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_lowest_free() {
        let pool = DiskIndexPool::new();
        assert_eq!(pool.take(), Ok(0));
        assert_eq!(pool.take(), Ok(1));
        assert_eq!(pool.take(), Ok(2));
        pool.give_back(1);
        assert_eq!(pool.take(), Ok(1));
        assert_eq!(pool.take(), Ok(3));
    }

    #[test]
    fn runs_out() {
        let pool = DiskIndexPool::new();
        for i in 0..MAX_DISKS {
            assert_eq!(pool.take(), Ok(i));
        }
        assert_eq!(pool.take(), Err(ENOSPC));
        pool.give_back(17);
        assert_eq!(pool.take(), Ok(17));
    }
}
