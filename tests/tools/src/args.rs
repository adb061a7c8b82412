// SPDX-License-Identifier: GPL-2.0

//! A small `--key value` argument parser with size suffixes.

use std::collections::HashMap;

/// Parsed `--key value` pairs and bare `--flag`s.
pub struct Args {
    values: HashMap<String, String>,
}

impl Args {
    /// Parses the process arguments; `flags` lists the options that take no value.
    pub fn parse(flags: &[&str]) -> Result<Self, String> {
        Self::parse_from(std::env::args().skip(1), flags)
    }

    /// Parses `args` (without the program name).
    pub fn parse_from(
        args: impl IntoIterator<Item = String>,
        flags: &[&str],
    ) -> Result<Self, String> {
        let mut values = HashMap::new();
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            let key = arg
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument '{arg}'"))?;
            let value = if flags.contains(&key) {
                String::from("1")
            } else {
                it.next().ok_or_else(|| format!("--{key} needs a value"))?
            };
            values.insert(key.to_string(), value);
        }
        Ok(Self { values })
    }

    /// Returns the value of `--key`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Returns the value of `--key`, which must be given.
    pub fn required(&self, key: &str) -> Result<&str, String> {
        self.get(key).ok_or_else(|| format!("--{key} is required"))
    }

    /// Returns `true` if the flag `--key` was given.
    pub fn flag(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    /// Returns `--key` parsed as a number (integer or decimal, as `T` is), or `default`.
    pub fn number<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        self.get(key).map_or(Ok(default), |text| {
            text.parse()
                .map_err(|_| format!("--{key} takes a number, not '{text}'"))
        })
    }

    /// Returns `--key` as a size (suffixes k, m, g: powers of 1024), or `default`.
    pub fn size(&self, key: &str, default: u64) -> Result<u64, String> {
        self.get(key).map_or(Ok(default), parse_size)
    }
}

/// Parses `4096`, `4k`, `64K`, `1m`, `2G`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (digits, shift) = match text.chars().last().map(|c| c.to_ascii_lowercase()) {
        Some('k') => (&text[..text.len() - 1], 10),
        Some('m') => (&text[..text.len() - 1], 20),
        Some('g') => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a size"))?;
    value
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("'{text}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert!(parse_size("x").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn keys_and_flags() {
        let args = Args::parse_from(
            ["--dev", "/dev/x", "--direct", "--size", "8k"].map(String::from),
            &["direct"],
        )
        .unwrap();
        assert_eq!(args.get("dev"), Some("/dev/x"));
        assert!(args.flag("direct"));
        assert_eq!(args.size("size", 0), Ok(8192));
        assert_eq!(args.size("other", 7), Ok(7));
        assert_eq!(args.number("other", 1.5), Ok(1.5));
        assert!(args.number::<u64>("dev", 0).is_err());
        assert!(Args::parse_from(["stray".to_string()], &[]).is_err());
        assert!(Args::parse_from(["--dev".to_string()], &[]).is_err());
    }
}
