// SPDX-License-Identifier: GPL-2.0

//! Read copy-backs deferred to task context, in batches per CPU: a bounce bio that
//! completed in atomic context joins its CPU's batch, and one work item ends the whole
//! batch, as the block layer's `bio_complete_in_task` does. The queue is the module's own,
//! so that module removal waits for the module code its work runs: a module cannot flush
//! the block layer's queue, whose worker would return into module code after the work
//! ended the last bio of the last disk.

use super::{helpers, percpu::alloc_each, workqueue::Workqueue};
use core::{ffi::c_void, mem::ManuallyDrop, ptr::NonNull};
use kernel::{
    bindings,
    prelude::*,
    static_lock_class,
    sync::atomic::{Acquire, Atomic, Release},
};

/// The module's batches, or 0: the address of the [`CopyBatches`] in use.
static COPY_BATCHES: Atomic<usize> = Atomic::new(0);

/// One CPU's batch: completed bounce bios linked by `bi_next`, and the work that ends them.
///
/// A bio is added to the batch of the CPU that completed it; the work takes the batch from
/// whatever CPU runs it (the workqueue runs the work of a CPU gone offline elsewhere).
///
/// # Invariants
///
/// Under `lock`: `head` is null exactly when `tail` is; the list from `head` to `tail`
/// holds completed bounce bios that the batch owns, each with a `bi_end_io` that takes
/// it back; the work is queued whenever the list is not empty and no work of it runs.
#[repr(C)]
struct Batch {
    /// First: `blkbounce_lock_this_cpu` locks the object it finds.
    lock: bindings::spinlock_t,
    head: *mut bindings::bio,
    tail: *mut bindings::bio,
    work: bindings::work_struct,
}

/// The module's copy queue and its batches, one per possible CPU; registered while it
/// lives. A module that bounces reads makes one before its first disk, and drops it after
/// its last: the drop waits for the work still running.
///
/// # Invariants
///
/// - `batches` is a per-CPU allocation of a [`Batch`] for every possible CPU, each with
///   its lock and work item initialised and its list empty when made; freed on drop,
///   after the queue is destroyed.
/// - While `self` lives, `COPY_BATCHES` holds its address (it is boxed), and no other.
pub(crate) struct CopyBatches {
    /// Destroyed in `drop`, before the batches are freed.
    queue: ManuallyDrop<Workqueue>,
    batches: NonNull<c_void>,
}

// SAFETY: The batches are used from any CPU under their locks.
unsafe impl Send for CopyBatches {}
// SAFETY: See above.
unsafe impl Sync for CopyBatches {}

impl CopyBatches {
    /// Creates the queue and the batches and registers them.
    pub(crate) fn register() -> Result<KBox<Self>> {
        let queue = Workqueue::new(c"blkbounce", c"copy")?;
        // SAFETY: A zeroed batch is an empty list; its lock and work item are initialised
        // here.
        let batches = unsafe {
            alloc_each::<Batch>(|batch| {
                helpers::blkbounce_spin_lock_init(&raw mut (*batch).lock);
                bindings::init_work_with_key(
                    &raw mut (*batch).work,
                    Some(copy_batch_fn),
                    false,
                    c"blkbounce_copy_batch".as_char_ptr(),
                    static_lock_class!().as_ptr(),
                );
            })
        }?;
        // On failure, the value's drop destroys the queue and frees the batches.
        let this = KBox::new(
            Self {
                queue: ManuallyDrop::new(queue),
                batches,
            },
            GFP_KERNEL,
        )?;
        let addr = core::ptr::from_ref::<Self>(&this).addr();
        // INVARIANT: Registered, unless another is (then dropped unregistered).
        if COPY_BATCHES.cmpxchg(0, addr, Release).is_err() {
            return Err(EBUSY);
        }
        Ok(this)
    }

    /// Adds the completed bounce bio `bio` to the local CPU's batch, whose work calls its
    /// `bi_end_io` again, in task context. Returns `false`, with nothing done, if no
    /// batches are registered.
    ///
    /// # Safety
    ///
    /// `bio` must be a completed bio that the caller owns and gives up, with a `bi_end_io`
    /// that takes it back, and whose device keeps the module's batches registered until
    /// that function has run (the disk of a bio in flight exists, and the module's batches
    /// outlive its disks).
    pub(super) unsafe fn add(bio: *mut bindings::bio) -> bool {
        let this = COPY_BATCHES.load(Acquire) as *const Self;
        if this.is_null() {
            return false;
        }
        // SAFETY: By the safety requirements the batches are registered, so `this` is live,
        // and its batches are a per-CPU allocation whose locks may be taken from any CPU;
        // `bio` is owned by the caller and given up here. If the work is pending already,
        // queueing it again does nothing, and it will find the bio.
        unsafe {
            let this = &*this;
            // `Batch` begins with its lock.
            let mut flags = 0;
            let batch =
                helpers::blkbounce_lock_this_cpu(this.batches.as_ptr(), &mut flags).cast::<Batch>();
            (*bio).bi_next = core::ptr::null_mut();
            let tail = (*batch).tail;
            if tail.is_null() {
                (*batch).head = bio;
            } else {
                (*tail).bi_next = bio;
            }
            (*batch).tail = bio;
            // INVARIANT: The list was empty: the work is queued.
            if tail.is_null() {
                Workqueue::queue_raw(this.queue.as_raw(), &raw mut (*batch).work);
            }
            helpers::blkbounce_unlock_this_cpu(batch.cast(), flags);
        }
        true
    }
}

impl Drop for CopyBatches {
    fn drop(&mut self) {
        let _ = COPY_BATCHES.cmpxchg(core::ptr::from_ref::<Self>(self).addr(), 0, Release);
        // SAFETY: The queue is destroyed once, here; destroying it waits for its work, which
        // empties every batch and returns from the module's code. No bio is added any more:
        // no disk is left. Then the batches go.
        unsafe {
            ManuallyDrop::drop(&mut self.queue);
            bindings::free_percpu(self.batches.as_ptr());
        }
    }
}

/// Ends the bounce bios of a batch, until it stays empty.
///
/// # Safety
///
/// `work` is the work item of a [`Batch`] of the registered [`CopyBatches`].
unsafe extern "C" fn copy_batch_fn(work: *mut bindings::work_struct) {
    // SAFETY: The work item is a field of a live `Batch`, whose lock may be taken from any
    // CPU; each bio in its list was given up by `add` with a `bi_end_io` that takes it back.
    unsafe {
        let batch = kernel::container_of!(work, Batch, work);
        loop {
            let flags = helpers::blkbounce_spin_lock_irqsave(&raw mut (*batch).lock);
            let mut bio = (*batch).head;
            (*batch).head = core::ptr::null_mut();
            (*batch).tail = core::ptr::null_mut();
            helpers::blkbounce_spin_unlock_irqrestore(&raw mut (*batch).lock, flags);
            if bio.is_null() {
                break;
            }
            while let Some(this) = NonNull::new(bio) {
                let this = this.as_ptr();
                bio = (*this).bi_next;
                (*this).bi_next = core::ptr::null_mut();
                if let Some(end_io) = (*this).bi_end_io {
                    end_io(this);
                }
                // A copy-back is up to 1 MiB, and interrupts may keep the batch full.
                helpers::blkbounce_cond_resched();
            }
        }
    }
}
