// SPDX-License-Identifier: GPL-2.0

//! Per-CPU stacks of free bounce pages: a page a bounce bio gives back is kept on the CPU
//! that freed it, and the next bounce on that CPU takes it without the page allocator.
//!
//! Each stack has a spinlock, taken with interrupts off (bounce bios complete in interrupt
//! context too). Only its CPU takes it on the I/O path, so it is never contended there; a
//! shrinker takes it from any CPU to give the pages back under memory pressure, including
//! those of CPUs gone offline. The stacks are emptied when the device goes away.

use super::helpers;
use core::{ffi::c_void, marker::PhantomData, ptr::NonNull};
use kernel::{
    bindings,
    page::PAGE_SIZE,
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

/// How many pages each CPU keeps: 64 KiB, a queue depth of 16 bounced 4 KiB I/Os that
/// complete on the CPU that submits them; at least one page.
pub(crate) const DEPTH: usize = if PAGE_SIZE >= 65536 {
    1
} else {
    65536 / PAGE_SIZE
};

/// One CPU's free pages.
#[repr(C)]
struct Stack {
    lock: bindings::spinlock_t,
    /// Written under `lock`; read without it for the count.
    len: Atomic<usize>,
    pages: [*mut bindings::page; DEPTH],
}

/// One [`Stack`] per possible CPU, and the shrinker that empties them.
///
/// # Invariants
///
/// - `stacks` is a per-CPU allocation of a `Stack` for each possible CPU, zeroed and its
///   locks initialised when it was made, and freed on drop.
/// - The first `len` entries of each stack are order-0 pages that nobody else owns; they
///   and `len` are written only under the stack's lock.
/// - `shrinker`, if any, is registered with `stacks` as its private data, and freed on
///   drop before the stacks.
pub(crate) struct PerCpuPages {
    stacks: NonNull<c_void>,
    shrinker: Option<NonNull<bindings::shrinker>>,
}

// SAFETY: The stacks are used from any CPU under their locks.
unsafe impl Send for PerCpuPages {}
// SAFETY: See above.
unsafe impl Sync for PerCpuPages {}

/// A stack, locked with interrupts off until dropped.
///
/// # Invariants
///
/// `stack` is a stack of [`PerCpuPages`] that live for `'a`, whose lock this holds, taken
/// with `flags`.
struct Locked<'a> {
    stack: *mut Stack,
    flags: usize,
    _pages: PhantomData<&'a PerCpuPages>,
}

impl Locked<'_> {
    /// Locks `stack`.
    ///
    /// # Safety
    ///
    /// `stack` must be a stack of [`PerCpuPages`] that live for as long as the guard.
    unsafe fn new(stack: *mut Stack) -> Self {
        // SAFETY: By the safety requirements the lock is initialised.
        let flags = unsafe { helpers::blkbounce_spin_lock_irqsave(&raw mut (*stack).lock) };
        // INVARIANT: The lock is held.
        Self {
            stack,
            flags,
            _pages: PhantomData,
        }
    }

    /// Returns how many pages the stack holds.
    fn len(&self) -> usize {
        // SAFETY: By the type invariant the stack is live.
        unsafe { (*self.stack).len.load(Relaxed) }.min(DEPTH)
    }

    /// Takes the top page, which the caller then owns.
    fn pop(&mut self) -> Option<NonNull<bindings::page>> {
        let len = self.len().checked_sub(1)?;
        // SAFETY: The lock is held; entry `len` holds a page that nobody else owns.
        unsafe {
            (*self.stack).len.store(len, Relaxed);
            NonNull::new((*self.stack).pages[len])
        }
    }

    /// Keeps `page`, or gives it back if the stack is full.
    ///
    /// # Safety
    ///
    /// `page` must be an order-0 page, owned by the caller and no longer used.
    unsafe fn push(
        &mut self,
        page: NonNull<bindings::page>,
    ) -> Result<(), NonNull<bindings::page>> {
        let len = self.len();
        if len == DEPTH {
            return Err(page);
        }
        // INVARIANT: The caller gave up the page; the lock is held.
        // SAFETY: The lock is held and `len < DEPTH`.
        unsafe {
            (*self.stack).pages[len] = page.as_ptr();
            (*self.stack).len.store(len + 1, Relaxed);
        }
        Ok(())
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the lock is held, taken with `flags`.
        unsafe {
            helpers::blkbounce_spin_unlock_irqrestore(&raw mut (*self.stack).lock, self.flags)
        };
    }
}

impl PerCpuPages {
    /// Allocates empty stacks for every possible CPU and registers their shrinker.
    pub(crate) fn new() -> Result<Self> {
        let mut pages = Self::without_shrinker()?;
        // SAFETY: The name is a valid C string.
        let shrinker =
            unsafe { helpers::blkbounce_shrinker_alloc(c"blkbounce-pages".as_char_ptr()) };
        let shrinker = NonNull::new(shrinker).ok_or(ENOMEM)?;
        // SAFETY: The shrinker is new and not registered yet; the stacks outlive it
        // (`Drop` frees it first).
        unsafe {
            let s = shrinker.as_ptr();
            (*s).count_objects = Some(shrinker_count);
            (*s).scan_objects = Some(shrinker_scan);
            (*s).private_data = pages.stacks.as_ptr();
            bindings::shrinker_register(s);
        }
        // INVARIANT: The shrinker is registered with the stacks.
        pages.shrinker = Some(shrinker);
        Ok(pages)
    }

    /// Allocates empty stacks for every possible CPU, which nothing but their user drains.
    fn without_shrinker() -> Result<Self> {
        // SAFETY: Allocating per-CPU memory has no preconditions; it is zeroed.
        let stacks = unsafe {
            helpers::blkbounce_alloc_percpu(
                core::mem::size_of::<Stack>(),
                core::mem::align_of::<Stack>(),
            )
        };
        let stacks = NonNull::new(stacks).ok_or(ENOMEM)?;
        for cpu in possible_cpus() {
            // SAFETY: `cpu` is a possible CPU; its stack is new and unused.
            unsafe {
                let stack = helpers::blkbounce_per_cpu_ptr(stacks.as_ptr(), cpu).cast::<Stack>();
                helpers::blkbounce_spin_lock_init(&raw mut (*stack).lock);
            }
        }
        // INVARIANT: The stacks are empty with their locks initialised.
        Ok(Self {
            stacks,
            shrinker: None,
        })
    }

    /// Locks the stack of the CPU the caller runs on (or ran on: the lock makes a
    /// migration harmless).
    fn local(&self) -> Locked<'_> {
        // SAFETY: The stacks are a per-CPU allocation.
        let stack = unsafe { helpers::blkbounce_raw_cpu_ptr(self.stacks.as_ptr()) };
        // SAFETY: The stack is one of ours, and the guard does not outlive `self`.
        unsafe { Locked::new(stack.cast()) }
    }

    /// Takes a page from the local CPU's stack; the caller owns it.
    pub(crate) fn pop(&self) -> Option<NonNull<bindings::page>> {
        self.local().pop()
    }

    /// Keeps `page` on the local CPU's stack if nobody else holds a reference to it and it
    /// belongs to the local memory node; else, or if the stack is full, gives it back.
    ///
    /// # Safety
    ///
    /// `page` must be an order-0 page, owned by the caller and no longer used by it.
    pub(crate) unsafe fn push(
        &self,
        page: NonNull<bindings::page>,
    ) -> Result<(), NonNull<bindings::page>> {
        // SAFETY: The caller owns the page.
        if !unsafe { helpers::blkbounce_page_recyclable(page.as_ptr()) } {
            return Err(page);
        }
        // SAFETY: By the safety requirements.
        unsafe { self.local().push(page) }
    }

    /// Returns the pages kept on all CPUs now; a racy sum, for statistics.
    pub(crate) fn count(&self) -> usize {
        count(self.stacks)
    }
}

/// Returns the pages kept in `stacks`, read without their locks.
fn count(stacks: NonNull<c_void>) -> usize {
    possible_cpus()
        .map(|cpu| {
            // SAFETY: `stacks` is a live per-CPU allocation of stacks and `cpu` a possible
            // CPU; `len` is atomic.
            unsafe {
                let stack = helpers::blkbounce_per_cpu_ptr(stacks.as_ptr(), cpu).cast::<Stack>();
                (*stack).len.load(Relaxed).min(DEPTH)
            }
        })
        .sum()
}

/// Frees up to `max` pages of `stacks`, from every possible CPU; returns how many.
///
/// # Safety
///
/// `stacks` must be the stacks of a live [`PerCpuPages`], or of one being dropped that
/// nobody else uses.
unsafe fn drain(stacks: NonNull<c_void>, max: usize) -> usize {
    let mut freed = 0;
    for cpu in possible_cpus() {
        if freed >= max {
            break;
        }
        // SAFETY: `cpu` is a possible CPU; by the safety requirements its stack is live.
        let mut locked =
            unsafe { Locked::new(helpers::blkbounce_per_cpu_ptr(stacks.as_ptr(), cpu).cast()) };
        while freed < max {
            let Some(page) = locked.pop() else { break };
            // SAFETY: The page was kept, so it is ours and unused.
            unsafe { bindings::__free_pages(page.as_ptr(), 0) };
            freed += 1;
        }
    }
    freed
}

/// The shrinker's count: the pages kept, or `SHRINK_EMPTY`.
///
/// # Safety
///
/// Called by the shrinker core with a shrinker registered by [`PerCpuPages::new`].
unsafe extern "C" fn shrinker_count(
    shrinker: *mut bindings::shrinker,
    _sc: *mut bindings::shrink_control,
) -> kernel::ffi::c_ulong {
    // SAFETY: The private data is the stacks, live while the shrinker is registered.
    let stacks = unsafe { NonNull::new_unchecked((*shrinker).private_data) };
    match count(stacks) {
        0 => !1, // SHRINK_EMPTY
        n => n as kernel::ffi::c_ulong,
    }
}

/// The shrinker's scan: frees up to `nr_to_scan` kept pages.
///
/// # Safety
///
/// Called by the shrinker core with a shrinker registered by [`PerCpuPages::new`].
unsafe extern "C" fn shrinker_scan(
    shrinker: *mut bindings::shrinker,
    sc: *mut bindings::shrink_control,
) -> kernel::ffi::c_ulong {
    // SAFETY: The private data is the stacks, live while the shrinker is registered; `sc`
    // is valid for the call.
    unsafe {
        let stacks = NonNull::new_unchecked((*shrinker).private_data);
        drain(stacks, (*sc).nr_to_scan) as kernel::ffi::c_ulong
    }
}

impl Drop for PerCpuPages {
    fn drop(&mut self) {
        if let Some(shrinker) = self.shrinker {
            // SAFETY: By the type invariant the shrinker is registered; `shrinker_free`
            // waits for its callbacks to end.
            unsafe { bindings::shrinker_free(shrinker.as_ptr()) };
        }
        // SAFETY: Nobody else uses the stacks any more.
        unsafe { drain(self.stacks, usize::MAX) };
        // SAFETY: By the type invariant the stacks are a per-CPU allocation, freed once.
        unsafe { bindings::free_percpu(self.stacks.as_ptr()) };
    }
}

/// The possible CPUs, in order.
fn possible_cpus() -> impl Iterator<Item = u32> {
    // SAFETY: The possible CPUs are fixed at boot.
    let next = |cpu: i32| unsafe { helpers::blkbounce_next_possible_cpu(cpu) };
    // SAFETY: See above.
    let end = unsafe { helpers::blkbounce_nr_cpu_ids() };
    core::iter::successors(Some(next(-1)), move |&cpu| Some(next(cpu as i32)))
        .take_while(move |&cpu| cpu < end)
}

#[cfg(not(blk_sample))]
#[kunit_tests(blkbounce_percpu_pages)]
mod tests {
    use super::*;

    fn new_page() -> Result<NonNull<bindings::page>> {
        // SAFETY: Allocating a page has no preconditions.
        NonNull::new(unsafe { bindings::alloc_pages_noprof(bindings::GFP_KERNEL, 0) }).ok_or(ENOMEM)
    }

    /// One stack, filled, overfilled and emptied through its lock; what it keeps is freed
    /// with it (by the drain). Without a shrinker, which could empty it meanwhile.
    #[test]
    fn keeps_a_stack_per_cpu() -> Result {
        let pages = PerCpuPages::without_shrinker()?;
        // Both vectors hold every page without allocating again, so that a page is never
        // left outside them.
        let mut pushed = KVec::with_capacity(DEPTH + 1, GFP_KERNEL)?;
        let mut kept = KVec::with_capacity(DEPTH + 1, GFP_KERNEL)?;
        for _ in 0..=DEPTH {
            match new_page() {
                Ok(page) => {
                    if let Err(kernel::alloc::kvec::PushError(page)) =
                        kept.push_within_capacity(page)
                    {
                        // SAFETY: The page is new and nowhere else.
                        unsafe { bindings::__free_pages(page.as_ptr(), 0) };
                    }
                }
                Err(e) => {
                    for &page in &kept {
                        // SAFETY: The pages are ours and nowhere else.
                        unsafe { bindings::__free_pages(page.as_ptr(), 0) };
                    }
                    return Err(e);
                }
            }
        }
        let (empty, back, full, popped, after_pop);
        {
            let mut stack = pages.local();
            empty = stack.pop().is_none();
            for &page in &kept {
                // SAFETY: The page is new, of order 0, and not used.
                let result = unsafe { stack.push(page) };
                // Within the capacity reserved above: never fails, never allocates.
                let _ = pushed.push_within_capacity(result);
            }
            full = stack.len();
            popped = stack.pop();
            after_pop = stack.len();
            back = pushed.last().copied();
        }
        // What was not kept is freed here; the rest goes with `pages`.
        for (&page, result) in kept.iter().zip(pushed.iter()) {
            if result.is_err() || Some(page) == popped {
                // SAFETY: The page is ours and not kept.
                unsafe { bindings::__free_pages(page.as_ptr(), 0) };
            }
        }
        assert!(empty);
        assert_eq!(full, DEPTH);
        assert_eq!(back, Some(Err(kept[DEPTH])));
        assert_eq!(popped, Some(kept[DEPTH - 1]));
        assert_eq!(after_pop, DEPTH - 1);
        assert_eq!(pages.count(), DEPTH - 1);
        let some = 3.min(DEPTH - 1);
        // SAFETY: The stacks are ours; the drain frees what they keep.
        let freed = unsafe { drain(pages.stacks, some) };
        assert_eq!(freed, some);
        assert_eq!(pages.count(), DEPTH - 1 - some);
        Ok(())
    }
}
