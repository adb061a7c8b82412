// SPDX-License-Identifier: GPL-2.0

//! Per-CPU stacks of free bounce pages: a page a bounce bio gives back is kept on the CPU
//! that freed it, and the next bounce on that CPU takes it without the page allocator.
//!
//! Each stack has a spinlock, taken with interrupts off (bounce bios complete in interrupt
//! context too). Only its CPU takes it on the I/O path, so it is never contended there; a
//! shrinker takes it from any CPU to give the pages back under memory pressure. When a CPU
//! goes offline, a CPU-hotplug callback frees its pages, as `bio.c` frees a dead CPU's
//! bio cache (`CPUHP_BIO_DEAD`). The stacks are emptied when the device goes away.

use super::{
    helpers,
    percpu::{alloc_each, possible_cpus},
};
use core::{ffi::c_void, marker::PhantomData, ptr::NonNull};
use kernel::{
    bindings,
    page::PAGE_SIZE,
    prelude::*,
    sync::atomic::{Acquire, Atomic, Relaxed, Release},
    types::Opaque,
};

/// The dynamic CPU-hotplug state whose teardown frees the pages of a dead CPU, or 0.
static CPU_DEAD_STATE: Atomic<i32> = Atomic::new(0);

/// The module's registration of the CPU-hotplug callback that frees the recycled pages of
/// a CPU that went offline, for every [`PerCpuPages`]; unregistered on drop. A module that
/// recycles pages makes one before its first disk, and drops it after its last.
///
/// # Invariants
///
/// `state` is the multi-instance state set up by [`CpuDead::register`], and is in
/// `CPU_DEAD_STATE`.
pub(crate) struct CpuDead {
    state: i32,
}

impl CpuDead {
    /// Sets up the CPU-hotplug state, in the prepare section: its teardown runs on a
    /// control CPU once the CPU is dead.
    pub(crate) fn register() -> Result<Self> {
        // SAFETY: The name is a static C string; `cpu_dead` has the signature of a
        // multi-instance teardown callback.
        let state = unsafe {
            helpers::blkbounce_cpuhp_setup_dead(c"block/blkbounce:dead".as_char_ptr(), cpu_dead)
        };
        if state < 0 {
            return Err(Error::from_errno(state));
        }
        if CPU_DEAD_STATE.cmpxchg(0, state, Relaxed).is_err() {
            // SAFETY: The state was set up above and has no instances.
            unsafe { bindings::__cpuhp_remove_state(state as bindings::cpuhp_state, false) };
            return Err(EBUSY);
        }
        // INVARIANT: The state is set up and recorded.
        Ok(Self { state })
    }
}

impl Drop for CpuDead {
    fn drop(&mut self) {
        CPU_DEAD_STATE.store(0, Relaxed);
        // SAFETY: By the type invariant the state is set up; every `PerCpuPages` removed its
        // instance when it was dropped, before the module drops this.
        unsafe { bindings::__cpuhp_remove_state(self.state as bindings::cpuhp_state, false) };
    }
}

/// The instance of a [`PerCpuPages`] in the CPU-hotplug state.
///
/// # Invariants
///
/// While `node` is in the state `state`, `stacks` are the live stacks of a
/// [`PerCpuPages`], which removes the instance before it frees them.
#[repr(C)]
struct HotplugInstance {
    node: Opaque<bindings::hlist_node>,
    stacks: NonNull<c_void>,
    state: i32,
}

/// Frees the recycled pages of `cpu`, which is dead.
///
/// # Safety
///
/// Called by the CPU-hotplug core with the node of a registered [`HotplugInstance`].
unsafe extern "C" fn cpu_dead(cpu: kernel::ffi::c_uint, node: *mut bindings::hlist_node) -> i32 {
    // SAFETY: The node is the first field of a live `HotplugInstance` (`#[repr(C)]`), whose
    // stacks live while it is registered; the instance is removed before they are freed.
    unsafe {
        let instance = node.cast::<HotplugInstance>();
        let stacks = (*instance).stacks;
        Locked::new(helpers::blkbounce_per_cpu_ptr(stacks.as_ptr(), cpu).cast()).free(usize::MAX);
    }
    0
}

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
    /// First: `blkbounce_lock_this_cpu` locks the object it finds.
    lock: bindings::spinlock_t,
    /// Written under `lock`; read without it for the count.
    len: Atomic<usize>,
    /// Pages freed from this stack by the shrinker or the CPU-hotplug callback, rather than
    /// taken by a bio; written under `lock`.
    freed: Atomic<u64>,
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
/// - `hotplug`, if any, is an instance of its state with `stacks`, removed on drop before
///   the stacks are freed.
pub(crate) struct PerCpuPages {
    stacks: NonNull<c_void>,
    shrinker: Option<NonNull<bindings::shrinker>>,
    hotplug: Option<Pin<KBox<HotplugInstance>>>,
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
/// with `flags`: by `blkbounce_lock_this_cpu`, which also pinned the task to its CPU, if
/// `pinned`.
struct Locked<'a> {
    stack: *mut Stack,
    flags: usize,
    pinned: bool,
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
        // INVARIANT: The lock is held, and the task not pinned.
        Self {
            stack,
            flags,
            pinned: false,
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
            (*self.stack).len.store(len, Release);
            NonNull::new((*self.stack).pages[len])
        }
    }

    /// Frees up to `max` of the stack's pages to the page allocator, counting them in its
    /// `freed`; returns how many.
    fn free(&mut self, max: usize) -> usize {
        let mut n = 0;
        while n < max && self.len() > 0 {
            // Counted as freed before it leaves the stack (`pop` stores the length with
            // release): a reader that sees the shorter stack sees the page counted.
            // SAFETY: The lock is held.
            unsafe { (*self.stack).freed.fetch_add(1, Relaxed) };
            let Some(page) = self.pop() else { break };
            // SAFETY: The page was kept, so it is ours and unused.
            unsafe { bindings::__free_pages(page.as_ptr(), 0) };
            n += 1;
        }
        n
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
        // SAFETY: By the type invariant the lock is held, taken with `flags`, and the task
        // pinned by the function that took it if `pinned`.
        unsafe {
            if self.pinned {
                helpers::blkbounce_unlock_this_cpu(self.stack.cast(), self.flags);
            } else {
                helpers::blkbounce_spin_unlock_irqrestore(&raw mut (*self.stack).lock, self.flags);
            }
        };
    }
}

impl PerCpuPages {
    /// Allocates empty stacks for every possible CPU and registers their shrinker and
    /// their CPU-hotplug callback, which needs a [`CpuDead`] registration.
    pub(crate) fn new() -> Result<Self> {
        let state = CPU_DEAD_STATE.load(Relaxed);
        if state <= 0 {
            pr_warn!("blk: recycled pages need the module's CpuDead registration\n");
            return Err(EINVAL);
        }
        let mut pages = Self::without_shrinker()?;
        let instance = KBox::pin(
            HotplugInstance {
                node: Opaque::uninit(),
                stacks: pages.stacks,
                state,
            },
            GFP_KERNEL,
        )?;
        // SAFETY: The node is pinned and not in any list; the stacks outlive the instance
        // (`Drop` removes it first).
        kernel::error::to_result(unsafe {
            bindings::__cpuhp_state_add_instance(
                state as bindings::cpuhp_state,
                instance.node.get(),
                false,
            )
        })?;
        // INVARIANT: The instance is registered with the stacks.
        pages.hotplug = Some(instance);
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
        // SAFETY: A zeroed stack is empty; its lock is initialised here.
        let stacks = unsafe {
            alloc_each::<Stack>(|stack| helpers::blkbounce_spin_lock_init(&raw mut (*stack).lock))
        }?;
        // INVARIANT: The stacks are empty with their locks initialised.
        Ok(Self {
            stacks,
            shrinker: None,
            hotplug: None,
        })
    }

    /// Locks the stack of the CPU the caller runs on. The task is pinned to that CPU before
    /// the stack is found, so the CPU cannot go offline (and have its callback empty the
    /// stack) until the guard is dropped.
    fn local(&self) -> Locked<'_> {
        let mut flags = 0;
        // SAFETY: The stacks are a per-CPU allocation of stacks, each beginning with its
        // initialised lock.
        let stack = unsafe { helpers::blkbounce_lock_this_cpu(self.stacks.as_ptr(), &mut flags) };
        // INVARIANT: The stack is one of ours, locked with `flags` by
        // `blkbounce_lock_this_cpu`, and the guard does not outlive `self`.
        Locked {
            stack: stack.cast(),
            flags,
            pinned: true,
            _pages: PhantomData,
        }
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

    /// Returns the pages freed from the stacks by the shrinker or the CPU-hotplug callback
    /// so far; a racy sum, for statistics.
    pub(crate) fn freed(&self) -> u64 {
        possible_cpus()
            .map(|cpu| {
                // SAFETY: The stacks are live and `cpu` a possible CPU; `freed` is atomic.
                unsafe {
                    let stack =
                        helpers::blkbounce_per_cpu_ptr(self.stacks.as_ptr(), cpu).cast::<Stack>();
                    (*stack).freed.load(Relaxed)
                }
            })
            .sum()
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
                (*stack).len.load(Acquire).min(DEPTH)
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
        freed += locked.free(max - freed);
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
        if let Some(instance) = &self.hotplug {
            // SAFETY: By the type invariant the instance is registered. Removing it takes
            // the CPU-hotplug read lock, which excludes a CPU going offline and so a
            // running callback; none runs on it afterwards.
            unsafe {
                bindings::__cpuhp_state_remove_instance(
                    instance.state as bindings::cpuhp_state,
                    instance.node.get(),
                    false,
                )
            };
        }
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
