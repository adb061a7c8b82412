// SPDX-License-Identifier: GPL-2.0

//! Per-CPU stacks of free bounce pages: a page a bounce bio gives back is kept on the CPU
//! that freed it, and the next bounce on that CPU takes it without the page allocator.
//!
//! A stack is touched only by its own CPU with interrupts off (bounce bios complete in
//! interrupt context too), so it needs no lock; the stacks are read by other CPUs only for
//! statistics, and emptied only when nobody uses them any more.

use super::helpers;
use core::{ffi::c_void, ptr::NonNull};
use kernel::{bindings, prelude::*};

/// How many pages each CPU keeps: 64 KiB of 4 KiB pages, a queue depth of 16 bounced 4 KiB
/// I/Os completing on the CPU that submits them.
pub(crate) const DEPTH: usize = 16;

/// One CPU's free pages.
#[repr(C)]
struct Stack {
    len: usize,
    pages: [*mut bindings::page; DEPTH],
}

/// Interrupts off on the local CPU, restored on drop, with its stack.
struct LocalStack<'a> {
    stack: &'a mut Stack,
    flags: usize,
}

/// One [`Stack`] per possible CPU.
///
/// # Invariants
///
/// - `stacks` is a per-CPU allocation of a `Stack` for each possible CPU, zeroed when it
///   was made, and freed on drop.
/// - The first `len` entries of each stack are order-0 pages that nobody else owns.
/// - A stack is written only by its own CPU with interrupts off, or by drop.
pub(crate) struct PerCpuPages {
    stacks: NonNull<c_void>,
}

// SAFETY: Each CPU touches only its own stack, with interrupts off.
unsafe impl Send for PerCpuPages {}
// SAFETY: See above.
unsafe impl Sync for PerCpuPages {}

impl PerCpuPages {
    /// Allocates empty stacks for every possible CPU.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: Allocating per-CPU memory has no preconditions; it is zeroed.
        let stacks = unsafe {
            helpers::blkbounce_alloc_percpu(
                core::mem::size_of::<Stack>(),
                core::mem::align_of::<Stack>(),
            )
        };
        // INVARIANT: Zeroed stacks are empty.
        Ok(Self {
            stacks: NonNull::new(stacks).ok_or(ENOMEM)?,
        })
    }

    /// Turns interrupts off and returns the local CPU's stack.
    fn local(&self) -> LocalStack<'_> {
        // SAFETY: Turning interrupts off has no preconditions; `LocalStack` restores them.
        let flags = unsafe { helpers::blkbounce_local_irq_save() };
        // SAFETY: With interrupts off the task stays on this CPU and nothing else runs on
        // it, so the local stack is used by this reference alone until `flags` are
        // restored, when the reference ends.
        let stack = unsafe { &mut *helpers::blkbounce_this_cpu_ptr(self.stacks.as_ptr()).cast() };
        LocalStack { stack, flags }
    }

    /// Takes a page from the local CPU's stack; the caller owns it.
    pub(crate) fn pop(&self) -> Option<NonNull<bindings::page>> {
        let local = self.local();
        let stack = &mut *local.stack;
        stack.len = stack.len.checked_sub(1)?;
        NonNull::new(stack.pages[stack.len])
    }

    /// Keeps `page` on the local CPU's stack, or gives it back if the stack is full.
    ///
    /// # Safety
    ///
    /// `page` must be an order-0 page, owned by the caller and no longer used.
    pub(crate) unsafe fn push(
        &self,
        page: NonNull<bindings::page>,
    ) -> Result<(), NonNull<bindings::page>> {
        let local = self.local();
        let stack = &mut *local.stack;
        let Some(slot) = stack.pages.get_mut(stack.len) else {
            return Err(page);
        };
        // INVARIANT: The caller gave up the order-0 page.
        *slot = page.as_ptr();
        stack.len += 1;
        Ok(())
    }

    /// Returns the pages kept on all CPUs now; a racy sum, for statistics.
    pub(crate) fn count(&self) -> usize {
        possible_cpus()
            .map(|cpu| {
                // SAFETY: `cpu` is a possible CPU; its stack's length is read once, racing
                // with its CPU at worst.
                unsafe {
                    let stack: *const Stack =
                        helpers::blkbounce_per_cpu_ptr(self.stacks.as_ptr(), cpu).cast();
                    core::ptr::read_volatile(&raw const (*stack).len).min(DEPTH)
                }
            })
            .sum()
    }
}

impl Drop for LocalStack<'_> {
    fn drop(&mut self) {
        // SAFETY: `flags` come from the `blkbounce_local_irq_save` of this CPU.
        unsafe { helpers::blkbounce_local_irq_restore(self.flags) };
    }
}

impl Drop for PerCpuPages {
    fn drop(&mut self) {
        for cpu in possible_cpus() {
            // SAFETY: `cpu` is a possible CPU. Nobody else uses the stacks any more, so
            // this is the only reference to its stack; its first `len` pages are ours.
            unsafe {
                let stack =
                    &mut *helpers::blkbounce_per_cpu_ptr(self.stacks.as_ptr(), cpu).cast::<Stack>();
                for &page in &stack.pages[..stack.len] {
                    bindings::__free_pages(page, 0);
                }
                stack.len = 0;
            }
        }
        // SAFETY: By the type invariant the stacks are a per-CPU allocation, freed once.
        unsafe { bindings::free_percpu(self.stacks.as_ptr()) };
    }
}

/// The possible CPUs, in order.
fn possible_cpus() -> impl Iterator<Item = u32> {
    // SAFETY: The possible CPUs and `nr_cpu_ids` are fixed at boot.
    let next = |cpu: i32| unsafe { helpers::blkbounce_next_possible_cpu(cpu) };
    // SAFETY: See above.
    let nr_cpu_ids = unsafe { bindings::nr_cpu_ids };
    core::iter::successors(Some(next(-1)), move |&cpu| Some(next(cpu as i32)))
        .take_while(move |&cpu| cpu < nr_cpu_ids)
}

#[kunit_tests(blkbounce_percpu_pages)]
mod tests {
    use super::*;

    fn new_page() -> NonNull<bindings::page> {
        // SAFETY: Allocating a page has no preconditions.
        NonNull::new(unsafe { bindings::alloc_pages_noprof(bindings::GFP_KERNEL, 0) }).unwrap()
    }

    #[test]
    fn keeps_a_stack_per_cpu() {
        let pages = PerCpuPages::new().unwrap();
        assert!(pages.pop().is_none());
        let mut kept = KVec::new();
        for _ in 0..DEPTH {
            kept.push(new_page(), GFP_KERNEL).unwrap();
        }
        let extra = new_page();
        // Interrupts stay off between the calls, so that all of them use one CPU's stack;
        // the results are checked once they are back on.
        // SAFETY: Turning interrupts off has no preconditions; they are restored below.
        let flags = unsafe { helpers::blkbounce_local_irq_save() };
        // SAFETY: The pages are new, of order 0, and not used.
        let all_kept = kept.iter().all(|&page| unsafe { pages.push(page) }.is_ok());
        // SAFETY: As above.
        let back = unsafe { pages.push(extra) };
        let full = pages.count();
        // Last in, first out.
        let popped = pages.pop();
        let after_pop = pages.count();
        // SAFETY: `flags` come from the save above, on this CPU.
        unsafe { helpers::blkbounce_local_irq_restore(flags) };
        assert!(all_kept);
        assert_eq!(back, Err(extra));
        assert_eq!(full, DEPTH);
        assert_eq!(popped, kept.last().copied());
        assert_eq!(after_pop, DEPTH - 1);
        // SAFETY: The pages taken back are ours and no longer used. The rest are freed
        // with `pages`.
        unsafe {
            bindings::__free_pages(extra.as_ptr(), 0);
            bindings::__free_pages(kept[DEPTH - 1].as_ptr(), 0);
        }
    }
}
