// SPDX-License-Identifier: GPL-2.0

//! The saved configuration: `/etc/blkbounce.json` by default.
//!
//! ```json
//! {
//!   "version": 1,
//!   "devices": [
//!     { "name": "vm0", "backing": "/dev/disk/by-id/nvme-eui.0011", "mode": "auto" }
//!   ]
//! }
//! ```
//!
//! `save` also keeps `max_bounce_bytes`, `backing_bytes` (the backing device's size), and
//! `trace` when it is on; `enabled` is false for a device that was saved disabled.
//! Hand-written files may leave them out.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// The version this tool writes and reads.
pub const VERSION: u32 = 1;

/// The default file.
pub const DEFAULT_FILE: &str = "/etc/blkbounce.json";

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Saved {
    pub version: u32,
    pub devices: Vec<SavedDevice>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SavedDevice {
    /// The configfs directory's name.
    pub name: String,
    /// The backing device, by a stable name when it has one.
    pub backing: String,
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bounce_bytes: Option<u64>,
    /// The backing device's size when saved: `restore` makes nothing over a device of
    /// another size named outside `/dev/disk/by-id`, since such a name may come to mean
    /// another disk after a reboot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backing_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub trace: bool,
    #[serde(default = "enabled_default", skip_serializing_if = "is_true")]
    pub enabled: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_true(b: &bool) -> bool {
    *b
}

fn enabled_default() -> bool {
    true
}

/// Returns `true` for a name configfs takes as one directory.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && name.len() <= 255
}

impl Saved {
    /// Parses and checks a saved configuration.
    pub fn parse(text: &str) -> Result<Self, String> {
        let saved: Saved = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if saved.version != VERSION {
            return Err(format!(
                "version {} (this tool reads version {VERSION})",
                saved.version
            ));
        }
        let mut names = HashSet::new();
        for d in &saved.devices {
            if !valid_name(&d.name) {
                return Err(format!("device name {:?} is not a directory name", d.name));
            }
            if !names.insert(d.name.as_str()) {
                return Err(format!("device {} is listed twice", d.name));
            }
            if !d.backing.starts_with('/') {
                return Err(format!(
                    "{}: backing {:?} is not an absolute path",
                    d.name, d.backing
                ));
            }
        }
        Ok(saved)
    }

    /// The file's text: pretty JSON with a final newline.
    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("plain data serializes");
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(name: &str) -> SavedDevice {
        SavedDevice {
            name: name.into(),
            backing: "/dev/disk/by-id/nvme-eui.01".into(),
            mode: "auto".into(),
            max_bounce_bytes: None,
            backing_bytes: None,
            trace: false,
            enabled: true,
        }
    }

    #[test]
    fn round_trips_and_leaves_defaults_out() {
        let saved = Saved {
            version: VERSION,
            devices: vec![
                device("vm0"),
                SavedDevice {
                    max_bounce_bytes: Some(1 << 24),
                    backing_bytes: Some(1 << 30),
                    trace: true,
                    enabled: false,
                    ..device("vm1")
                },
            ],
        };
        let text = saved.to_text();
        assert_eq!(Saved::parse(&text), Ok(saved));
        let first = text.split("\"vm1\"").next().unwrap();
        assert!(
            !first.contains("max_bounce_bytes")
                && !first.contains("backing_bytes")
                && !first.contains("enabled")
        );
    }

    #[test]
    fn minimal_entry_is_enabled() {
        let text =
            r#"{"version": 1, "devices": [{"name": "a", "backing": "/dev/x", "mode": "off"}]}"#;
        let saved = Saved::parse(text).unwrap();
        assert!(saved.devices[0].enabled && !saved.devices[0].trace);
        assert_eq!(saved.devices[0].max_bounce_bytes, None);
    }

    #[test]
    fn refuses_bad_files() {
        let bad = [
            "",
            "{}",
            r#"{"version": 2, "devices": []}"#,
            r#"{"version": 1, "devices": [], "extra": 1}"#,
            r#"{"version": 1, "devices": [{"name": "a", "backing": "dev/x", "mode": "off"}]}"#,
            r#"{"version": 1, "devices": [{"name": "a/b", "backing": "/dev/x", "mode": "off"}]}"#,
            r#"{"version": 1, "devices": [{"name": "", "backing": "/dev/x", "mode": "off"}]}"#,
            r#"{"version": 1, "devices": [{"name": "a", "backing": "/dev/x", "mode": "off", "colour": 1}]}"#,
            r#"{"version": 1, "devices": [{"name": "a", "backing": "/dev/x", "mode": "off"},
                {"name": "a", "backing": "/dev/y", "mode": "off"}]}"#,
        ];
        for text in bad {
            assert!(Saved::parse(text).is_err(), "accepted {text}");
        }
    }
}
