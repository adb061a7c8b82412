// SPDX-License-Identifier: GPL-2.0

//! A wait queue (`struct wait_queue_head`) whose waiters sleep until a condition holds.
//!
//! `kernel::sync::CondVar` needs the waker to hold the waiter's lock, which a completion in
//! interrupt context cannot take. This is the C `wait_event()` / `wake_up_all()` pair
//! instead: the waiter queues itself before it tests the condition, so a waker that
//! changes the condition and then wakes the queue cannot be missed.

use super::helpers;
use core::mem::MaybeUninit;
use kernel::{bindings, prelude::*, static_lock_class, types::Opaque};

/// A wait queue head.
///
/// # Invariants
///
/// `head` was set up by `__init_waitqueue_head`; it is pinned, and has no waiter when it
/// is dropped, since every waiter borrows it.
#[pin_data]
pub(crate) struct WaitQueue {
    #[pin]
    head: Opaque<bindings::wait_queue_head>,
}

// SAFETY: A wait queue is used from any CPU; its own spinlock serialises it.
unsafe impl Send for WaitQueue {}
// SAFETY: See above.
unsafe impl Sync for WaitQueue {}

impl WaitQueue {
    /// Creates an empty wait queue.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `slot` is valid for writes; the name and the lock class key are static.
            head <- unsafe {
                Opaque::ffi_init(|slot: *mut bindings::wait_queue_head| {
                    bindings::__init_waitqueue_head(
                        slot,
                        c"blkbounce_wait".as_char_ptr(),
                        static_lock_class!().as_ptr(),
                    )
                })
            },
        })
    }

    /// Sleeps, uninterruptibly, until `cond` returns `true`. Must be called in process
    /// context, where sleeping is allowed.
    pub(crate) fn wait_until(&self, mut cond: impl FnMut() -> bool) {
        if cond() {
            return;
        }
        let mut entry = MaybeUninit::<bindings::wait_queue_entry>::uninit();
        let entry = entry.as_mut_ptr();
        // SAFETY: `entry` lives on this stack frame, does not move, and is taken off the
        // queue by `finish_wait` before the frame ends; the queue is initialised.
        unsafe {
            bindings::init_wait_entry(entry, 0);
            loop {
                bindings::prepare_to_wait_event(
                    self.head.get(),
                    entry,
                    bindings::TASK_UNINTERRUPTIBLE as i32,
                );
                if cond() {
                    break;
                }
                // Waiting for I/O to complete: counted as I/O wait, as mempool does.
                bindings::io_schedule();
            }
            bindings::finish_wait(self.head.get(), entry);
        }
    }

    /// Returns `true` if a task waits (`wq_has_sleeper`, which orders the caller's earlier
    /// accesses before the check).
    pub(crate) fn has_waiters(&self) -> bool {
        // SAFETY: The queue is initialised.
        unsafe { helpers::blkbounce_wq_has_sleeper(self.head.get()) }
    }

    /// Wakes every waiter, from any context. The caller must have changed the condition
    /// with a fully ordered atomic operation first (`wq_has_sleeper` pairs with it).
    pub(crate) fn wake_all(&self) {
        if self.has_waiters() {
            // SAFETY: The queue is initialised; waking takes its lock with interrupts off.
            unsafe {
                bindings::__wake_up(
                    self.head.get(),
                    bindings::TASK_NORMAL,
                    0,
                    core::ptr::null_mut(),
                );
            }
        }
    }
}
