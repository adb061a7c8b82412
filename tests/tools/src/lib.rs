// SPDX-License-Identifier: GPL-2.0

//! Shared pieces of the blkbounce test tools: block device access with `O_DIRECT`,
//! page-aligned buffers, data patterns, argument parsing, and writes by splice,
//! `sendfile` and `copy_file_range`, and the markers of the instruction meter.

pub mod args;
pub mod buffer;
pub mod device;
pub mod meter;
pub mod outcome;
pub mod pattern;
pub mod transfer;
