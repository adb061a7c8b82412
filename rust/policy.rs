// SPDX-License-Identifier: GPL-2.0

//! Which bios a device bounces.

#![deny(unsafe_code)]

use crate::mode::Mode;
use kernel::{fmt, prelude::*};

/// What happens to one bio.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Decision {
    /// Sent to the lower device as it is (a clone with the same pages).
    PassThrough,
    /// Copied through pages blkbounce owns.
    Bounce,
}

/// Decides for a bio: `has_data` says whether it reads or writes data, `pinned` whether
/// any of its pages may be pinned for DMA by the submitter (asked only in `auto` mode).
///
/// `auto` bounces the I/O whose pages the submitter may still change: direct I/O from
/// user memory, pinned. Page cache I/O passes through; the disk declares stable writes,
/// so the page cache keeps its pages stable during writeback, and a filesystem that
/// bounces its own direct I/O (XFS on a stable-writes device) hands down kernel pages,
/// which pass through too, so nothing is copied twice.
pub(crate) fn decide(mode: Mode, has_data: bool, pinned: impl FnOnce() -> bool) -> Decision {
    match mode {
        Mode::Off => Decision::PassThrough,
        _ if !has_data => Decision::PassThrough,
        Mode::Always => Decision::Bounce,
        Mode::Auto if pinned() => Decision::Bounce,
        Mode::Auto => Decision::PassThrough,
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PassThrough => "pass",
            Self::Bounce => "bounce",
        })
    }
}

#[kunit_tests(blkbounce_policy)]
mod tests {
    use super::*;

    #[test]
    fn off_never_bounces() {
        assert_eq!(decide(Mode::Off, true, || true), Decision::PassThrough);
    }

    #[test]
    fn always_bounces_data_only() {
        assert_eq!(decide(Mode::Always, true, || false), Decision::Bounce);
        assert_eq!(decide(Mode::Always, false, || true), Decision::PassThrough);
    }

    #[test]
    fn auto_bounces_pinned_data() {
        assert_eq!(decide(Mode::Auto, true, || true), Decision::Bounce);
        assert_eq!(decide(Mode::Auto, true, || false), Decision::PassThrough);
        assert_eq!(decide(Mode::Auto, false, || true), Decision::PassThrough);
    }

    #[test]
    fn pinned_is_asked_only_when_needed() {
        let mut asked = false;
        decide(Mode::Always, true, || {
            asked = true;
            true
        });
        decide(Mode::Off, true, || {
            asked = true;
            true
        });
        assert!(!asked);
    }
}
