// SPDX-License-Identifier: GPL-2.0

//! How an error from configfs reads: the errno's name beside its text.

use std::io;

/// Returns `text (ENAME)` for an OS error, as the kernel log and the README name it, or
/// the error's own text.
pub fn describe(err: &io::Error) -> String {
    let Some(code) = err.raw_os_error() else {
        return err.to_string();
    };
    let text = io::Error::from_raw_os_error(code).to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    match name(code) {
        Some(name) => format!("{text} ({name})"),
        None => text,
    }
}

/// The names of the errors configfs and the module return.
fn name(code: i32) -> Option<&'static str> {
    Some(match code {
        1 => "EPERM",
        2 => "ENOENT",
        6 => "ENXIO",
        12 => "ENOMEM",
        13 => "EACCES",
        15 => "ENOTBLK",
        16 => "EBUSY",
        17 => "EEXIST",
        19 => "ENODEV",
        22 => "EINVAL",
        36 => "ENAMETOOLONG",
        40 => "ELOOP",
        95 => "EOPNOTSUPP",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_errno() {
        let err = io::Error::from_raw_os_error(95);
        assert_eq!(describe(&err), "Operation not supported (EOPNOTSUPP)");
        let err = io::Error::from_raw_os_error(16);
        assert_eq!(describe(&err), "Device or resource busy (EBUSY)");
        let err = io::Error::other("no such device in the file");
        assert_eq!(describe(&err), "no such device in the file");
    }
}
