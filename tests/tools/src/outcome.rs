// SPDX-License-Identifier: GPL-2.0

//! Tallies of I/O results by errno, as the race tools print them.

use std::io;

/// How many I/Os succeeded, and how many failed with `EILSEQ` (a protection information
/// check), `EIO` or another error.
#[derive(Default, Clone, Copy)]
pub struct Counts {
    pub ok: u64,
    pub eilseq: u64,
    pub eio: u64,
    pub other: u64,
}

impl Counts {
    /// Counts one result.
    pub fn record(&mut self, result: io::Result<()>) {
        match result {
            Ok(()) => self.ok += 1,
            Err(e) if e.raw_os_error() == Some(libc::EILSEQ) => self.eilseq += 1,
            Err(e) if e.raw_os_error() == Some(libc::EIO) => self.eio += 1,
            Err(_) => self.other += 1,
        }
    }

    /// Adds the tallies of `other`.
    pub fn add(&mut self, other: &Counts) {
        self.ok += other.ok;
        self.eilseq += other.eilseq;
        self.eio += other.eio;
        self.other += other.other;
    }

    /// The failed I/Os, whatever the errno.
    pub fn failed(&self) -> u64 {
        self.eilseq + self.eio + self.other
    }
}

/// The exit status of tool `name` whose run returned `result`: 0 for `Ok(true)`, 1 for
/// `Ok(false)` (a check failed), 2 for `Err` (it could not run), with the error printed.
pub fn exit_code(name: &str, result: Result<bool, String>) -> std::process::ExitCode {
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_by_errno() {
        let mut counts = Counts::default();
        counts.record(Ok(()));
        counts.record(Err(io::Error::from_raw_os_error(libc::EILSEQ)));
        counts.record(Err(io::Error::from_raw_os_error(libc::EIO)));
        counts.record(Err(io::Error::from_raw_os_error(libc::ENOSPC)));
        let mut sum = counts;
        sum.add(&counts);
        assert_eq!((counts.ok, counts.failed()), (1, 3));
        assert_eq!((sum.ok, sum.eilseq, sum.eio, sum.other), (2, 2, 2, 2));
    }
}
