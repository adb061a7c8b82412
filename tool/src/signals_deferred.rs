// SPDX-License-Identifier: GPL-2.0

//! Termination signals held back while a device is made: a `restore` that systemd stops
//! at its start timeout, or a ^C, then ends the process after `create` has finished or
//! undone its steps, never between them.

/// SIGINT, SIGTERM and SIGHUP are blocked in this thread while the value lives; a signal
/// that arrives meanwhile is delivered when it is dropped.
///
/// # Invariants
///
/// `old` is the thread's signal mask from before the block, as `pthread_sigmask` filled
/// it in.
pub struct SignalsDeferred {
    old: libc::sigset_t,
}

impl SignalsDeferred {
    pub fn new() -> Self {
        // SAFETY: `sigset_t` is plain data; all-zero is a valid value, which
        // `sigemptyset` then initialises.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` and `old` are valid, writable `sigset_t`s; the signal numbers are
        // valid. These calls cannot fail with valid arguments.
        unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGHUP);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        }
        Self { old }
    }
}

impl Drop for SignalsDeferred {
    fn drop(&mut self) {
        // SAFETY: `self.old` is the mask `pthread_sigmask` returned (type invariant).
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SignalsDeferred;

    /// SIGTERM raised while deferred is pending, not delivered; it is ignored here so that
    /// its delivery at the drop does not end the test.
    #[test]
    fn sigterm_waits_for_the_drop() {
        // SAFETY: SIG_IGN is a valid disposition for SIGTERM; the test binary does not
        // rely on SIGTERM's default action.
        unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
        let deferred = SignalsDeferred::new();
        // SAFETY: raising a signal that is blocked only marks it pending.
        unsafe { libc::raise(libc::SIGTERM) };
        // SAFETY: `pending` is a valid, writable `sigset_t`.
        let pending = unsafe {
            let mut pending: libc::sigset_t = std::mem::zeroed();
            libc::sigpending(&mut pending);
            libc::sigismember(&pending, libc::SIGTERM)
        };
        assert_eq!(pending, 1);
        drop(deferred);
    }
}
