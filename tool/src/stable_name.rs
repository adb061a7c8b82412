// SPDX-License-Identifier: GPL-2.0

//! Stable names of block devices: the links udev keeps in `/dev/disk/by-id`.
//!
//! `/dev/nvme0n1` may be another namespace after a reboot; its by-id links name the same
//! device every time. A device usually has several: a globally unique identifier (`wwn-`,
//! `nvme-eui.`, `nvme-uuid.`) is preferred; then a name that ends in the namespace ID
//! (`nvme-<model>_<serial>_<nsid>`), since the older `nvme-<model>_<serial>` is the same
//! for every namespace of a controller and points at whichever udev saw last; then the
//! shortest, then the first in order.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The directory udev keeps the links in.
pub const BY_ID: &str = "/dev/disk/by-id";

/// How good a by-id name is: lower is better. A partition's name ranks as its disk's.
fn rank(name: &str) -> u8 {
    let name = match name.rsplit_once("-part") {
        Some((disk, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => disk,
        _ => name,
    };
    let namespace_id = name
        .rsplit_once('_')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if ["wwn-", "nvme-eui.", "nvme-uuid.", "nvme-nvme."]
        .iter()
        .any(|p| name.starts_with(p))
    {
        0
    } else if name.starts_with("nvme-") && namespace_id {
        1
    } else {
        2
    }
}

/// Chooses the stable name among the by-id names of one device.
pub fn choose<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    names
        .into_iter()
        .min_by(|a, b| (rank(a), a.len(), *a).cmp(&(rank(b), b.len(), *b)))
}

/// Returns the stable path of the block device at `dev`: its best link in `by_id`, or
/// `dev` itself if none points at it.
pub fn stable_path(dev: &Path, by_id: &Path) -> io::Result<PathBuf> {
    let target = fs::canonicalize(dev)?;
    let mut names = Vec::new();
    if let Ok(entries) = fs::read_dir(by_id) {
        for entry in entries.flatten() {
            if fs::canonicalize(entry.path()).is_ok_and(|t| t == target) {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
    }
    Ok(match choose(names.iter().map(String::as_str)) {
        Some(name) => by_id.join(name),
        None => dev.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn prefers_unique_identifiers() {
        let names = [
            "nvme-QEMU_NVMe_Ctrl_blkbounce-pi_1",
            "nvme-eui.0123456789abcdef",
            "nvme-eui.01",
        ];
        assert_eq!(choose(names), Some("nvme-eui.01"));
        // The name without the namespace ID is shared by the controller's namespaces.
        let names = [
            "nvme-QEMU_NVMe_Ctrl_blkbounce-pi",
            "nvme-QEMU_NVMe_Ctrl_blkbounce-pi_2",
        ];
        assert_eq!(choose(names), Some("nvme-QEMU_NVMe_Ctrl_blkbounce-pi_2"));
        // So for a partition.
        let names = ["nvme-M_S-part1", "nvme-M_S_1-part1"];
        assert_eq!(choose(names), Some("nvme-M_S_1-part1"));
        assert_eq!(choose(["virtio-abc", "virtio-ab"]), Some("virtio-ab"));
        assert_eq!(choose(["b-1", "a-1"]), Some("a-1"));
        assert_eq!(choose([]), None);
    }

    #[test]
    fn resolves_through_links() {
        let dir = std::env::temp_dir().join(format!("blkbouncectl-test-{}", std::process::id()));
        let by_id = dir.join("by-id");
        fs::create_dir_all(&by_id).unwrap();
        let dev = dir.join("nvme0n1");
        let other = dir.join("nvme1n1");
        fs::write(&dev, "").unwrap();
        fs::write(&other, "").unwrap();
        symlink("../nvme0n1", by_id.join("nvme-Model_Serial_1")).unwrap();
        symlink("../nvme0n1", by_id.join("nvme-eui.42")).unwrap();
        symlink("../nvme1n1", by_id.join("nvme-eui.41")).unwrap();
        symlink("../gone", by_id.join("wwn-dangling")).unwrap();
        assert_eq!(
            stable_path(&dev, &by_id).unwrap(),
            by_id.join("nvme-eui.42")
        );
        // Without a link, the path as given.
        fs::remove_file(by_id.join("nvme-eui.41")).unwrap();
        assert_eq!(stable_path(&other, &by_id).unwrap(), other);
        assert!(stable_path(&dir.join("missing"), &by_id).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
