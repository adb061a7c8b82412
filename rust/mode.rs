// SPDX-License-Identifier: GPL-2.0

//! The bounce policy of a device: `auto`, `always`, `optimistic` or `off`.

use crate::{blk::lower::Integrity, text};
use kernel::{fmt, prelude::*};

/// Which bios a device copies into pages of its own.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mode {
    /// Bounce data bios with a page that may change in flight (see `policy.rs`).
    Auto,
    /// Bounce every data bio.
    Always,
    /// Bounce every write; send reads zero-copy, and bounce only those that failed their
    /// protection check: their buffer changed in flight (see `device.rs`).
    Optimistic,
    /// Pass everything through unchanged.
    Off,
}

impl Mode {
    /// Parses an attribute value: one of the four names, optionally followed by a newline.
    pub(crate) fn parse(input: &[u8]) -> Result<Self> {
        match text::value(input)? {
            b"auto" => Ok(Self::Auto),
            b"always" => Ok(Self::Always),
            b"optimistic" => Ok(Self::Optimistic),
            b"off" => Ok(Self::Off),
            _ => Err(EINVAL),
        }
    }

    /// Every mode, in the order `modes` lists them.
    pub(crate) const ALL: [Mode; 4] = [Mode::Auto, Mode::Always, Mode::Optimistic, Mode::Off];

    /// Returns why the mode cannot run over a lower device whose integrity profile checks
    /// `lower`, or `None` if it can.
    ///
    /// `optimistic` bounces every write and relies on the lower device to report reads
    /// whose buffer changed in flight: the block layer must check the guard of each read
    /// after it completes, against PI the device stored with the data, which the block
    /// layer computed for each write. A stacked profile (dm, md) is refused: md handles a
    /// member's failed read itself, reading another mirror and rewriting the block, and
    /// fails the member after repeated errors, so buffers changed under zero-copy reads
    /// could degrade the array. A device that does not store and check PI itself, one that
    /// needs stable pages for another check (a data digest) and one that does not generate
    /// PI are refused as well, conservatively: bounced writes would not need it. The other
    /// modes run over anything.
    pub(crate) fn unsupported_by(self, lower: Integrity) -> Option<&'static str> {
        if self != Self::Optimistic {
            None
        } else if !lower.guard {
            Some("has no integrity profile with a guard (T10 PI or NVMe PI)")
        } else if lower.stacked {
            Some(
                "has a stacked integrity profile (dm or md), which handles failed reads itself \
                 (md rewrites the block, and fails the member after repeated errors)",
            )
        } else if !lower.device_checks {
            Some(
                "does not store and check protection information itself \
                 (integrity/device_is_integrity_capable is 0)",
            )
        } else if lower.other_checks {
            Some(
                "needs stable pages for a check of its own (a data digest), \
                 whose failures are not protection errors",
            )
        } else if !lower.generated {
            Some("does not generate protection information for writes (integrity/write_generate is 0)")
        } else if !lower.verified {
            Some("does not verify reads (integrity/read_verify is 0)")
        } else {
            None
        }
    }

    /// Returns `true` for the modes that may copy data through bounce pages: all but `off`.
    pub(crate) fn may_bounce(self) -> bool {
        self != Self::Off
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Always => "always",
            Self::Optimistic => "optimistic",
            Self::Off => "off",
        })
    }
}

#[kunit_tests(blkbounce_mode)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        assert_eq!(Mode::parse(b"auto\n"), Ok(Mode::Auto));
        assert_eq!(Mode::parse(b"always"), Ok(Mode::Always));
        assert_eq!(Mode::parse(b"optimistic\n"), Ok(Mode::Optimistic));
        assert_eq!(Mode::parse(b"off\n"), Ok(Mode::Off));
    }

    #[test]
    fn optimistic_needs_guard_checks() {
        let pi = Integrity {
            guard: true,
            generated: true,
            verified: true,
            device_checks: true,
            stacked: false,
            other_checks: false,
        };
        let none = Integrity {
            guard: false,
            generated: false,
            verified: false,
            device_checks: false,
            stacked: false,
            other_checks: false,
        };
        for lower in [pi, none] {
            for mode in [Mode::Auto, Mode::Always, Mode::Off] {
                assert_eq!(mode.unsupported_by(lower), None);
            }
        }
        assert_eq!(Mode::Optimistic.unsupported_by(pi), None);
        let refused = [
            none,
            Integrity {
                stacked: true,
                ..pi
            },
            Integrity {
                generated: false,
                ..pi
            },
            Integrity {
                verified: false,
                ..pi
            },
            Integrity {
                device_checks: false,
                ..pi
            },
            Integrity {
                other_checks: true,
                ..pi
            },
        ];
        for lower in refused {
            assert!(Mode::Optimistic.unsupported_by(lower).is_some());
        }
    }

    #[test]
    fn refuses_garbage() {
        assert_eq!(Mode::parse(b""), Err(EINVAL));
        assert_eq!(Mode::parse(b"Auto"), Err(EINVAL));
        assert_eq!(Mode::parse(b"off\n\n"), Err(EINVAL));
        assert_eq!(Mode::parse(b"offf"), Err(EINVAL));
        assert_eq!(Mode::parse(b" off"), Err(EINVAL));
    }
}
