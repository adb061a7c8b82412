// SPDX-License-Identifier: GPL-2.0

//! Strict parsing of configfs attribute values.

#![deny(unsafe_code)]

use kernel::{prelude::*, str::CString};

/// The longest value any attribute accepts, in bytes (a block device path).
pub(crate) const MAX_VALUE_LEN: usize = 255;

/// Returns the value written to an attribute, without the one trailing newline `echo`
/// adds. Empty values, embedded NUL bytes and values over [`MAX_VALUE_LEN`] are refused
/// with `EINVAL`.
pub(crate) fn value(input: &[u8]) -> Result<&[u8]> {
    let value = input.strip_suffix(b"\n").unwrap_or(input);
    if value.is_empty() || value.len() > MAX_VALUE_LEN || value.contains(&0) {
        return Err(EINVAL);
    }
    Ok(value)
}

/// Copies a value returned by [`value`] (which has no NUL byte) into a C string.
pub(crate) fn to_cstring(value: &[u8]) -> Result<CString> {
    let mut bytes = KVec::with_capacity(value.len() + 1, GFP_KERNEL)?;
    bytes.extend_from_slice(value, GFP_KERNEL)?;
    bytes.push(0, GFP_KERNEL)?;
    let cstr = CStr::from_bytes_with_nul(&bytes).map_err(|_| EINVAL)?;
    Ok(CString::try_from(cstr)?)
}

/// Parses a decimal attribute value that fits in a `u64`; anything else is `EINVAL`.
pub(crate) fn u64_value(input: &[u8]) -> Result<u64> {
    let value = value(input)?;
    if value.len() > 20 {
        return Err(EINVAL);
    }
    value.iter().try_fold(0u64, |n, &c| {
        let digit = c.checked_sub(b'0').filter(|d| *d <= 9).ok_or(EINVAL)?;
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(digit)))
            .ok_or(EINVAL)
    })
}

/// Parses a boolean attribute value: exactly `0` or `1`.
pub(crate) fn bool_value(input: &[u8]) -> Result<bool> {
    match value(input)? {
        b"0" => Ok(false),
        b"1" => Ok(true),
        _ => Err(EINVAL),
    }
}

#[kunit_tests(blkbounce_text)]
mod tests {
    use super::*;

    #[test]
    fn strips_one_newline() {
        assert_eq!(value(b"/dev/nvme0n1\n"), Ok(&b"/dev/nvme0n1"[..]));
        assert_eq!(value(b"x"), Ok(&b"x"[..]));
        assert_eq!(value(b"x\n\n"), Ok(&b"x\n"[..]));
    }

    #[test]
    fn refuses_empty_long_and_nul() {
        assert_eq!(value(b""), Err(EINVAL));
        assert_eq!(value(b"\n"), Err(EINVAL));
        assert_eq!(value(b"a\0b"), Err(EINVAL));
        assert_eq!(value(&[b'a'; MAX_VALUE_LEN + 1]), Err(EINVAL));
        assert!(value(&[b'a'; MAX_VALUE_LEN]).is_ok());
    }

    #[test]
    fn booleans_are_strict() {
        assert_eq!(bool_value(b"1\n"), Ok(true));
        assert_eq!(bool_value(b"0"), Ok(false));
        assert_eq!(bool_value(b"1garbage"), Err(EINVAL));
        assert_eq!(bool_value(b"yes"), Err(EINVAL));
        assert_eq!(bool_value(b"2"), Err(EINVAL));
    }

    #[test]
    fn numbers_are_strict() {
        assert_eq!(u64_value(b"1048576\n"), Ok(1048576));
        assert_eq!(u64_value(b"18446744073709551615"), Ok(u64::MAX));
        assert_eq!(u64_value(b"18446744073709551616"), Err(EINVAL));
        assert_eq!(u64_value(b"-1"), Err(EINVAL));
        assert_eq!(u64_value(b"1M"), Err(EINVAL));
        assert_eq!(u64_value(b" 1"), Err(EINVAL));
    }
}
