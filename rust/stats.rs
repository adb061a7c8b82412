// SPDX-License-Identifier: GPL-2.0

//! Per-device counters, shown by the `stats` attribute as one `key value` per line.

use crate::{
    blk::{bio::BioOp, cap::CapFigures, peak::raise_max},
    policy::Reason,
};
use kernel::{
    fmt,
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

/// Counters of one enabled device. Updated with relaxed atomics: each is exact, but a
/// reader may see them a few bios apart.
pub(crate) struct Stats {
    bounced_read_bios: Atomic<u64>,
    bounced_read_bytes: Atomic<u64>,
    bounced_write_bios: Atomic<u64>,
    bounced_write_bytes: Atomic<u64>,
    bounce_reasons: [Atomic<u64>; Reason::ALL.len()],
    passthrough_bios: Atomic<u64>,
    passthrough_bytes: Atomic<u64>,
    discard_bios: Atomic<u64>,
    discard_bytes: Atomic<u64>,
    write_zeroes_bios: Atomic<u64>,
    write_zeroes_bytes: Atomic<u64>,
    reserve_pages: Atomic<u64>,
    reserve_fallbacks: Atomic<u64>,
    nowait_again: Atomic<u64>,
    cap_again: Atomic<u64>,
    errors: Atomic<u64>,
    retries_read: Atomic<u64>,
    retries_failed: Atomic<u64>,
    copyback_count: Atomic<u64>,
    copyback_deferred: Atomic<u64>,
    copyback_total_ns: Atomic<u64>,
    copyback_max_ns: Atomic<u64>,
}

impl Stats {
    /// Creates counters at zero.
    pub(crate) fn new() -> Self {
        Self {
            bounced_read_bios: Atomic::new(0),
            bounced_read_bytes: Atomic::new(0),
            bounced_write_bios: Atomic::new(0),
            bounced_write_bytes: Atomic::new(0),
            bounce_reasons: [const { Atomic::new(0) }; Reason::ALL.len()],
            passthrough_bios: Atomic::new(0),
            passthrough_bytes: Atomic::new(0),
            discard_bios: Atomic::new(0),
            discard_bytes: Atomic::new(0),
            write_zeroes_bios: Atomic::new(0),
            write_zeroes_bytes: Atomic::new(0),
            reserve_pages: Atomic::new(0),
            reserve_fallbacks: Atomic::new(0),
            nowait_again: Atomic::new(0),
            cap_again: Atomic::new(0),
            errors: Atomic::new(0),
            retries_read: Atomic::new(0),
            retries_failed: Atomic::new(0),
            copyback_count: Atomic::new(0),
            copyback_deferred: Atomic::new(0),
            copyback_total_ns: Atomic::new(0),
            copyback_max_ns: Atomic::new(0),
        }
    }

    /// Counts a bio of operation `op` and size `bytes` passed through to the lower device
    /// unchanged. The size of a discard or write zeroes is a range, not data: those are
    /// counted apart.
    pub(crate) fn passed_through(&self, op: BioOp, bytes: u32) {
        let (bios, total) = match op {
            BioOp::Discard => (&self.discard_bios, &self.discard_bytes),
            BioOp::WriteZeroes => (&self.write_zeroes_bios, &self.write_zeroes_bytes),
            _ => (&self.passthrough_bios, &self.passthrough_bytes),
        };
        bios.fetch_add(1, Relaxed);
        total.fetch_add(u64::from(bytes), Relaxed);
    }

    /// Counts a read of `bytes` bounced.
    pub(crate) fn bounced_read(&self, bytes: u32) {
        self.bounced_read_bios.fetch_add(1, Relaxed);
        self.bounced_read_bytes.fetch_add(u64::from(bytes), Relaxed);
    }

    /// Counts a write of `bytes` bounced.
    pub(crate) fn bounced_write(&self, bytes: u32) {
        self.bounced_write_bios.fetch_add(1, Relaxed);
        self.bounced_write_bytes
            .fetch_add(u64::from(bytes), Relaxed);
    }

    /// Counts a bio bounced for `reason`.
    pub(crate) fn bounced_for(&self, reason: Reason) {
        self.bounce_reasons[reason.index()].fetch_add(1, Relaxed);
    }

    /// Counts a bounce page asked of the reserve pool because the page allocator had none
    /// at once.
    pub(crate) fn reserve_page(&self) {
        self.reserve_pages.fetch_add(1, Relaxed);
    }

    /// Counts a bio whose bounce memory came from the reserve, one bio at a time, after the
    /// page allocator had none at once.
    pub(crate) fn reserve_fallback(&self) {
        self.reserve_fallbacks.fetch_add(1, Relaxed);
    }

    /// Counts a `REQ_NOWAIT` bio ended with `BLK_STS_AGAIN`, by blkbounce for want of memory
    /// or room under the cap, or by the lower device.
    pub(crate) fn nowait_again(&self) {
        self.nowait_again.fetch_add(1, Relaxed);
    }

    /// Counts a `REQ_NOWAIT` bio that found no room under the cap (it is also counted by
    /// [`Stats::nowait_again`]).
    pub(crate) fn cap_again(&self) {
        self.cap_again.fetch_add(1, Relaxed);
    }

    /// Counts a bio that completed with an error of the lower device (not `BLK_STS_AGAIN`
    /// on a `REQ_NOWAIT` bio, which [`Stats::nowait_again`] counts).
    pub(crate) fn failed(&self) {
        self.errors.fetch_add(1, Relaxed);
    }

    /// Counts a zero-copy read that failed with a protection error and is retried through
    /// bounce pages (`mode=optimistic`). It is not counted by [`Stats::failed`]: only the
    /// retry's status reaches the submitter.
    pub(crate) fn retried_read(&self) {
        self.retries_read.fetch_add(1, Relaxed);
    }

    /// Counts a retry that failed too: ended by blkbounce before it went down, or by the
    /// lower device (then also counted by [`Stats::failed`] or [`Stats::nowait_again`]).
    pub(crate) fn retry_failed(&self) {
        self.retries_failed.fetch_add(1, Relaxed);
    }

    /// Counts a read copy-back done where the read completed.
    pub(crate) fn copied_back(&self) {
        self.copyback_count.fetch_add(1, Relaxed);
    }

    /// Counts a read copy-back handed to the copy queue, because the completion ran in
    /// interrupt context or with interrupts or bottom halves off, that ended `ns` after it
    /// was handed over.
    pub(crate) fn copied_back_deferred(&self, ns: u64) {
        self.copyback_count.fetch_add(1, Relaxed);
        self.copyback_deferred.fetch_add(1, Relaxed);
        self.copyback_total_ns.fetch_add(ns, Relaxed);
        raise_max(&self.copyback_max_ns, ns);
    }

    /// Reads all counters, with the figures of the device's cap on bounce memory.
    pub(crate) fn snapshot(&self, cap: CapFigures) -> StatsSnapshot {
        StatsSnapshot {
            bounced_read_bios: self.bounced_read_bios.load(Relaxed),
            bounced_read_bytes: self.bounced_read_bytes.load(Relaxed),
            bounced_write_bios: self.bounced_write_bios.load(Relaxed),
            bounced_write_bytes: self.bounced_write_bytes.load(Relaxed),
            bounce_reasons: self.bounce_reasons.each_ref().map(|n| n.load(Relaxed)),
            passthrough_bios: self.passthrough_bios.load(Relaxed),
            passthrough_bytes: self.passthrough_bytes.load(Relaxed),
            discard_bios: self.discard_bios.load(Relaxed),
            discard_bytes: self.discard_bytes.load(Relaxed),
            write_zeroes_bios: self.write_zeroes_bios.load(Relaxed),
            write_zeroes_bytes: self.write_zeroes_bytes.load(Relaxed),
            cap,
            reserve_pages: self.reserve_pages.load(Relaxed),
            reserve_fallbacks: self.reserve_fallbacks.load(Relaxed),
            nowait_again: self.nowait_again.load(Relaxed),
            cap_again: self.cap_again.load(Relaxed),
            errors: self.errors.load(Relaxed),
            retries_read: self.retries_read.load(Relaxed),
            retries_failed: self.retries_failed.load(Relaxed),
            copyback_count: self.copyback_count.load(Relaxed),
            copyback_deferred: self.copyback_deferred.load(Relaxed),
            copyback_total_ns: self.copyback_total_ns.load(Relaxed),
            copyback_max_ns: self.copyback_max_ns.load(Relaxed),
        }
    }
}

/// The counters at one moment; all zero for a disabled device.
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct StatsSnapshot {
    /// Reads copied through blkbounce's pages, and their bytes.
    pub(crate) bounced_read_bios: u64,
    pub(crate) bounced_read_bytes: u64,
    /// Writes copied through blkbounce's pages, and their bytes.
    pub(crate) bounced_write_bios: u64,
    pub(crate) bounced_write_bytes: u64,
    /// Bounced bios by [`Reason`], in the order of [`Reason::ALL`].
    pub(crate) bounce_reasons: [u64; Reason::ALL.len()],
    /// Reads, writes and flushes passed to the lower device unchanged.
    pub(crate) passthrough_bios: u64,
    /// Bytes of data in those bios.
    pub(crate) passthrough_bytes: u64,
    /// Discards and secure erases passed down, and the bytes they cover.
    pub(crate) discard_bios: u64,
    pub(crate) discard_bytes: u64,
    /// Write zeroes passed down, and the bytes they cover.
    pub(crate) write_zeroes_bios: u64,
    pub(crate) write_zeroes_bytes: u64,
    /// The cap on bounce memory in flight, and how it was used.
    pub(crate) cap: CapFigures,
    /// Bounce pages asked of the reserve pool because the page allocator had none at once.
    pub(crate) reserve_pages: u64,
    /// Bounced bios that waited for the page reserve.
    pub(crate) reserve_fallbacks: u64,
    /// `REQ_NOWAIT` bios ended with `BLK_STS_AGAIN` (no memory or room at once here, or
    /// the lower device's).
    pub(crate) nowait_again: u64,
    /// Of those, bios that found no room under the cap.
    pub(crate) cap_again: u64,
    /// Bios completed with an error of the lower device.
    pub(crate) errors: u64,
    /// `mode=optimistic`: zero-copy reads that failed with a protection error and were
    /// retried through bounce pages.
    pub(crate) retries_read: u64,
    /// Retries that failed too.
    pub(crate) retries_failed: u64,
    /// Read copy-backs; those handed to the copy queue, and their time from the hand-off
    /// to the upper completion.
    pub(crate) copyback_count: u64,
    pub(crate) copyback_deferred: u64,
    pub(crate) copyback_total_ns: u64,
    pub(crate) copyback_max_ns: u64,
}

impl fmt::Display for StatsSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "bounced_read_bios {}", self.bounced_read_bios)?;
        writeln!(f, "bounced_read_bytes {}", self.bounced_read_bytes)?;
        writeln!(f, "bounced_write_bios {}", self.bounced_write_bios)?;
        writeln!(f, "bounced_write_bytes {}", self.bounced_write_bytes)?;
        for (reason, n) in Reason::ALL.iter().zip(self.bounce_reasons) {
            writeln!(f, "bounce_reason_{} {n}", reason.name())?;
        }
        writeln!(f, "passthrough_bios {}", self.passthrough_bios)?;
        writeln!(f, "passthrough_bytes {}", self.passthrough_bytes)?;
        writeln!(f, "discard_bios {}", self.discard_bios)?;
        writeln!(f, "discard_bytes {}", self.discard_bytes)?;
        writeln!(f, "write_zeroes_bios {}", self.write_zeroes_bios)?;
        writeln!(f, "write_zeroes_bytes {}", self.write_zeroes_bytes)?;
        writeln!(f, "bounce_bytes_max {}", self.cap.cap)?;
        writeln!(f, "bounce_bytes_in_flight {}", self.cap.in_flight)?;
        writeln!(f, "bounce_bytes_peak {}", self.cap.peak)?;
        writeln!(f, "bounce_cap_waits {}", self.cap.waits)?;
        writeln!(f, "bounce_cap_again {}", self.cap_again)?;
        writeln!(f, "bounce_memory_peak {}", self.cap.memory_peak)?;
        writeln!(f, "bounce_memory_recycled {}", self.cap.recycled)?;
        writeln!(f, "reserve_pages {}", self.reserve_pages)?;
        writeln!(f, "reserve_fallbacks {}", self.reserve_fallbacks)?;
        writeln!(f, "nowait_again {}", self.nowait_again)?;
        writeln!(f, "errors {}", self.errors)?;
        writeln!(f, "optimistic_retries_read {}", self.retries_read)?;
        writeln!(f, "optimistic_retries_failed {}", self.retries_failed)?;
        writeln!(f, "copyback_count {}", self.copyback_count)?;
        writeln!(f, "copyback_deferred {}", self.copyback_deferred)?;
        writeln!(f, "copyback_total_ns {}", self.copyback_total_ns)?;
        writeln!(f, "copyback_max_ns {}", self.copyback_max_ns)
    }
}

#[kunit_tests(blkbounce_stats)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        let stats = Stats::new();
        stats.passed_through(BioOp::Write, 4096);
        stats.passed_through(BioOp::Other, 0);
        stats.passed_through(BioOp::Discard, 1 << 20);
        stats.passed_through(BioOp::WriteZeroes, 8192);
        stats.bounced_read(8192);
        stats.bounced_write(512);
        stats.failed();
        stats.reserve_page();
        stats.retried_read();
        stats.retried_read();
        stats.retry_failed();
        let s = stats.snapshot(CapFigures::default());
        assert_eq!(s.passthrough_bios, 2);
        assert_eq!(s.passthrough_bytes, 4096);
        assert_eq!((s.discard_bios, s.discard_bytes), (1, 1 << 20));
        assert_eq!((s.write_zeroes_bios, s.write_zeroes_bytes), (1, 8192));
        assert_eq!((s.bounced_read_bios, s.bounced_read_bytes), (1, 8192));
        assert_eq!((s.bounced_write_bios, s.bounced_write_bytes), (1, 512));
        assert_eq!(s.errors, 1);
        assert_eq!((s.reserve_pages, s.reserve_fallbacks), (1, 0));
        assert_eq!((s.retries_read, s.retries_failed), (2, 1));
    }

    #[test]
    fn counts_reasons() {
        let stats = Stats::new();
        stats.bounced_for(Reason::Pinned);
        stats.bounced_for(Reason::PageCache);
        stats.bounced_for(Reason::PageCache);
        stats.bounced_for(Reason::OptimisticWrite);
        let s = stats.snapshot(CapFigures::default());
        assert_eq!(s.bounce_reasons, [0, 1, 0, 0, 2, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn copyback_latency() {
        let stats = Stats::new();
        stats.copied_back_deferred(300);
        stats.copied_back_deferred(100);
        stats.copied_back();
        stats.copied_back_deferred(200);
        let s = stats.snapshot(CapFigures::default());
        assert_eq!(
            (
                s.copyback_count,
                s.copyback_deferred,
                s.copyback_total_ns,
                s.copyback_max_ns
            ),
            (4, 3, 600, 300)
        );
    }
}
