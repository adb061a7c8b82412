// SPDX-License-Identifier: GPL-2.0

//! Per-device counters, shown by the `stats` attribute as one `key value` per line.

use crate::{
    blk::{bio::BioOp, cap::CapFigures, peak::raise_max, percpu::PerCpuCounters},
    policy::Reason,
};
use kernel::{fmt, prelude::*, sync::atomic::Relaxed};

/// The counters, by their index in each CPU's array; [`Reason::ALL`] follow them.
#[derive(Clone, Copy)]
enum Counter {
    BouncedReadBios,
    BouncedReadBytes,
    BouncedWriteBios,
    BouncedWriteBytes,
    PassthroughBios,
    PassthroughBytes,
    DiscardBios,
    DiscardBytes,
    WriteZeroesBios,
    WriteZeroesBytes,
    ReservePages,
    ReserveFallbacks,
    NowaitAgain,
    CapAgain,
    Errors,
    RetriesRead,
    RetriesFailed,
    CopybackCount,
    CopybackDeferred,
    CopybackTotalNs,
    /// The largest copy-back time seen on the CPU: a maximum, not a sum.
    CopybackMaxNs,
    /// The first of the bounce reasons.
    Reasons,
}

/// How many counters each CPU keeps.
const COUNTERS: usize = Counter::Reasons as usize + Reason::ALL.len();

/// Counters of one enabled device, kept per CPU ([`PerCpuCounters`]) and summed when they
/// are read: each is exact, but a reader may see them a few bios apart.
pub(crate) struct Stats {
    counters: PerCpuCounters<COUNTERS>,
}

impl Stats {
    /// Creates counters at zero.
    pub(crate) fn new() -> Result<Self> {
        Ok(Self {
            counters: PerCpuCounters::new()?,
        })
    }

    /// Adds `n` to counter `c` of the local CPU.
    #[inline]
    fn add(&self, c: Counter, n: u64) {
        self.counters.local()[c as usize].add(n, Relaxed);
    }

    /// Counts a bio of operation `op` and size `bytes` passed through to the lower device
    /// unchanged. The size of a discard or write zeroes is a range, not data: those are
    /// counted apart.
    pub(crate) fn passed_through(&self, op: BioOp, bytes: u32) {
        let (bios, total) = match op {
            BioOp::Discard => (Counter::DiscardBios, Counter::DiscardBytes),
            BioOp::WriteZeroes => (Counter::WriteZeroesBios, Counter::WriteZeroesBytes),
            _ => (Counter::PassthroughBios, Counter::PassthroughBytes),
        };
        let local = self.counters.local();
        local[bios as usize].add(1, Relaxed);
        local[total as usize].add(u64::from(bytes), Relaxed);
    }

    /// Counts a bio of `bytes` bounced for `reason`, a write if `write`, else a read.
    pub(crate) fn bounced(&self, reason: Reason, write: bool, bytes: u32) {
        let (bios, total) = if write {
            (Counter::BouncedWriteBios, Counter::BouncedWriteBytes)
        } else {
            (Counter::BouncedReadBios, Counter::BouncedReadBytes)
        };
        let local = self.counters.local();
        local[Counter::Reasons as usize + reason.index()].add(1, Relaxed);
        local[bios as usize].add(1, Relaxed);
        local[total as usize].add(u64::from(bytes), Relaxed);
    }

    /// Counts a bounce page asked of the reserve pool because the page allocator had none
    /// at once.
    pub(crate) fn reserve_page(&self) {
        self.add(Counter::ReservePages, 1);
    }

    /// Counts a bio whose bounce memory came from the reserve, one bio at a time, after the
    /// page allocator had none at once.
    pub(crate) fn reserve_fallback(&self) {
        self.add(Counter::ReserveFallbacks, 1);
    }

    /// Counts a `REQ_NOWAIT` bio ended with `BLK_STS_AGAIN`, by blkbounce for want of memory
    /// or room under the cap, or by the lower device.
    pub(crate) fn nowait_again(&self) {
        self.add(Counter::NowaitAgain, 1);
    }

    /// Counts a `REQ_NOWAIT` bio that found no room under the cap (it is also counted by
    /// [`Stats::nowait_again`]).
    pub(crate) fn cap_again(&self) {
        self.add(Counter::CapAgain, 1);
    }

    /// Counts a bio that completed with an error of the lower device (not `BLK_STS_AGAIN`
    /// on a `REQ_NOWAIT` bio, which [`Stats::nowait_again`] counts).
    pub(crate) fn failed(&self) {
        self.add(Counter::Errors, 1);
    }

    /// Counts a zero-copy read that failed with a protection error and is retried through
    /// bounce pages (`mode=optimistic`). It is not counted by [`Stats::failed`]: only the
    /// retry's status reaches the submitter.
    pub(crate) fn retried_read(&self) {
        self.add(Counter::RetriesRead, 1);
    }

    /// Counts a retry that failed too: ended by blkbounce before it went down, or by the
    /// lower device (then also counted by [`Stats::failed`] or [`Stats::nowait_again`]).
    pub(crate) fn retry_failed(&self) {
        self.add(Counter::RetriesFailed, 1);
    }

    /// Counts a read copy-back done where the read completed.
    pub(crate) fn copied_back(&self) {
        self.add(Counter::CopybackCount, 1);
    }

    /// Counts a read copy-back deferred to the module's copy queue, because the read
    /// completed in atomic context, that ended `ns` after it was handed over.
    pub(crate) fn copied_back_deferred(&self, ns: u64) {
        let local = self.counters.local();
        local[Counter::CopybackCount as usize].add(1, Relaxed);
        local[Counter::CopybackDeferred as usize].add(1, Relaxed);
        local[Counter::CopybackTotalNs as usize].add(ns, Relaxed);
        raise_max(&local[Counter::CopybackMaxNs as usize], ns);
    }

    /// Returns the sum of counter `c` over all CPUs.
    fn sum(&self, c: Counter) -> u64 {
        self.counters.sum(c as usize)
    }

    /// Reads all counters, with the figures of the device's cap on bounce memory.
    pub(crate) fn snapshot(&self, cap: CapFigures) -> StatsSnapshot {
        StatsSnapshot {
            bounced_read_bios: self.sum(Counter::BouncedReadBios),
            bounced_read_bytes: self.sum(Counter::BouncedReadBytes),
            bounced_write_bios: self.sum(Counter::BouncedWriteBios),
            bounced_write_bytes: self.sum(Counter::BouncedWriteBytes),
            bounce_reasons: core::array::from_fn(|i| {
                self.counters.sum(Counter::Reasons as usize + i)
            }),
            passthrough_bios: self.sum(Counter::PassthroughBios),
            passthrough_bytes: self.sum(Counter::PassthroughBytes),
            discard_bios: self.sum(Counter::DiscardBios),
            discard_bytes: self.sum(Counter::DiscardBytes),
            write_zeroes_bios: self.sum(Counter::WriteZeroesBios),
            write_zeroes_bytes: self.sum(Counter::WriteZeroesBytes),
            cap,
            reserve_pages: self.sum(Counter::ReservePages),
            reserve_fallbacks: self.sum(Counter::ReserveFallbacks),
            nowait_again: self.sum(Counter::NowaitAgain),
            cap_again: self.sum(Counter::CapAgain),
            errors: self.sum(Counter::Errors),
            retries_read: self.sum(Counter::RetriesRead),
            retries_failed: self.sum(Counter::RetriesFailed),
            copyback_count: self.sum(Counter::CopybackCount),
            copyback_deferred: self.sum(Counter::CopybackDeferred),
            copyback_total_ns: self.sum(Counter::CopybackTotalNs),
            copyback_max_ns: self
                .counters
                .each()
                .map(|c| c[Counter::CopybackMaxNs as usize].load(Relaxed))
                .max()
                .unwrap_or(0),
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
    /// Read copy-backs; those deferred to task context, and their time from the hand-off
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
    fn counts() -> Result {
        let stats = Stats::new()?;
        stats.passed_through(BioOp::Write, 4096);
        stats.passed_through(BioOp::Other, 0);
        stats.passed_through(BioOp::Discard, 1 << 20);
        stats.passed_through(BioOp::WriteZeroes, 8192);
        stats.bounced(Reason::Pinned, false, 8192);
        stats.bounced(Reason::Pinned, true, 512);
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
        Ok(())
    }

    #[test]
    fn counts_reasons() -> Result {
        let stats = Stats::new()?;
        stats.bounced(Reason::Pinned, false, 0);
        stats.bounced(Reason::PageCache, true, 0);
        stats.bounced(Reason::PageCache, true, 0);
        stats.bounced(Reason::OptimisticWrite, true, 0);
        let s = stats.snapshot(CapFigures::default());
        assert_eq!(s.bounce_reasons, [0, 1, 0, 0, 2, 0, 0, 0, 0, 1]);
        Ok(())
    }

    #[test]
    fn copyback_latency() -> Result {
        let stats = Stats::new()?;
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
        Ok(())
    }
}
