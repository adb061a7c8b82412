// SPDX-License-Identifier: GPL-2.0

//! Counters kept per CPU, as the block layer keeps `part_stat` and dm its `pending_io`: a
//! CPU adds to its own, on a cache line no other CPU writes, and a reader sums them.

use super::helpers;
use core::{ffi::c_void, marker::PhantomData, ptr::NonNull};
use kernel::{
    bindings,
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

/// `N` counters for each possible CPU.
///
/// A CPU changes its own with atomic operations on its own cache line: they are exact
/// whatever interrupts or migrations happen in between (a task that moved on changes the
/// counters of the CPU it ran on, which is as good), and cost no transfer of a line
/// between CPUs. A sum reads every CPU's, and is exact once the counting has stopped.
///
/// # Invariants
///
/// `counters` is a per-CPU allocation of a zeroed `[Atomic<u64>; N]` for every possible
/// CPU, freed on drop.
pub(crate) struct PerCpuCounters<const N: usize> {
    counters: NonNull<c_void>,
    _counters: PhantomData<[Atomic<u64>; N]>,
}

// SAFETY: The counters are atomics, used from any CPU.
unsafe impl<const N: usize> Send for PerCpuCounters<N> {}
// SAFETY: See above.
unsafe impl<const N: usize> Sync for PerCpuCounters<N> {}

impl<const N: usize> PerCpuCounters<N> {
    /// Allocates the counters, at zero.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: A zeroed `Atomic<u64>` is a valid counter at zero: it has the layout of a
        // `u64`. Nothing else to initialise.
        let counters = unsafe { alloc_each::<[Atomic<u64>; N]>(|_| ()) }?;
        // INVARIANT: Allocated for every possible CPU, zeroed.
        Ok(Self {
            counters,
            _counters: PhantomData,
        })
    }

    /// Returns the counters of the CPU the caller runs on (or ran on: see the type's
    /// documentation).
    #[inline]
    pub(crate) fn local(&self) -> &[Atomic<u64>; N] {
        // SAFETY: By the type invariant the counters are a per-CPU allocation, of valid
        // atomics that live as long as `self`.
        unsafe { &*helpers::blkbounce_raw_cpu_ptr(self.counters.as_ptr()).cast() }
    }

    /// Returns the counters of `cpu`, a possible CPU.
    fn of_cpu(&self, cpu: u32) -> &[Atomic<u64>; N] {
        // SAFETY: By the type invariant the counters are a per-CPU allocation, and `cpu`
        // is a possible CPU.
        unsafe { &*helpers::blkbounce_per_cpu_ptr(self.counters.as_ptr(), cpu).cast() }
    }

    /// Returns the counters of every possible CPU.
    pub(crate) fn each(&self) -> impl Iterator<Item = &[Atomic<u64>; N]> {
        possible_cpus().map(|cpu| self.of_cpu(cpu))
    }

    /// Returns the sum of counter `i` over all CPUs, wrapping: a counter one CPU adds to
    /// and another subtracts from sums right.
    pub(crate) fn sum(&self, i: usize) -> u64 {
        self.each()
            .fold(0u64, |sum, c| sum.wrapping_add(c[i].load(Relaxed)))
    }
}

impl<const N: usize> Drop for PerCpuCounters<N> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the counters are a per-CPU allocation, freed once.
        unsafe { bindings::free_percpu(self.counters.as_ptr()) };
    }
}

/// Allocates a zeroed `T` for every possible CPU and calls `init` on each, before anyone
/// else sees them; returns the per-CPU allocation, for `free_percpu`.
///
/// # Safety
///
/// A zeroed `T` must be valid once `init` has run on it; `init` must only initialise the
/// `T` it is given, which is new and unused.
pub(super) unsafe fn alloc_each<T>(init: impl Fn(*mut T)) -> Result<NonNull<c_void>> {
    // SAFETY: Allocating per-CPU memory has no preconditions; it is zeroed.
    let ptr = unsafe {
        helpers::blkbounce_alloc_percpu(core::mem::size_of::<T>(), core::mem::align_of::<T>())
    };
    let ptr = NonNull::new(ptr).ok_or(ENOMEM)?;
    for cpu in possible_cpus() {
        // SAFETY: The allocation is per CPU and `cpu` a possible CPU.
        init(unsafe { helpers::blkbounce_per_cpu_ptr(ptr.as_ptr(), cpu).cast::<T>() });
    }
    Ok(ptr)
}

/// The possible CPUs, in order.
pub(super) fn possible_cpus() -> impl Iterator<Item = u32> {
    // SAFETY: The possible CPUs are fixed at boot.
    let next = |cpu: i32| unsafe { helpers::blkbounce_next_possible_cpu(cpu) };
    // SAFETY: See above.
    let end = unsafe { helpers::blkbounce_nr_cpu_ids() };
    core::iter::successors(Some(next(-1)), move |&cpu| Some(next(cpu as i32)))
        .take_while(move |&cpu| cpu < end)
}

#[cfg(not(blk_sample))]
#[kunit_tests(blkbounce_percpu)]
mod tests {
    use super::*;

    #[test]
    fn sums_over_cpus() -> Result {
        let counters = PerCpuCounters::<2>::new()?;
        counters.local()[0].fetch_add(5, Relaxed);
        let mut cpus = 0;
        for c in counters.each() {
            c[1].fetch_add(1, Relaxed);
            cpus += 1;
        }
        // One CPU takes back what another added.
        counters.local()[0].fetch_sub(2, Relaxed);
        if let Some(c) = counters.each().last() {
            c[0].fetch_add(3u64.wrapping_neg(), Relaxed);
        }
        assert_eq!(counters.sum(0), 0);
        assert_eq!(counters.sum(1), cpus);
        Ok(())
    }
}
