// SPDX-License-Identifier: GPL-2.0

//! The module's configfs tree: one directory per device, one file per attribute.

use crate::errno;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where the module's subsystem lives.
pub const ROOT: &str = "/sys/kernel/config/blkbounce";

/// A failed step, with what was asked and the error configfs gave.
#[derive(Debug)]
pub struct Failure {
    pub what: String,
    pub err: io::Error,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, errno::describe(&self.err))
    }
}

fn failure(what: impl Into<String>) -> impl FnOnce(io::Error) -> Failure {
    let what = what.into();
    move |err| Failure { what, err }
}

/// One device as configfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    pub backing: String,
    pub mode: String,
    pub enabled: bool,
    pub disk: String,
    pub max_bounce_bytes: u64,
    pub trace: bool,
}

/// What `create` makes.
#[derive(Debug, Clone)]
pub struct Spec {
    pub backing: String,
    pub mode: Option<String>,
    pub max_bounce_bytes: Option<u64>,
    pub trace: bool,
    pub enable: bool,
}

/// The subsystem's directory.
pub struct Configfs {
    root: PathBuf,
}

impl Configfs {
    /// The tree at `root`; fails with a hint if the module is not loaded.
    pub fn open(root: &Path) -> Result<Self, Failure> {
        if !root.is_dir() {
            return Err(Failure {
                what: format!(
                    "{} (is the module loaded? modprobe blkbounce)",
                    root.display()
                ),
                err: io::Error::from_raw_os_error(2),
            });
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    fn attr(&self, name: &str, attr: &str) -> PathBuf {
        self.root.join(name).join(attr)
    }

    /// The devices' names, sorted.
    pub fn names(&self) -> Result<Vec<String>, Failure> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(failure(self.root.display().to_string()))? {
            let entry = entry.map_err(failure(self.root.display().to_string()))?;
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Reads attribute `attr` of device `name`, without its newline.
    pub fn read(&self, name: &str, attr: &str) -> Result<String, Failure> {
        let text = fs::read_to_string(self.attr(name, attr))
            .map_err(failure(format!("reading {name}/{attr}")))?;
        Ok(text.strip_suffix('\n').unwrap_or(&text).to_string())
    }

    /// Writes `value` to attribute `attr` of device `name`, in one write, as configfs
    /// takes a store. Never creates a file.
    pub fn write(&self, name: &str, attr: &str, value: &str) -> Result<(), Failure> {
        let what = failure(format!("writing {value:?} to {name}/{attr}"));
        let result = fs::OpenOptions::new()
            .write(true)
            .open(self.attr(name, attr))
            .and_then(|mut file| file.write_all(value.as_bytes()));
        result.map_err(what)
    }

    pub fn device(&self, name: &str) -> Result<Device, Failure> {
        let number = |attr: &str| -> Result<u64, Failure> {
            let text = self.read(name, attr)?;
            text.parse().map_err(|_| Failure {
                what: format!("{name}/{attr}: {text:?} is not a number"),
                err: io::Error::from_raw_os_error(22),
            })
        };
        Ok(Device {
            name: name.to_string(),
            backing: self.read(name, "backing")?,
            mode: self.read(name, "mode")?,
            enabled: number("enable")? == 1,
            disk: self.read(name, "disk")?,
            max_bounce_bytes: number("max_bounce_bytes")?,
            trace: number("trace")? == 1,
        })
    }

    pub fn devices(&self) -> Result<Vec<Device>, Failure> {
        self.names()?.iter().map(|n| self.device(n)).collect()
    }

    /// Makes device `name` as `spec` says. On any error, removes what it made, so that no
    /// half-made device stays behind.
    pub fn create(&self, name: &str, spec: &Spec) -> Result<Device, Failure> {
        let dir = self.root.join(name);
        fs::create_dir(&dir).map_err(failure(format!("creating {name}")))?;
        match self.set_up(name, spec) {
            Ok(device) => Ok(device),
            Err(first) => {
                // Enabled already if only the last read failed: the pinned directory
                // cannot go before its disk.
                let _ = self.write(name, "enable", "0");
                if let Err(undo) = fs::remove_dir(&dir) {
                    eprintln!(
                        "blkbouncectl: removing {name} after the failure: {}",
                        errno::describe(&undo)
                    );
                }
                Err(first)
            }
        }
    }

    fn set_up(&self, name: &str, spec: &Spec) -> Result<Device, Failure> {
        self.write(name, "backing", &spec.backing)?;
        if let Some(mode) = &spec.mode {
            self.write(name, "mode", mode)?;
        }
        if let Some(bytes) = spec.max_bounce_bytes {
            self.write(name, "max_bounce_bytes", &bytes.to_string())?;
        }
        if spec.trace {
            self.write(name, "trace", "1")?;
        }
        if spec.enable {
            self.write(name, "enable", "1")?;
        }
        self.device(name)
    }

    /// Sets the cap (if given) and the trace setting of the disabled device `name`, then
    /// enables it.
    pub fn configure_and_enable(
        &self,
        name: &str,
        max_bounce_bytes: Option<u64>,
        trace: bool,
    ) -> Result<(), Failure> {
        if let Some(bytes) = max_bounce_bytes {
            self.write(name, "max_bounce_bytes", &bytes.to_string())?;
        }
        self.write(name, "trace", if trace { "1" } else { "0" })?;
        self.write(name, "enable", "1")
    }

    /// Disables device `name` and removes its directory.
    pub fn remove(&self, name: &str) -> Result<(), Failure> {
        if !self.root.join(name).is_dir() {
            return Err(Failure {
                what: format!("removing {name}"),
                err: io::Error::from_raw_os_error(2),
            });
        }
        self.write(name, "enable", "0")?;
        fs::remove_dir(self.root.join(name)).map_err(failure(format!("removing {name}")))
    }

    /// The counters of device `name`, in the module's order.
    pub fn stats(&self, name: &str) -> Result<Vec<(String, u64)>, Failure> {
        let text = self.read(name, "stats")?;
        Ok(parse_stats(&text))
    }
}

/// Parses `key value` lines; lines that are not are left out.
pub fn parse_stats(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(' ')?;
            Some((key.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// Returns counter `key` of parsed stats, 0 if absent (an older module).
pub fn stat(stats: &[(String, u64)], key: &str) -> u64 {
    stats.iter().find(|(k, _)| k == key).map_or(0, |(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stats() {
        let stats = parse_stats("bounced_read_bios 3\nerrors 0\nnonsense\nbad x\n");
        assert_eq!(
            stats,
            vec![("bounced_read_bios".into(), 3), ("errors".into(), 0)]
        );
        assert_eq!(stat(&stats, "bounced_read_bios"), 3);
        assert_eq!(stat(&stats, "optimistic_retries_read"), 0);
    }

    /// A fake tree: directories and files as configfs shows them. Writes that the module
    /// would refuse cannot be faked with plain files, so refusals are tested in the VM.
    #[test]
    fn create_removes_what_it_made_on_error() {
        let root = std::env::temp_dir().join(format!("blkbouncectl-cfs-{}", std::process::id()));
        fs::create_dir_all(&root).unwrap();
        let cfs = Configfs::open(&root).unwrap();
        // No attribute files exist in a plain directory: the first write fails (ENOENT is
        // what a plain directory gives; configfs would have them), and the directory goes.
        let spec = Spec {
            backing: "/dev/x".into(),
            mode: None,
            max_bounce_bytes: None,
            trace: false,
            enable: true,
        };
        let err = cfs.create("vm0", &spec).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("writing \"/dev/x\" to vm0/backing"));
        assert!(!root.join("vm0").exists());
        fs::remove_dir_all(&root).unwrap();
    }
}
