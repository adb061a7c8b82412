// SPDX-License-Identifier: GPL-2.0

//! The guest's side of the instruction meter (`bench/insn-meter.c`, a QEMU TCG plugin).
//!
//! The plugin watches for one NOP that no compiler emits, `nop dword ptr [rax + D]` with
//! the upper half of the displacement `D` equal to `0x6b6b`; the lower half is a command.
//! Each function here executes such markers. Outside the meter they are NOPs.

/// Executes the marker of command `$cmd`, a displacement literal.
macro_rules! marker {
    ($disp:literal) => {
        // SAFETY: A NOP: it reads no memory (the operand only encodes the command), writes
        // no register and leaves the flags alone.
        unsafe {
            core::arch::asm!(
                concat!("nop dword ptr [rax + ", $disp, "]"),
                options(nomem, nostack, preserves_flags)
            )
        }
    };
}

/// Shifts the 64 bits of `value` into the plugin's value register, most significant first.
#[cfg(target_arch = "x86_64")]
fn shift_in(value: u64) {
    for bit in (0..64).rev() {
        if value >> bit & 1 == 1 {
            marker!("0x6b6b0101");
        } else {
            marker!("0x6b6b0100");
        }
    }
}

/// Asks the plugin for a sample of its counters, tagged `tag`.
#[cfg(target_arch = "x86_64")]
pub fn sample(tag: u64) {
    shift_in(tag);
    marker!("0x6b6b0000");
}

/// Sets the address range whose instructions the plugin also counts apart: `[start, end)`.
#[cfg(target_arch = "x86_64")]
pub fn set_range(start: u64, end: u64) {
    shift_in(start);
    marker!("0x6b6b0200");
    shift_in(end);
    marker!("0x6b6b0201");
}

/// Zeroes the plugin's per-block profile.
#[cfg(target_arch = "x86_64")]
pub fn profile_zero() {
    marker!("0x6b6b0300");
}

/// Asks the plugin to write its per-block profile, tagged `tag`.
#[cfg(target_arch = "x86_64")]
pub fn profile_dump(tag: u64) {
    shift_in(tag);
    marker!("0x6b6b0301");
}

#[cfg(not(target_arch = "x86_64"))]
pub fn sample(_tag: u64) {}

#[cfg(not(target_arch = "x86_64"))]
pub fn profile_zero() {}

#[cfg(not(target_arch = "x86_64"))]
pub fn profile_dump(_tag: u64) {}

#[cfg(not(target_arch = "x86_64"))]
pub fn set_range(_start: u64, _end: u64) {}
