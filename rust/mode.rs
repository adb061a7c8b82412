// SPDX-License-Identifier: GPL-2.0

//! The bounce policy of a device: `auto`, `always` or `off`.

#![deny(unsafe_code)]

use crate::text;
use kernel::{fmt, prelude::*};

/// Which bios a device copies into pages of its own.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mode {
    /// Bounce data bios with a page that may change in flight (see `policy.rs`).
    Auto,
    /// Bounce every data bio.
    Always,
    /// Pass everything through unchanged.
    Off,
}

impl Mode {
    /// Parses an attribute value: one of the three names, optionally followed by a newline.
    pub(crate) fn parse(input: &[u8]) -> Result<Self> {
        match text::value(input)? {
            b"auto" => Ok(Self::Auto),
            b"always" => Ok(Self::Always),
            b"off" => Ok(Self::Off),
            _ => Err(EINVAL),
        }
    }

    /// Every mode, in the order `modes` lists them.
    pub(crate) const ALL: [Mode; 3] = [Mode::Auto, Mode::Always, Mode::Off];
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Always => "always",
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
        assert_eq!(Mode::parse(b"off\n"), Ok(Mode::Off));
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
