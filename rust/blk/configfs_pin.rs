// SPDX-License-Identifier: GPL-2.0

//! Pinning a configfs item against `rmdir` (`configfs_depend_item_unlocked`).
//!
//! The Rust configfs abstraction cannot refuse an `rmdir`: `drop_item` has no way to fail.
//! configfs itself refuses to remove an item that something depends on, so an enabled
//! device makes its own directory a dependency for as long as its disk exists.

use core::ptr::NonNull;
use kernel::{
    bindings,
    configfs::{HasGroup, Subsystem},
    prelude::*,
    sync::atomic::{Acquire, Atomic, Release},
};

/// Where a registered configfs subsystem is, once the module has placed it.
///
/// # Invariants
///
/// A non-null `subsys` points to a registered subsystem that stays registered while any
/// of its items exist (the module cannot be unloaded while a user-created item exists).
pub(crate) struct SubsystemSlot {
    subsys: Atomic<*mut bindings::configfs_subsystem>,
}

impl SubsystemSlot {
    /// Creates an empty slot.
    pub(crate) fn new() -> Self {
        Self {
            subsys: Atomic::new(core::ptr::null_mut()),
        }
    }

    /// Records the registered subsystem `subsys`, which must outlive its items.
    pub(crate) fn set<D>(&self, subsys: Pin<&Subsystem<D>>) {
        // SAFETY: `subsys` is a valid `Subsystem`, which embeds a `configfs_subsystem`
        // whose `su_group` `HasGroup::group` returns.
        let raw = unsafe {
            let group = <Subsystem<D> as HasGroup<D>>::group(&*subsys);
            kernel::container_of!(group.cast_mut(), bindings::configfs_subsystem, su_group)
        };
        // INVARIANT: `subsys` is registered (it is pinned and initialised) and outlives its
        // items, as the caller promises.
        self.subsys.store(raw, Release);
    }
}

/// A dependency on a configfs item of the subsystem, which makes `rmdir` of it fail with
/// `EBUSY` until the pin is dropped.
///
/// # Invariants
///
/// `item` holds a reference and a configfs dependency, both released on drop.
pub(crate) struct ItemPin {
    item: NonNull<bindings::config_item>,
}

// SAFETY: The dependency and the reference may be released from any thread.
unsafe impl Send for ItemPin {}
// SAFETY: `&ItemPin` gives no access to the item.
unsafe impl Sync for ItemPin {}

impl ItemPin {
    /// Pins the top-level item `name` of the subsystem in `slot`.
    ///
    /// Must be called from a callback of that subsystem (an attribute store), as
    /// `configfs_depend_item_unlocked` requires.
    pub(crate) fn new(slot: &SubsystemSlot, name: &CStr) -> Result<Self> {
        let subsys = slot.subsys.load(Acquire);
        if subsys.is_null() {
            return Err(ENODEV);
        }
        // SAFETY: By the invariant of `SubsystemSlot`, `subsys` is registered. Its
        // `su_mutex` protects the list `config_group_find_item` walks; the returned item
        // (if any) carries a reference.
        let item = unsafe {
            bindings::mutex_lock(&raw mut (*subsys).su_mutex);
            let item =
                bindings::config_group_find_item(&raw mut (*subsys).su_group, name.as_char_ptr());
            bindings::mutex_unlock(&raw mut (*subsys).su_mutex);
            item
        };
        let item = NonNull::new(item).ok_or(ENOENT)?;
        // SAFETY: `item` is a referenced item of `subsys`, and we are in a callback of
        // `subsys`, as this function requires of its callers.
        let ret = unsafe { bindings::configfs_depend_item_unlocked(subsys, item.as_ptr()) };
        if let Err(e) = kernel::error::to_result(ret) {
            // SAFETY: Drops the reference `config_group_find_item` took.
            unsafe { bindings::config_item_put(item.as_ptr()) };
            return Err(e);
        }
        // INVARIANT: Both the reference and the dependency are held.
        Ok(Self { item })
    }
}

impl Drop for ItemPin {
    fn drop(&mut self) {
        // SAFETY: By the type invariant both are held; each is released once, here.
        unsafe {
            bindings::configfs_undepend_item(self.item.as_ptr());
            bindings::config_item_put(self.item.as_ptr());
        }
    }
}
