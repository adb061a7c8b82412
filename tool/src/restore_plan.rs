// SPDX-License-Identifier: GPL-2.0

//! What `restore` does for each saved device, decided before anything is touched.
//!
//! `restore` is idempotent: a device that already exists as saved (same backing device,
//! mode and enable state) is left as it is. A device of the same name that differs is
//! reported and left alone: it is the operator's, not the file's. A saved device whose
//! backing device is missing is reported, and the others are still made; so is one saved
//! by a name outside `/dev/disk/by-id` whose device has another size than when it was
//! saved: such a name may come to mean another disk after a reboot.

use crate::configfs::Device;
use crate::saved::SavedDevice;
use crate::stable_name::BY_ID;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Make the device, over the backing device at this path.
    Create(SavedDevice, PathBuf),
    /// It exists, disabled, over the saved backing device in the saved mode: apply the
    /// saved cap and trace setting, then enable it.
    Enable(SavedDevice),
    /// It exists as saved.
    Unchanged(String),
    /// The backing device is not there (yet).
    NoBacking(String, String),
    /// The backing device has another size (bytes now, bytes saved): not the one saved.
    OtherSize(String, String, u64, u64),
    /// A device of this name exists with other settings; it is left alone.
    Differs(String, String),
}

/// Plans the restore of `saved` over the devices there are now. `resolve` turns a path into
/// the device it names (following links), or `None` if there is none; `bytes` gives a
/// device's size.
pub fn plan(
    saved: &[SavedDevice],
    current: &[Device],
    resolve: impl Fn(&Path) -> Option<PathBuf>,
    bytes: impl Fn(&Path) -> Option<u64>,
) -> Vec<Step> {
    saved
        .iter()
        .map(|want| {
            let Some(backing) = resolve(Path::new(&want.backing)) else {
                return Step::NoBacking(want.name.clone(), want.backing.clone());
            };
            // A by-id name follows its device, which may have been grown since.
            let other_size = want
                .backing_bytes
                .filter(|_| !want.backing.starts_with(BY_ID))
                .zip(bytes(&backing))
                .filter(|(saved, now)| saved != now)
                .map(|(saved, now)| {
                    Step::OtherSize(want.name.clone(), want.backing.clone(), now, saved)
                });
            let Some(have) = current.iter().find(|d| d.name == want.name) else {
                return other_size.unwrap_or_else(|| Step::Create(want.clone(), backing));
            };
            let same_backing = resolve(Path::new(&have.backing)).is_some_and(|b| b == backing);
            if !same_backing {
                return Step::Differs(
                    want.name.clone(),
                    format!("its backing is {:?}", have.backing),
                );
            }
            if have.mode != want.mode {
                return Step::Differs(want.name.clone(), format!("its mode is {}", have.mode));
            }
            match (have.enabled, want.enabled) {
                (false, true) => other_size.unwrap_or_else(|| Step::Enable(want.clone())),
                (true, false) => Step::Differs(want.name.clone(), "it is enabled".into()),
                _ => Step::Unchanged(want.name.clone()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(name: &str, backing: &str, mode: &str) -> SavedDevice {
        SavedDevice {
            name: name.into(),
            backing: backing.into(),
            mode: mode.into(),
            max_bounce_bytes: None,
            backing_bytes: None,
            trace: false,
            enabled: true,
        }
    }

    /// `/dev/nvme0n1` has 1 GiB, `/dev/nvme1n1` 2 GiB.
    fn bytes(path: &Path) -> Option<u64> {
        match path.to_str()? {
            "/dev/nvme0n1" => Some(1 << 30),
            "/dev/nvme1n1" => Some(2 << 30),
            _ => None,
        }
    }

    fn device(name: &str, backing: &str, mode: &str, enabled: bool) -> Device {
        Device {
            name: name.into(),
            backing: backing.into(),
            mode: mode.into(),
            enabled,
            disk: if enabled {
                "blkbounce0".into()
            } else {
                String::new()
            },
            max_bounce_bytes: 1 << 24,
            trace: false,
        }
    }

    /// `/dev/disk/by-id/a` and `/dev/nvme0n1` are one device, `/dev/nvme1n1` another, and
    /// `/dev/disk/by-id/gone` is missing.
    fn resolve(path: &Path) -> Option<PathBuf> {
        match path.to_str()? {
            "/dev/disk/by-id/a" | "/dev/nvme0n1" => Some("/dev/nvme0n1".into()),
            "/dev/nvme1n1" => Some("/dev/nvme1n1".into()),
            _ => None,
        }
    }

    #[test]
    fn creates_what_is_missing() {
        let want = saved("vm0", "/dev/disk/by-id/a", "auto");
        assert_eq!(
            plan(std::slice::from_ref(&want), &[], resolve, bytes),
            vec![Step::Create(want, "/dev/nvme0n1".into())]
        );
    }

    #[test]
    fn is_idempotent() {
        let want = [saved("vm0", "/dev/disk/by-id/a", "auto")];
        // The module shows the path the device was made with.
        let have = [device("vm0", "/dev/nvme0n1", "auto", true)];
        assert_eq!(
            plan(&want, &have, resolve, bytes),
            vec![Step::Unchanged("vm0".into())]
        );
        let have = [device("vm0", "/dev/disk/by-id/a", "auto", false)];
        assert_eq!(
            plan(&want, &have, resolve, bytes),
            vec![Step::Enable(want[0].clone())]
        );
    }

    #[test]
    fn leaves_other_devices_alone() {
        let want = [saved("vm0", "/dev/disk/by-id/a", "auto")];
        let other_backing = [device("vm0", "/dev/nvme1n1", "auto", true)];
        let other_mode = [device("vm0", "/dev/nvme0n1", "always", true)];
        for have in [&other_backing[..], &other_mode[..]] {
            assert!(matches!(
                plan(&want, have, resolve, bytes)[0],
                Step::Differs(..)
            ));
        }
        let disabled = SavedDevice {
            enabled: false,
            ..want[0].clone()
        };
        let have = [device("vm0", "/dev/nvme0n1", "auto", true)];
        assert!(matches!(
            plan(&[disabled], &have, resolve, bytes)[0],
            Step::Differs(..)
        ));
    }

    #[test]
    fn makes_nothing_over_a_device_of_another_size() {
        let want = SavedDevice {
            backing_bytes: Some(1 << 30),
            ..saved("vm0", "/dev/nvme1n1", "auto")
        };
        let other = Step::OtherSize("vm0".into(), "/dev/nvme1n1".into(), 2 << 30, 1 << 30);
        assert_eq!(
            plan(std::slice::from_ref(&want), &[], resolve, bytes),
            vec![other.clone()]
        );
        let have = [device("vm0", "/dev/nvme1n1", "auto", false)];
        assert_eq!(
            plan(std::slice::from_ref(&want), &have, resolve, bytes),
            vec![other]
        );
        let same = SavedDevice {
            backing: "/dev/nvme0n1".into(),
            ..want
        };
        assert_eq!(
            plan(std::slice::from_ref(&same), &[], resolve, bytes),
            vec![Step::Create(same.clone(), "/dev/nvme0n1".into())]
        );
        // A by-id name is its device's, whatever its size now.
        let by_id = SavedDevice {
            backing: "/dev/disk/by-id/a".into(),
            backing_bytes: Some(4096),
            ..same
        };
        assert_eq!(
            plan(std::slice::from_ref(&by_id), &[], resolve, bytes),
            vec![Step::Create(by_id.clone(), "/dev/nvme0n1".into())]
        );
    }

    #[test]
    fn reports_a_missing_backing_device_and_goes_on() {
        let want = [
            saved("vm0", "/dev/disk/by-id/gone", "auto"),
            saved("vm1", "/dev/nvme1n1", "off"),
        ];
        assert_eq!(
            plan(&want, &[], resolve, bytes),
            vec![
                Step::NoBacking("vm0".into(), "/dev/disk/by-id/gone".into()),
                Step::Create(want[1].clone(), "/dev/nvme1n1".into()),
            ]
        );
    }
}
