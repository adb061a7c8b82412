// SPDX-License-Identifier: GPL-2.0

//! blkbouncectl: creates, lists, saves and restores blkbounce devices through configfs.
//!
//! ```text
//! blkbouncectl create NAME --backing DEV [--mode MODE] [--max-bounce-bytes N]
//! blkbouncectl remove NAME
//! blkbouncectl list
//! blkbouncectl stats NAME [--json]
//! blkbouncectl save [FILE]
//! blkbouncectl restore [FILE] [--wait SECONDS]
//! blkbouncectl name DISK
//! ```
//!
//! FILE is `/etc/blkbounce.json` by default. Errors name the step and configfs's errno;
//! the kernel log has the module's reason. The exit status is 1 if anything failed.

mod configfs;
mod errno;
mod restore_plan;
mod saved;
mod signals_deferred;
mod stable_name;

use clap::{Parser, Subcommand};
use configfs::{stat, Configfs, Failure, Spec};
use restore_plan::Step;
use saved::{Saved, SavedDevice};
use signals_deferred::SignalsDeferred;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "blkbouncectl",
    version,
    about = "Manage blkbounce devices (configfs)"
)]
struct Cli {
    /// The module's configfs directory.
    #[arg(long, default_value = configfs::ROOT, global = true)]
    configfs: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create and enable a device over a backing block device.
    Create {
        name: String,
        /// The backing block device.
        #[arg(long)]
        backing: String,
        /// auto (the module's default), always, optimistic or off.
        #[arg(long)]
        mode: Option<String>,
        /// The cap on bounce memory in flight, in bytes.
        #[arg(long)]
        max_bounce_bytes: Option<u64>,
    },
    /// Disable and remove a device.
    Remove { name: String },
    /// List the devices with their main counters.
    List,
    /// Print a device's counters.
    Stats {
        name: String,
        /// As one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Save every device, by the stable name of its backing device.
    Save {
        #[arg(default_value = saved::DEFAULT_FILE)]
        file: PathBuf,
    },
    /// Create the saved devices that do not exist; leave those that do.
    Restore {
        #[arg(default_value = saved::DEFAULT_FILE)]
        file: PathBuf,
        /// Wait up to this many seconds for missing backing devices to appear.
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// Print the name of the device whose disk is DISK (blkbounce0); udev's rule makes
    /// /dev/blkbounce/NAME with it.
    Name { disk: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = Configfs::open(&cli.configfs).and_then(|cfs| run(&cfs, cli.command));
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("blkbouncectl: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command; `Ok(false)` when it reported failures of its own.
fn run(cfs: &Configfs, command: Command) -> Result<bool, Failure> {
    let name = match &command {
        Command::Create { name, .. } | Command::Remove { name } | Command::Stats { name, .. } => {
            Some(name)
        }
        _ => None,
    };
    if let Some(name) = name.filter(|n| !saved::valid_name(n)) {
        return Err(Failure {
            what: format!("{name:?} is not a device name"),
            err: std::io::Error::from_raw_os_error(22),
        });
    }
    match command {
        Command::Create {
            name,
            backing,
            mode,
            max_bounce_bytes,
        } => {
            let spec = Spec {
                backing,
                mode,
                max_bounce_bytes,
                trace: false,
                enable: true,
            };
            let _deferred = SignalsDeferred::new();
            let device = cfs.create(&name, &spec)?;
            println!(
                "{name}: /dev/{} over {} (mode {})",
                device.disk, device.backing, device.mode
            );
        }
        Command::Remove { name } => {
            let _deferred = SignalsDeferred::new();
            cfs.remove(&name)?;
            println!("{name}: removed");
        }
        Command::List => list(cfs)?,
        Command::Stats { name, json } => {
            let stats = cfs.stats(&name)?;
            if json {
                let map: serde_json::Map<String, serde_json::Value> =
                    stats.into_iter().map(|(k, v)| (k, v.into())).collect();
                println!("{}", serde_json::Value::Object(map));
            } else {
                for (k, v) in stats {
                    println!("{k} {v}");
                }
            }
        }
        Command::Save { file } => save(cfs, &file)?,
        Command::Restore { file, wait } => return restore(cfs, &file, wait),
        Command::Name { disk } => {
            // Only the `disk` files, each on its own: a device going away meanwhile is
            // not this disk's.
            let disk = disk.trim_start_matches("/dev/");
            let names = cfs.names()?;
            match names
                .iter()
                .find(|n| cfs.read(n, "disk").is_ok_and(|d| d == disk))
            {
                Some(name) => println!("{name}"),
                None => {
                    eprintln!("blkbouncectl: no device has the disk {disk}");
                    return Ok(false);
                }
            }
        }
    }
    Ok(true)
}

fn list(cfs: &Configfs) -> Result<(), Failure> {
    let devices = cfs.devices()?;
    let width = devices
        .iter()
        .map(|d| d.backing.len())
        .max()
        .unwrap_or(0)
        .max(7);
    let row = |cells: [&str; 9]| {
        println!(
            "{:<12} {:<width$} {:<10} {:<16} {:>10} {:>10} {:>12} {:>8} {:>7}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            cells[6],
            cells[7],
            cells[8]
        )
    };
    row([
        "NAME",
        "BACKING",
        "MODE",
        "DISK",
        "BOUNCED:R",
        "BOUNCED:W",
        "PASSED",
        "RETRIED",
        "ERRORS",
    ]);
    for d in devices {
        let stats = cfs.stats(&d.name)?;
        let n = |key: &str| stat(&stats, key).to_string();
        let retried = n("optimistic_retries_read");
        let disk = if d.enabled {
            format!("/dev/{}", d.disk)
        } else {
            "(disabled)".into()
        };
        row([
            &d.name,
            &d.backing,
            &d.mode,
            &disk,
            &n("bounced_read_bios"),
            &n("bounced_write_bios"),
            &n("passthrough_bios"),
            &retried,
            &n("errors"),
        ]);
    }
    Ok(())
}

/// What `save` keeps of a device: everything it was made with, the cap included.
fn saved_device(d: &configfs::Device) -> SavedDevice {
    let backing = stable_name::stable_path(Path::new(&d.backing), Path::new(stable_name::BY_ID))
        .unwrap_or_else(|_| PathBuf::from(&d.backing));
    SavedDevice {
        name: d.name.clone(),
        backing: backing.to_string_lossy().into_owned(),
        mode: d.mode.clone(),
        max_bounce_bytes: Some(d.max_bounce_bytes),
        backing_bytes: device_bytes(Path::new(&d.backing)),
        trace: d.trace,
        enabled: d.enabled,
    }
}

fn save(cfs: &Configfs, file: &Path) -> Result<(), Failure> {
    let mut devices = cfs.devices()?;
    // A directory whose backing was never written cannot be made again.
    devices.retain(|d| {
        let keep = !d.backing.is_empty();
        if !keep {
            eprintln!("blkbouncectl: {}: no backing device, not saved", d.name);
        }
        keep
    });
    for d in &devices {
        if !d.backing.starts_with(stable_name::BY_ID) && saved_device(d).backing == d.backing {
            eprintln!(
                "blkbouncectl: {}: {} has no /dev/disk/by-id name; saved as it is, which may name another device after a reboot",
                d.name, d.backing
            );
        }
    }
    let saved = Saved {
        version: saved::VERSION,
        devices: devices.iter().map(saved_device).collect(),
    };
    write_durably(file, &saved.to_text())?;
    for d in &saved.devices {
        println!("{}: saved, backing {}, mode {}", d.name, d.backing, d.mode);
    }
    println!(
        "{} device(s) saved to {}",
        saved.devices.len(),
        file.display()
    );
    Ok(())
}

/// Writes `text` to a new file beside `file`, flushes it, renames it over `file` and
/// flushes the directory: a crash leaves the old file or the new one, whole.
fn write_durably(file: &Path, text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let fail = |what: &str| {
        let what = format!("{what} {}", file.display());
        move |err| Failure { what, err }
    };
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        })
        .map_err(fail("writing"))
        .and_then(|()| fs::rename(&tmp, file).map_err(fail("replacing")));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(fail("flushing the directory of"))
}

fn resolve(path: &Path) -> Option<PathBuf> {
    fs::canonicalize(path).ok()
}

/// The size in bytes of the block device at `path` (links followed), from sysfs.
fn device_bytes(path: &Path) -> Option<u64> {
    let dev = resolve(path)?;
    let name = dev.file_name()?.to_str()?;
    let sectors = fs::read_to_string(format!("/sys/class/block/{name}/size")).ok()?;
    sectors.trim().parse::<u64>().ok().map(|s| s * 512)
}

fn restore(cfs: &Configfs, file: &Path, wait: u64) -> Result<bool, Failure> {
    let text = fs::read_to_string(file).map_err(|err| Failure {
        what: format!("reading {}", file.display()),
        err,
    })?;
    let saved = Saved::parse(&text).map_err(|why| Failure {
        what: format!("{}: {why}", file.display()),
        err: std::io::Error::from_raw_os_error(22),
    })?;
    // Backing devices may still be appearing at boot.
    let deadline = Instant::now() + Duration::from_secs(wait);
    while saved
        .devices
        .iter()
        .any(|d| resolve(Path::new(&d.backing)).is_none())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut ok = true;
    for step in restore_plan::plan(&saved.devices, &cfs.devices()?, resolve, device_bytes) {
        // A device is made, or enabled, and reported before a signal ends the restore.
        let _deferred = SignalsDeferred::new();
        match step {
            Step::Create(d, _) => {
                let spec = Spec {
                    backing: d.backing.clone(),
                    mode: Some(d.mode.clone()),
                    max_bounce_bytes: d.max_bounce_bytes,
                    trace: d.trace,
                    enable: d.enabled,
                };
                match cfs.create(&d.name, &spec) {
                    Ok(made) if made.enabled => {
                        println!(
                            "{}: created /dev/{} over {} (mode {})",
                            d.name, made.disk, d.backing, d.mode
                        )
                    }
                    Ok(_) => println!(
                        "{}: created, disabled, over {} (mode {})",
                        d.name, d.backing, d.mode
                    ),
                    Err(e) => {
                        eprintln!("blkbouncectl: {}: not restored: {e}", d.name);
                        ok = false;
                    }
                }
            }
            Step::Enable(d) => match cfs.configure_and_enable(&d.name, d.max_bounce_bytes, d.trace)
            {
                Ok(()) => println!("{}: enabled as saved", d.name),
                Err(e) => {
                    eprintln!("blkbouncectl: {}: not restored: {e}", d.name);
                    ok = false;
                }
            },
            Step::Unchanged(name) => println!("{name}: already as saved, unchanged"),
            Step::NoBacking(name, backing) => {
                eprintln!(
                    "blkbouncectl: {name}: not restored: backing {backing}: {}",
                    errno::describe(&std::io::Error::from_raw_os_error(2))
                );
                ok = false;
            }
            Step::OtherSize(name, backing, now, saved) => {
                eprintln!(
                    "blkbouncectl: {name}: not restored: backing {backing} has {now} bytes, {saved} when saved: another disk, or resized (save again)"
                );
                ok = false;
            }
            Step::Differs(name, why) => {
                eprintln!("blkbouncectl: {name}: not restored: a device of that name exists and {why}; left as it is");
                ok = false;
            }
        }
    }
    Ok(ok)
}
