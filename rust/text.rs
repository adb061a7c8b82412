// SPDX-License-Identifier: GPL-2.0

//! Strict parsing of configfs attribute values.

use kernel::{
    prelude::*,
    str::{kstrtobool_bytes, parse_int::ParseInt, BStr, CString},
};

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

/// Parses an attribute value that is a number fitting in a `u64`, as the kernel crate's
/// integer parsing does: decimal, or hexadecimal after `0x`, octal after `0o` or `0`,
/// binary after `0b`; anything else is `EINVAL`.
pub(crate) fn u64_value(input: &[u8]) -> Result<u64> {
    u64::from_str(BStr::from_bytes(value(input)?))
}

/// Parses a boolean attribute value as `kstrtobool` does, as the kernel's own configfs
/// attributes do (nvmet's `enable`): its first character decides, `1`, `y`, `t`, `e` for
/// true and `0`, `n`, `f`, `d` for false, in either case, or `on` and `off`; others are
/// `EINVAL`.
pub(crate) fn bool_value(input: &[u8]) -> Result<bool> {
    kstrtobool_bytes(value(input)?)
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
    fn booleans_as_kstrtobool() {
        assert_eq!(bool_value(b"1\n"), Ok(true));
        assert_eq!(bool_value(b"0"), Ok(false));
        assert_eq!(bool_value(b"on"), Ok(true));
        assert_eq!(bool_value(b"N"), Ok(false));
        assert_eq!(bool_value(b"garbage"), Err(EINVAL));
        assert_eq!(bool_value(b"2"), Err(EINVAL));
        assert_eq!(bool_value(b"\n"), Err(EINVAL));
    }

    #[test]
    fn numbers_as_kstrtou64() {
        assert_eq!(u64_value(b"1048576\n"), Ok(1048576));
        assert_eq!(u64_value(b"0x100000"), Ok(1048576));
        assert_eq!(u64_value(b"18446744073709551615"), Ok(u64::MAX));
        assert_eq!(u64_value(b"18446744073709551616"), Err(EINVAL));
        assert_eq!(u64_value(b"-1"), Err(EINVAL));
        assert_eq!(u64_value(b"1M"), Err(EINVAL));
        assert_eq!(u64_value(b" 1"), Err(EINVAL));
    }
}
