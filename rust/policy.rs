// SPDX-License-Identifier: GPL-2.0

//! Which bios a device bounces, and why.
//!
//! `always` bounces every data bio, `off` none, and `optimistic` bounces every write and
//! sends every read zero-copy first (it bounces a retry when the read fails its
//! protection check).
//! `auto` passes a bio through only if every folio of its data is known to stay unchanged
//! until the I/O ends, and bounces it as soon as one folio may change. The walk stops at
//! the first such folio; consecutive pages of one folio are asked about once.
//!
//! A write may pass when the folio is:
//! - the zero page;
//! - page cache under writeback in a file's mapping with stable writes, in a bio that is
//!   not direct I/O, that is in the writeback bio itself: writers wait for the writeback
//!   to end (`folio_wait_stable` in `write_begin` and `page_mkwrite`), and the disk
//!   declares stable writes, so filesystems on it set them. A direct I/O write (spliced,
//!   `sendfile`) may carry a folio under someone else's writeback, which can end first;
//!   and filesystems change metadata in a block device's page cache without waiting;
//! - swap cache under writeback: swap-out starts only on a folio that is fully unmapped
//!   with no unexpected references, and a swap device with stable writes
//!   (`SWP_STABLE_WRITES`) maps it back read-only until the writeback ends
//!   (`do_swap_page`);
//! - slab memory, or kernel memory of no mapping that no process maps and that is not
//!   another Xen domain's: a filesystem's own bounce folios (`bio_iov_iter_bounce`),
//!   metadata buffers, vmalloc'd log buffers.
//!
//! A read may pass when the folio is locked and not yet up to date, with no process
//! mapping it: a page cache or swap cache folio being filled, which nobody can see or write
//! before the read ends and unlocks it; or kernel memory as above.
//!
//! Everything else is bounced, by the first reason that holds: pinned for DMA, anonymous
//! (vmsplice'd user memory), shmem (tmpfs, memfd), a file's page cache that is not under
//! its own stable writeback (spliced, sent by `sendfile`, copied by `copy_file_range`), a
//! block device's page cache (metadata buffers, buffered I/O to a disk), mapped into a
//! process, or foreign (a Xen guest's page, grant-mapped by xen-blkback).

use crate::{
    blk::{
        bio::BioOp,
        folio::{FolioState, FolioWalk},
    },
    mode::Mode,
};
use kernel::{fmt, prelude::*};

/// Why a bio is bounced.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Reason {
    /// `mode=always` bounces every data bio.
    Always,
    /// A folio may be pinned for DMA by the submitter: direct I/O from user memory,
    /// io_uring fixed buffers.
    Pinned,
    /// A folio is anonymous user memory that is not being swapped out (vmsplice).
    Anonymous,
    /// A folio is shmem: tmpfs, memfd, SysV shared memory.
    Shmem,
    /// A folio is a file's page cache not under its own stable writeback (splice,
    /// `sendfile`, `copy_file_range`), or, for a read, already up to date.
    PageCache,
    /// A folio is a block device's page cache: filesystem metadata in buffer heads, which
    /// some filesystems change without waiting for writeback; buffered I/O to a disk.
    BdevCache,
    /// A folio of no mapping is mapped into a process.
    Mapped,
    /// A folio of no mapping is another Xen domain's page (xen-blkback): the guest may
    /// write it.
    Foreign,
    /// `mode=optimistic`: the zero-copy read failed its protection check, so its buffer
    /// changed in flight; the retry is bounced.
    Retry,
    /// `mode=optimistic`: a write. Sent zero-copy, its data could change after the block
    /// layer computed its PI, and only a device that checks that PI against the data it
    /// stores would refuse it; nothing shows that a device does (QEMU's NVMe does not for
    /// the first block of a command at LBA 0, scsi_debug checks one read of the pages and
    /// stores another), and a write stored torn is lost.
    OptimisticWrite,
}

impl Reason {
    /// Every reason, in the order `stats` lists them.
    pub(crate) const ALL: [Reason; 10] = [
        Reason::Always,
        Reason::Pinned,
        Reason::Anonymous,
        Reason::Shmem,
        Reason::PageCache,
        Reason::BdevCache,
        Reason::Mapped,
        Reason::Foreign,
        Reason::Retry,
        Reason::OptimisticWrite,
    ];

    /// The reason's place in [`Reason::ALL`], for per-reason arrays.
    pub(crate) const fn index(self) -> usize {
        self as usize
    }

    /// The reason's name in trace lines and counters.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::Pinned => "pinned",
            Self::Anonymous => "anonymous",
            Self::Shmem => "shmem",
            Self::PageCache => "pagecache",
            Self::BdevCache => "bdevcache",
            Self::Mapped => "mapped",
            Self::Foreign => "foreign",
            Self::Retry => "retry",
            Self::OptimisticWrite => "optimistic_write",
        }
    }
}

// `Reason::index` is the place in `Reason::ALL`.
const _: () = {
    let mut i = 0;
    while i < Reason::ALL.len() {
        assert!(Reason::ALL[i].index() == i);
        i += 1;
    }
};

/// What the policy knows of a bio besides its folios.
#[derive(Clone, Copy)]
pub(crate) struct Io {
    /// The operation.
    pub(crate) op: BioOp,
    /// The bio reads or writes data.
    pub(crate) has_data: bool,
    /// The bio may be direct I/O (`REQ_IDLE`), so it is not the page cache's own writeback.
    pub(crate) direct: bool,
}

/// What happens to one bio.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Decision {
    /// Sent to the lower device as it is (a clone with the same pages).
    PassThrough,
    /// Sent to the lower device as it is, and bounced if it fails with a protection error
    /// (`mode=optimistic`, reads).
    ZeroCopyFirst,
    /// Copied through pages blkbounce owns.
    Bounce(Reason),
}

/// Decides for the bio `io` whose data, if it has any, lies in the folios of `data`
/// (walked only in `auto` mode).
pub(crate) fn decide(mode: Mode, io: Io, data: &impl FolioWalk) -> Decision {
    if !io.has_data || !matches!(io.op, BioOp::Read | BioOp::Write) {
        return Decision::PassThrough;
    }
    match mode {
        Mode::Off => Decision::PassThrough,
        Mode::Always => Decision::Bounce(Reason::Always),
        Mode::Optimistic if io.op == BioOp::Write => Decision::Bounce(Reason::OptimisticWrite),
        Mode::Optimistic => Decision::ZeroCopyFirst,
        Mode::Auto => match data.find_folio(|folio| unstable(io, folio)) {
            Some(reason) => Decision::Bounce(reason),
            None => Decision::PassThrough,
        },
    }
}

/// Returns `true` if the bio `io`, sent down zero-copy in `mode`, is to be sent again through
/// bounce pages after it failed; `protection_error` says whether the failure was a
/// protection error. Only in `optimistic`, only a read with data (the only bio it sends
/// zero-copy), and only for a protection error: the block layer's verification found the
/// data changed. Every other failure reaches the submitter as it is.
pub(crate) fn retried(mode: Mode, io: Io, protection_error: bool) -> bool {
    mode == Mode::Optimistic && protection_error && io.has_data && io.op == BioOp::Read
}

/// Returns why `folio` may change while the bio `io` (a read or a write) is in flight, or
/// `None` if it cannot.
fn unstable(io: Io, folio: &impl FolioState) -> Option<Reason> {
    let op = io.op;
    // The answers come together from one helper (`blkbounce_folio_flags`), which reads a
    // slab folio's overlaid `mapping` only through `folio_mapping()`, which returns NULL for
    // slab folios; the order of the tests here is the table's.
    if folio.is_zero() {
        return None;
    }
    if folio.maybe_dma_pinned() {
        return Some(Reason::Pinned);
    }
    if folio.is_slab() {
        return None;
    }
    let stable = match op {
        // Swap-out.
        BioOp::Write => folio.in_swap_cache() && folio.under_writeback(),
        // A page cache or swap cache folio being filled.
        _ => folio.is_locked() && !folio.is_uptodate() && !folio.is_mapped(),
    };
    if stable {
        return None;
    }
    if folio.is_anon() {
        return Some(Reason::Anonymous);
    }
    if folio.is_swapbacked() {
        return Some(Reason::Shmem);
    }
    if folio.has_mapping() {
        if folio.in_bdev_cache() {
            return Some(Reason::BdevCache);
        }
        let own_writeback = op == BioOp::Write
            && !io.direct
            && folio.under_writeback()
            && folio.has_stable_writes();
        return (!own_writeback).then_some(Reason::PageCache);
    }
    if folio.is_mapped() {
        return Some(Reason::Mapped);
    }
    folio.is_foreign().then_some(Reason::Foreign)
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PassThrough => f.write_str("pass"),
            Self::ZeroCopyFirst => f.write_str("zero-copy first"),
            Self::Bounce(reason) => write!(f, "bounce ({})", reason.name()),
        }
    }
}

#[kunit_tests(blkbounce_policy)]
mod tests {
    use super::*;
    use core::cell::Cell;

    /// A made-up folio: the answers to each test, and a count of the tests asked.
    #[derive(Default)]
    struct FakeFolio {
        zero: bool,
        pinned: bool,
        slab: bool,
        anon: bool,
        swapbacked: bool,
        swapcache: bool,
        mapping: bool,
        writeback: bool,
        locked: bool,
        uptodate: bool,
        mapped: bool,
        stable_writes: bool,
        bdev: bool,
        foreign: bool,
        asked: Cell<u32>,
    }

    impl FakeFolio {
        fn ask(&self, answer: bool) -> bool {
            self.asked.set(self.asked.get() + 1);
            answer
        }
    }

    impl FolioState for FakeFolio {
        fn is_zero(&self) -> bool {
            self.ask(self.zero)
        }
        fn maybe_dma_pinned(&self) -> bool {
            self.ask(self.pinned)
        }
        fn is_slab(&self) -> bool {
            self.ask(self.slab)
        }
        fn is_anon(&self) -> bool {
            self.ask(self.anon)
        }
        fn is_swapbacked(&self) -> bool {
            self.ask(self.swapbacked)
        }
        fn in_swap_cache(&self) -> bool {
            self.ask(self.swapcache)
        }
        fn has_mapping(&self) -> bool {
            self.ask(self.mapping)
        }
        fn under_writeback(&self) -> bool {
            self.ask(self.writeback)
        }
        fn is_locked(&self) -> bool {
            self.ask(self.locked)
        }
        fn is_uptodate(&self) -> bool {
            self.ask(self.uptodate)
        }
        fn is_mapped(&self) -> bool {
            self.ask(self.mapped)
        }
        fn is_foreign(&self) -> bool {
            self.ask(self.foreign)
        }
        fn in_bdev_cache(&self) -> bool {
            self.ask(self.bdev)
        }
        fn has_stable_writes(&self) -> bool {
            self.ask(self.stable_writes)
        }
    }

    /// The folios of a made-up bio.
    struct FakeBio<'a>(&'a [FakeFolio]);

    impl FolioWalk for FakeBio<'_> {
        type Folio = FakeFolio;

        fn find_folio<R>(&self, f: impl FnMut(&FakeFolio) -> Option<R>) -> Option<R> {
            self.0.iter().find_map(f)
        }
    }

    /// A bio of `op` with data, not direct I/O.
    fn io(op: BioOp) -> Io {
        Io {
            op,
            has_data: true,
            direct: false,
        }
    }

    /// A direct I/O bio of `op`.
    fn direct(op: BioOp) -> Io {
        Io {
            direct: true,
            ..io(op)
        }
    }

    fn decide_auto(io: Io, folio: FakeFolio) -> Decision {
        decide(Mode::Auto, io, &FakeBio(&[folio]))
    }

    fn auto(op: BioOp, folio: FakeFolio) -> Decision {
        decide_auto(io(op), folio)
    }

    const PASS: Decision = Decision::PassThrough;

    fn bounce(reason: Reason) -> Decision {
        Decision::Bounce(reason)
    }

    /// User memory of a process: anonymous, swap-backed, mapped, up to date.
    fn user_anon() -> FakeFolio {
        FakeFolio {
            anon: true,
            swapbacked: true,
            mapped: true,
            uptodate: true,
            ..Default::default()
        }
    }

    /// A file's page cache folio, up to date, in a mapping with stable writes.
    fn page_cache() -> FakeFolio {
        FakeFolio {
            mapping: true,
            uptodate: true,
            stable_writes: true,
            ..Default::default()
        }
    }

    /// A tmpfs or memfd folio.
    fn shmem() -> FakeFolio {
        FakeFolio {
            swapbacked: true,
            mapping: true,
            uptodate: true,
            ..Default::default()
        }
    }

    #[test]
    fn modes() {
        let bio = FakeBio(&[]);
        assert_eq!(decide(Mode::Off, io(BioOp::Write), &bio), PASS);
        assert_eq!(
            decide(Mode::Always, io(BioOp::Read), &bio),
            bounce(Reason::Always)
        );
        assert_eq!(
            decide(Mode::Optimistic, io(BioOp::Read), &bio),
            Decision::ZeroCopyFirst
        );
        assert_eq!(
            decide(Mode::Optimistic, io(BioOp::Write), &bio),
            bounce(Reason::OptimisticWrite)
        );
        let no_data = Io {
            has_data: false,
            ..io(BioOp::Write)
        };
        for mode in Mode::ALL {
            assert_eq!(decide(mode, no_data, &bio), PASS);
            for op in [BioOp::Other, BioOp::Discard, BioOp::WriteZeroes] {
                assert_eq!(decide(mode, io(op), &bio), PASS);
            }
        }
        // Nothing in the bio is unstable.
        assert_eq!(decide(Mode::Auto, io(BioOp::Write), &bio), PASS);
    }

    #[test]
    fn optimistic_retries_protection_errors_of_reads() {
        assert!(retried(Mode::Optimistic, io(BioOp::Read), true));
        assert!(!retried(Mode::Optimistic, io(BioOp::Read), false));
        for mode in [Mode::Auto, Mode::Always, Mode::Off] {
            assert!(!retried(mode, io(BioOp::Read), true));
        }
        let no_data = Io {
            has_data: false,
            ..io(BioOp::Read)
        };
        assert!(!retried(Mode::Optimistic, no_data, true));
        for op in [
            BioOp::Write,
            BioOp::Other,
            BioOp::Discard,
            BioOp::WriteZeroes,
        ] {
            assert!(!retried(Mode::Optimistic, io(op), true));
        }
    }

    #[test]
    fn only_auto_walks_the_folios() {
        let folios = [user_anon()];
        let no_data = Io {
            has_data: false,
            ..io(BioOp::Write)
        };
        decide(Mode::Always, io(BioOp::Write), &FakeBio(&folios));
        decide(Mode::Off, io(BioOp::Write), &FakeBio(&folios));
        decide(Mode::Optimistic, io(BioOp::Write), &FakeBio(&folios));
        decide(Mode::Optimistic, io(BioOp::Read), &FakeBio(&folios));
        decide(Mode::Auto, no_data, &FakeBio(&folios));
        assert_eq!(folios[0].asked.get(), 0);
    }

    #[test]
    fn zero_page_passes() {
        let folio = FakeFolio {
            zero: true,
            mapped: true,
            ..Default::default()
        };
        assert_eq!(auto(BioOp::Write, folio), PASS);
    }

    #[test]
    fn pinned_bounces() {
        for op in [BioOp::Write, BioOp::Read] {
            let folio = FakeFolio {
                pinned: true,
                ..user_anon()
            };
            assert_eq!(auto(op, folio), bounce(Reason::Pinned));
            // A pinned page cache folio under stable writeback is still pinned.
            let folio = FakeFolio {
                pinned: true,
                writeback: true,
                ..page_cache()
            };
            assert_eq!(auto(op, folio), bounce(Reason::Pinned));
        }
    }

    #[test]
    fn anonymous_bounces() {
        assert_eq!(auto(BioOp::Write, user_anon()), bounce(Reason::Anonymous));
        assert_eq!(auto(BioOp::Read, user_anon()), bounce(Reason::Anonymous));
        // Unmapped anonymous memory may be mapped again (vmsplice'd, then unmapped).
        let folio = FakeFolio {
            mapped: false,
            ..user_anon()
        };
        assert_eq!(auto(BioOp::Write, folio), bounce(Reason::Anonymous));
        // In the swap cache but not under writeback: a process may write it.
        let folio = FakeFolio {
            swapcache: true,
            mapping: true,
            ..user_anon()
        };
        assert_eq!(auto(BioOp::Write, folio), bounce(Reason::Anonymous));
    }

    #[test]
    fn swap_out_passes() {
        for anon in [true, false] {
            let folio = FakeFolio {
                anon,
                swapbacked: true,
                swapcache: true,
                mapping: true,
                writeback: true,
                uptodate: true,
                locked: true,
                ..Default::default()
            };
            assert_eq!(auto(BioOp::Write, folio), PASS);
        }
    }

    #[test]
    fn swap_in_passes() {
        let folio = FakeFolio {
            swapbacked: true,
            swapcache: true,
            mapping: true,
            locked: true,
            ..Default::default()
        };
        assert_eq!(auto(BioOp::Read, folio), PASS);
    }

    #[test]
    fn shmem_bounces() {
        assert_eq!(auto(BioOp::Write, shmem()), bounce(Reason::Shmem));
        assert_eq!(auto(BioOp::Read, shmem()), bounce(Reason::Shmem));
        let folio = FakeFolio {
            mapped: true,
            ..shmem()
        };
        assert_eq!(auto(BioOp::Write, folio), bounce(Reason::Shmem));
    }

    #[test]
    fn page_cache_writeback() {
        // Stable writeback passes, mapped or not.
        for mapped in [false, true] {
            let folio = FakeFolio {
                writeback: true,
                mapped,
                ..page_cache()
            };
            assert_eq!(auto(BioOp::Write, folio), PASS);
        }
        // Writeback in a mapping without stable writes: writers do not wait.
        let folio = FakeFolio {
            writeback: true,
            stable_writes: false,
            ..page_cache()
        };
        assert_eq!(auto(BioOp::Write, folio), bounce(Reason::PageCache));
        // Direct I/O (a spliced folio) is not that writeback, which may end first.
        let folio = FakeFolio {
            writeback: true,
            ..page_cache()
        };
        assert_eq!(
            decide_auto(direct(BioOp::Write), folio),
            bounce(Reason::PageCache)
        );
    }

    #[test]
    fn bdev_cache_bounces() {
        // Metadata buffers: some filesystems change them during writeback.
        for writeback in [false, true] {
            let folio = FakeFolio {
                bdev: true,
                writeback,
                ..page_cache()
            };
            assert_eq!(auto(BioOp::Write, folio), bounce(Reason::BdevCache));
        }
        let folio = FakeFolio {
            bdev: true,
            ..page_cache()
        };
        assert_eq!(auto(BioOp::Read, folio), bounce(Reason::BdevCache));
        // Filled by a read of the whole folio: nobody sees it yet.
        let folio = FakeFolio {
            bdev: true,
            locked: true,
            uptodate: false,
            ..page_cache()
        };
        assert_eq!(auto(BioOp::Read, folio), PASS);
    }

    #[test]
    fn page_cache_not_under_writeback_bounces() {
        // Spliced, sent by sendfile or copied by copy_file_range.
        assert_eq!(auto(BioOp::Write, page_cache()), bounce(Reason::PageCache));
        let folio = FakeFolio {
            mapped: true,
            ..page_cache()
        };
        assert_eq!(auto(BioOp::Write, folio), bounce(Reason::PageCache));
        // Writeback is no promise for a read into the folio.
        let folio = FakeFolio {
            writeback: true,
            ..page_cache()
        };
        assert_eq!(auto(BioOp::Read, folio), bounce(Reason::PageCache));
    }

    #[test]
    fn page_cache_fill_passes() {
        let folio = FakeFolio {
            locked: true,
            uptodate: false,
            ..page_cache()
        };
        assert_eq!(auto(BioOp::Read, folio), PASS);
        // The same folio in a write is not a fill.
        let folio = FakeFolio {
            locked: true,
            uptodate: false,
            ..page_cache()
        };
        assert_eq!(auto(BioOp::Write, folio), bounce(Reason::PageCache));
        // Locked but up to date: someone else holds the lock, readers may see it.
        let folio = FakeFolio {
            locked: true,
            ..page_cache()
        };
        assert_eq!(auto(BioOp::Read, folio), bounce(Reason::PageCache));
    }

    #[test]
    fn kernel_memory_passes() {
        for op in [BioOp::Write, BioOp::Read] {
            let slab = FakeFolio {
                slab: true,
                ..Default::default()
            };
            assert_eq!(auto(op, slab), PASS);
            // A filesystem's bounce folio, a metadata buffer: no mapping, not mapped.
            assert_eq!(auto(op, FakeFolio::default()), PASS);
            // Kernel memory mapped into a process.
            let mapped = FakeFolio {
                mapped: true,
                ..Default::default()
            };
            assert_eq!(auto(op, mapped), bounce(Reason::Mapped));
            // A Xen guest's page that xen-blkback writes or reads into.
            let foreign = FakeFolio {
                foreign: true,
                ..Default::default()
            };
            assert_eq!(auto(op, foreign), bounce(Reason::Foreign));
        }
    }

    #[test]
    fn walk_stops_at_first_unstable_folio() {
        let folios = [
            FakeFolio::default(),
            FakeFolio {
                writeback: true,
                ..page_cache()
            },
            user_anon(),
            FakeFolio {
                pinned: true,
                ..user_anon()
            },
        ];
        assert_eq!(
            decide(Mode::Auto, io(BioOp::Write), &FakeBio(&folios)),
            bounce(Reason::Anonymous)
        );
        assert!(folios[..3].iter().all(|f| f.asked.get() > 0));
        assert_eq!(folios[3].asked.get(), 0);
    }

    /// The tests asked per folio, as the README states them.
    #[test]
    fn tests_asked_per_folio() {
        let asked = |op, folio: FakeFolio| {
            let folios = [folio];
            decide(Mode::Auto, io(op), &FakeBio(&folios));
            folios[0].asked.get()
        };
        let pinned = FakeFolio {
            pinned: true,
            ..user_anon()
        };
        let stable_writeback = FakeFolio {
            writeback: true,
            ..page_cache()
        };
        let swap_out = FakeFolio {
            anon: true,
            swapbacked: true,
            swapcache: true,
            mapping: true,
            writeback: true,
            ..Default::default()
        };
        let fill = FakeFolio {
            locked: true,
            uptodate: false,
            ..page_cache()
        };
        let slab = FakeFolio {
            slab: true,
            ..Default::default()
        };
        let bdev_cache = FakeFolio {
            bdev: true,
            ..page_cache()
        };
        assert_eq!(asked(BioOp::Write, pinned), 2);
        assert_eq!(asked(BioOp::Write, user_anon()), 5);
        assert_eq!(asked(BioOp::Write, shmem()), 6);
        assert_eq!(asked(BioOp::Write, page_cache()), 9);
        assert_eq!(asked(BioOp::Write, stable_writeback), 10);
        assert_eq!(asked(BioOp::Write, bdev_cache), 8);
        assert_eq!(asked(BioOp::Write, swap_out), 5);
        assert_eq!(asked(BioOp::Write, FakeFolio::default()), 9);
        assert_eq!(asked(BioOp::Write, slab), 3);
        assert_eq!(asked(BioOp::Read, fill), 6);
    }

    #[test]
    fn reason_names() {
        let names = Reason::ALL.map(Reason::name);
        assert_eq!(
            names,
            [
                "always",
                "pinned",
                "anonymous",
                "shmem",
                "pagecache",
                "bdevcache",
                "mapped",
                "foreign",
                "retry",
                "optimistic_write"
            ]
        );
    }
}
