// SPDX-License-Identifier: GPL-2.0

//! Termination signals held back while a device is made or removed: a `restore` that
//! systemd stops at its start timeout, or a ^C, then ends the process after the step has
//! finished, or been undone, and been reported; never between its configfs writes.

use std::marker::PhantomData;

/// SIGINT, SIGTERM and SIGHUP are blocked in this thread while the value lives; a signal
/// that arrives meanwhile is delivered when it is dropped.
///
/// # Invariants
///
/// `old` is this thread's signal mask from before the block, as `pthread_sigmask` filled
/// it in; the value stays on the thread that made it (it is not `Send`).
pub struct SignalsDeferred {
    old: libc::sigset_t,
    _thread: PhantomData<*const ()>,
}

/// The signals held back.
fn termination_signals() -> libc::sigset_t {
    // SAFETY: `sigset_t` is plain data; all-zero is a valid value, which `sigemptyset`
    // then initialises.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable `sigset_t` and the signal numbers are valid, so
    // these calls cannot fail.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
    }
    set
}

impl SignalsDeferred {
    pub fn new() -> Self {
        let set = termination_signals();
        // SAFETY: as in `termination_signals`.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` and `old` are valid `sigset_t`s and SIG_BLOCK a valid operation,
        // so the call cannot fail.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
        Self {
            old,
            _thread: PhantomData,
        }
    }
}

impl Drop for SignalsDeferred {
    fn drop(&mut self) {
        // SAFETY: `self.old` is the mask `pthread_sigmask` returned, on this thread (type
        // invariant).
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

#[cfg(test)]
mod tests {
    use super::{termination_signals, SignalsDeferred};

    /// Whether SIGTERM is blocked in this thread.
    fn sigterm_blocked() -> bool {
        // SAFETY: `mask` is a valid, writable `sigset_t`; a null set only reads the mask.
        unsafe {
            let mut mask: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask);
            libc::sigismember(&mask, libc::SIGTERM) == 1
        }
    }

    /// SIGTERM sent to the thread while deferred stays pending; it is taken with
    /// `sigtimedwait` before the drop, so that it does not end the test, and the drop
    /// restores the mask.
    #[test]
    fn sigterm_waits_for_the_drop() {
        assert!(!sigterm_blocked());
        let deferred = SignalsDeferred::new();
        assert!(sigterm_blocked());
        // SAFETY: SIGTERM is blocked in this thread, so sending it to the thread only
        // marks it pending.
        unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGTERM) };
        let set = termination_signals();
        let now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `set` is a valid `sigset_t` and `now` a valid timeout; a null info is
        // allowed.
        let taken = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &now) };
        assert_eq!(taken, libc::SIGTERM);
        drop(deferred);
        assert!(!sigterm_blocked());
    }
}
