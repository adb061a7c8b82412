// SPDX-License-Identifier: GPL-2.0

//! blklinear: a linear remap of one block device, the smallest stacking driver on `blk`.
//!
//! `insmod blklinear.ko major=259 minor=0 offset=2048` creates `/dev/blklinear0`, whose
//! sector 0 is sector 2048 of the device 259:0, held exclusively; `rmmod` removes it, and
//! is refused while the disk is open. Every bio goes down as a clone, at its sector plus
//! the offset, and ends with the lower device's status, as dm-linear's do. The lower
//! device's queue limits are stacked. Its integrity profile is not: the block layer
//! generates and verifies a PI device's protection information for each clone.

#![deny(unsafe_code)]

// The abstraction blkbounce is built on, compiled into this module too. The sample uses
// the part of it that passes bios through.
#[path = "../blk/mod.rs"]
#[allow(dead_code)]
mod blk;

use blk::{
    clone::CloneTarget,
    disk::{BioDriver, Disk, DiskOptions},
    gfp::Gfp,
    lower::LowerDevice,
    stacked::Stacked,
    status::BlkStatus,
    submitted_bio::SubmittedBio,
};
use kernel::prelude::*;

module! {
    type: BlkLinear,
    name: "blklinear",
    authors: ["The blkbounce authors"],
    description: "Linear remap of one block device: a sample driver of blkbounce's bio-based abstraction",
    license: "GPL",
    params: {
        major: u32 {
            default: 0,
            description: "Major number of the lower device",
        },
        minor: u32 {
            default: 0,
            description: "Minor number of the lower device",
        },
        offset: u64 {
            default: 0,
            description: "First sector (512 bytes) of the lower device that the disk maps",
        },
    },
}

/// The driver data: none, since the disk applies the offset to every bio it sends down.
struct Linear;

impl BioDriver for Linear {
    type Module = BlkLinear;

    fn submit_bio(_stacked: &Stacked<Self>, bio: SubmittedBio<Self>) {
        // A `REQ_NOWAIT` bio must not wait for a clone: it is ended with `BLK_STS_AGAIN`
        // if none is free at once, and the submitter tries again where it may wait.
        let gfp = if bio.is_nowait() {
            Gfp::NoWait
        } else {
            Gfp::NoIo
        };
        if let Err((bio, _)) = bio.submit_clone(gfp) {
            bio.end(BlkStatus::again());
        }
    }
}

/// Clones end with the lower device's status, unchanged, and are never retried.
impl CloneTarget for Linear {}

struct BlkLinear {
    _disk: Disk<Linear>,
}

impl kernel::Module for BlkLinear {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let major = module_parameters::major.value();
        let minor = module_parameters::minor.value();
        let offset = module_parameters::offset.value();
        let lower = LowerDevice::open_by_dev(major, minor, module).inspect_err(|e| {
            pr_err!("cannot open {major}:{minor}: {e:?}\n");
        })?;
        let options = DiskOptions {
            offset,
            ..DiskOptions::default()
        };
        let disk = Disk::new(c"blklinear0", lower, options, Ok::<_, Error>(Linear))
            .inspect_err(|e| {
                pr_err!("cannot map {major}:{minor} from sector {offset}: {e:?}\n");
            })?;
        pr_info!("blklinear0: {major}:{minor} from sector {offset}\n");
        Ok(Self { _disk: disk })
    }
}
