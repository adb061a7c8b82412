// SPDX-License-Identifier: GPL-2.0

//! An owned workqueue (`alloc_workqueue` / `destroy_workqueue`).
//!
//! `kernel::workqueue` has no owned queue; I/O completion work needs `WQ_MEM_RECLAIM`,
//! which the system queues lack.

use core::ptr::NonNull;
use kernel::{bindings, prelude::*, sync::LockClassKey};

/// A workqueue with a rescuer thread (`WQ_MEM_RECLAIM`), so its work runs even when no new
/// worker can be created under memory pressure.
///
/// # Invariants
///
/// `wq` came from `alloc_workqueue` and is destroyed on drop, which waits for its work.
pub(crate) struct Workqueue {
    wq: NonNull<bindings::workqueue_struct>,
}

// SAFETY: Work may be queued from any context and thread.
unsafe impl Send for Workqueue {}
// SAFETY: See above.
unsafe impl Sync for Workqueue {}

impl Workqueue {
    /// Creates a per-CPU, high priority, memory-reclaim-safe queue named `prefix/name`.
    pub(crate) fn new(prefix: &CStr, name: &CStr) -> Result<Self> {
        let flags = bindings::wq_flags_WQ_PERCPU
            | bindings::wq_flags_WQ_MEM_RECLAIM
            | bindings::wq_flags_WQ_HIGHPRI;
        // SAFETY: The format takes two strings, both NUL-terminated.
        let wq = unsafe {
            bindings::alloc_workqueue_noprof(
                c"%s/%s".as_char_ptr(),
                flags,
                0,
                prefix.as_char_ptr(),
                name.as_char_ptr(),
            )
        };
        // INVARIANT: A non-null queue was just allocated.
        Ok(Self {
            wq: NonNull::new(wq).ok_or(ENOMEM)?,
        })
    }

    /// Returns the raw queue, for [`Workqueue::queue_raw`].
    pub(super) fn as_raw(&self) -> *mut bindings::workqueue_struct {
        self.wq.as_ptr()
    }

    /// Queues `work` on `wq` (on the current CPU where possible).
    ///
    /// Takes the queue by address, not by reference: the work may run, and its owner drop
    /// the queue, before this returns (see `clone.rs`'s retry). A work item that is
    /// queued already stays queued once.
    ///
    /// # Safety
    ///
    /// `wq` must come from [`Workqueue::as_raw`] on a queue that is alive when the call
    /// starts. `work` must be an initialised work item that stays valid until its function
    /// has run.
    pub(super) unsafe fn queue_raw(
        wq: *mut bindings::workqueue_struct,
        work: *mut bindings::work_struct,
    ) {
        // SAFETY: The caller vouches for both; `queue_work_on` holds the RCU read lock
        // while it uses the queue, and a destroyed queue is freed after a grace period.
        unsafe {
            bindings::queue_work_on(bindings::wq_misc_consts_WORK_CPU_UNBOUND as i32, wq, work)
        };
    }
}

/// Initialises `work` to run `func`, then queues it on `wq` as [`Workqueue::queue_raw`]
/// does. `name` and `key` give lockdep the kind of work: one key per kind.
///
/// # Safety
///
/// As for [`Workqueue::queue_raw`], and `work` must not be pending. Its memory may be that
/// of a work item whose function still runs, having freed it, provided that function
/// touches the item no more: the new item may then run beside the old function's tail
/// (`INIT_WORK` clears the item's pool, so only a worker of the same pool serialises
/// them).
pub(super) unsafe fn init_and_queue_raw(
    wq: *mut bindings::workqueue_struct,
    work: *mut bindings::work_struct,
    func: unsafe extern "C" fn(*mut bindings::work_struct),
    name: &'static CStr,
    key: Pin<&'static LockClassKey>,
) {
    // SAFETY: `work` is valid and not pending, so it may be initialised; the caller
    // vouches for the rest.
    unsafe {
        bindings::init_work_with_key(work, Some(func), false, name.as_char_ptr(), key.as_ptr());
        Workqueue::queue_raw(wq, work);
    }
}

impl Drop for Workqueue {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the queue is alive; destroying it drains it first.
        unsafe { bindings::destroy_workqueue(self.wq.as_ptr()) };
    }
}
