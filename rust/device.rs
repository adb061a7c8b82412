// SPDX-License-Identifier: GPL-2.0

//! An enabled blkbounce device: a disk stacked on a lower device, and its I/O path.

#![deny(unsafe_code)]

use crate::{
    blk::{
        bioset::{BioSet, CloneTarget, Gfp},
        disk::{BioDriver, Disk, SubmittedBio},
        lower::LowerDevice,
        status::BlkStatus,
    },
    mode::Mode,
    stats::Stats,
};
use kernel::{prelude::*, str::CString};

/// Bios held in reserve for clones, so that I/O progresses under memory pressure.
const CLONE_RESERVE: u32 = 16;

/// The state of an enabled device that its I/O path uses.
#[pin_data]
pub(crate) struct BounceDevice {
    name: CString,
    mode: Mode,
    lower: LowerDevice,
    #[pin]
    bioset: BioSet,
    stats: Stats,
}

impl BounceDevice {
    /// Creates the disk `name` over `lower`.
    pub(crate) fn create(name: CString, lower: LowerDevice, mode: Mode) -> Result<Disk<Self>> {
        let disk_name = CString::try_from(&*name)?;
        let driver = try_pin_init!(BounceDevice {
            name,
            mode,
            lower,
            bioset <- BioSet::new(CLONE_RESERVE),
            stats: Stats::new(),
        });
        // In `off` mode the disk declares stable writes only if the lower device does.
        Disk::new(&disk_name, false, driver)
    }

    /// Returns the counters.
    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Returns the disk name, e.g. `blkbounce0`.
    pub(crate) fn name(&self) -> &CStr {
        &self.name
    }
}

impl BioDriver for BounceDevice {
    fn lower(&self) -> &LowerDevice {
        &self.lower
    }

    fn submit_bio(&self, bio: SubmittedBio<Self>) {
        // Only `off` is implemented so far; enabling any other mode is refused.
        debug_assert_eq!(self.mode, Mode::Off);
        let gfp = if bio.is_nowait() {
            Gfp::NoWait
        } else {
            Gfp::NoIo
        };
        self.stats.passed_through(bio.size());
        if let Err((bio, _)) = bio.submit_clone(gfp) {
            // Only a REQ_NOWAIT bio can fail here: the reserve serves the others.
            self.stats.failed();
            bio.end(BlkStatus::AGAIN);
        }
    }
}

impl CloneTarget for BounceDevice {
    fn bioset(&self) -> &BioSet {
        &self.bioset
    }

    fn clone_done(bio: SubmittedBio<Self>, status: BlkStatus) {
        if !status.is_ok() {
            bio.driver().stats.failed();
        }
        bio.end(status);
    }
}
