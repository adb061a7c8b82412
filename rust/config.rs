// SPDX-License-Identifier: GPL-2.0

//! The configfs interface: `/sys/kernel/config/blkbounce/<name>/{backing,mode,enable,disk,
//! stats,trace,max_bounce_bytes}`.

use crate::{
    blk::{
        configfs_pin::{ItemPin, SubsystemSlot},
        disk::Disk,
        lower::LowerDevice,
        page_reserve::lowmem_bytes,
    },
    chunking::MAX_BOUNCE_BYTES,
    device::BounceDevice,
    disk_index::DiskIndexPool,
    mode::Mode,
    stats::StatsSnapshot,
    text,
};
use kernel::{
    configfs::{self, AttributeOperations},
    configfs_attrs,
    fmt::{self, Write as _},
    new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    str::CString,
    sync::{Arc, Mutex},
};

/// State shared by the module and every device directory.
pub(crate) struct Shared {
    /// The registered subsystem, for pinning directories of enabled devices.
    pub(crate) slot: SubsystemSlot,
    /// Disk numbers.
    pub(crate) indices: DiskIndexPool,
}

impl Shared {
    pub(crate) fn new() -> Self {
        Self {
            slot: SubsystemSlot::new(),
            indices: DiskIndexPool::new(),
        }
    }
}

/// Creates the `blkbounce` configfs subsystem.
pub(crate) fn subsystem(shared: Arc<Shared>) -> impl PinInit<configfs::Subsystem<Config>, Error> {
    let item_type = configfs_attrs! {
        container: configfs::Subsystem<Config>,
        data: Config,
        child: DeviceConfig,
        attributes: [
            modes: 0,
        ],
    };
    configfs::Subsystem::new(c"blkbounce", item_type, try_pin_init!(Config { shared }))
}

/// The subsystem's own directory.
#[pin_data]
pub(crate) struct Config {
    shared: Arc<Shared>,
}

/// `modes`: the modes a device can be given.
#[vtable]
impl AttributeOperations<0> for Config {
    type Data = Config;

    fn show(_this: &Config, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut writer = kernel::str::Formatter::new(page);
        for mode in Mode::ALL {
            writer.write_fmt(fmt!("{mode}\n"))?;
        }
        Ok(writer.bytes_written())
    }
}

#[vtable]
impl configfs::GroupOperations for Config {
    type Child = DeviceConfig;

    fn make_group(
        &self,
        name: &CStr,
    ) -> Result<impl PinInit<configfs::Group<DeviceConfig>, Error>> {
        let item_type = configfs_attrs! {
            container: configfs::Group<DeviceConfig>,
            data: DeviceConfig,
            attributes: [
                backing: 0,
                mode: 1,
                enable: 2,
                disk: 3,
                stats: 4,
                trace: 5,
                max_bounce_bytes: 6,
            ],
        };
        Ok(configfs::Group::new(
            name.try_into()?,
            item_type,
            try_pin_init!(DeviceConfig {
                name: name.try_into()?,
                shared: self.shared.clone(),
                state <- new_mutex!(DeviceState {
                    backing: None,
                    mode: Mode::Auto,
                    trace: false,
                    max_bounce_bytes: default_max_bounce_bytes(),
                    enabled: None,
                }),
            }),
        ))
    }
}

/// One device directory.
#[pin_data]
pub(crate) struct DeviceConfig {
    /// The directory's name, used in messages.
    name: CString,
    shared: Arc<Shared>,
    #[pin]
    state: Mutex<DeviceState>,
}

struct DeviceState {
    backing: Option<CString>,
    mode: Mode,
    trace: bool,
    max_bounce_bytes: u64,
    enabled: Option<Enabled>,
}

/// Returns this module, whose disks blkbounce does not stack on.
fn this_module() -> &'static ThisModule {
    kernel::module::this_module::<crate::LocalModule>()
}

/// The least default cap: 16 MiB, sixteen of the largest bounce bios.
const MIN_DEFAULT_MAX_BOUNCE_BYTES: u64 = 16 << 20;

/// The default cap on bounce memory in flight, per device: 2 % of lowmem (dm-crypt's
/// `DM_CRYPT_MEMORY_PERCENT`, which dm-crypt shares among all its devices), but at least
/// [`MIN_DEFAULT_MAX_BOUNCE_BYTES`].
fn default_max_bounce_bytes() -> u64 {
    (lowmem_bytes() / 50).max(MIN_DEFAULT_MAX_BOUNCE_BYTES)
}

/// What exists while a device is enabled. Fields drop in order: the disk goes first.
struct Enabled {
    disk: Disk<BounceDevice>,
    _pin: ItemPin,
    _index: DiskIndex,
}

/// A disk number taken from the pool, given back on drop.
struct DiskIndex {
    shared: Arc<Shared>,
    index: u32,
}

impl Drop for DiskIndex {
    fn drop(&mut self) {
        self.shared.indices.give_back(self.index);
    }
}

impl DeviceConfig {
    fn enable(&self, state: &mut DeviceState) -> Result {
        let name: &CStr = &self.name;
        if let Some(enabled) = &state.enabled {
            pr_err!(
                "{name}: already enabled as {}\n",
                enabled.disk.driver().name()
            );
            return Err(EBUSY);
        }
        let Some(path) = &state.backing else {
            pr_err!("{name}: cannot enable: no backing device (write its path to backing first)\n");
            return Err(EINVAL);
        };
        let index = DiskIndex {
            index: self.shared.indices.take().inspect_err(|_| {
                pr_err!(
                    "{name}: cannot enable: all {} disk numbers in use\n",
                    crate::disk_index::MAX_DISKS
                );
            })?,
            shared: self.shared.clone(),
        };
        let disk_name = CString::try_from_fmt(fmt!("blkbounce{}", index.index))?;
        let lower = LowerDevice::open(path, self).inspect_err(|e| {
            pr_err!("{name}: cannot open backing {}: {e:?}\n", &**path);
        })?;
        if lower.is_zoned() {
            pr_err!(
                "{name}: cannot enable: backing {} is zoned; blkbounce does not stack on zoned devices\n",
                &**path
            );
            return Err(EOPNOTSUPP);
        }
        // The node may have been given to a blkbounce disk since `backing` was written.
        if lower.is_of(this_module()) {
            pr_err!(
                "{name}: cannot enable: backing {} is a blkbounce disk\n",
                &**path
            );
            return Err(ELOOP);
        }
        let integrity = lower.integrity();
        if let Some(reason) = state.mode.unsupported_by(integrity) {
            pr_err!(
                "{name}: cannot enable: mode {} needs a backing device that checks protection information; {} {reason}\n",
                state.mode,
                &**path
            );
            return Err(EOPNOTSUPP);
        }
        // Pinned first: once the disk exists, udev may open it, and a later failure would
        // have to wait for that to end.
        let pin = ItemPin::new(&self.shared.slot, name).inspect_err(|e| {
            pr_err!("{name}: cannot pin the configfs directory: {e:?}\n");
        })?;
        let disk = BounceDevice::create(
            disk_name,
            lower,
            state.mode,
            state.trace,
            state.max_bounce_bytes,
        )
        .inspect_err(|e| {
            pr_err!("{name}: cannot create the disk: {e:?}\n");
        })?;
        pr_info!(
            "{name}: enabled {} over {} (mode {})\n",
            disk.driver().name(),
            &**path,
            state.mode
        );
        if integrity.guard {
            // The disk stacks no integrity profile: see the README's "What blkbounce does
            // not stack on, and what it does not carry".
            pr_info!(
                "{name}: {} has no integrity profile: protection information from above it (io_uring's PI attribute) is refused with EINVAL, and md and dm stack none over it; {} {}\n",
                disk.driver().name(),
                &**path,
                if integrity.generated && integrity.verified {
                    "generates and verifies its own over the data sent down"
                } else {
                    "has its own, with write_generate or read_verify off"
                }
            );
        }
        state.enabled = Some(Enabled {
            disk,
            _pin: pin,
            _index: index,
        });
        Ok(())
    }

    fn disable(&self, state: &mut DeviceState) -> Result {
        let Some(enabled) = &state.enabled else {
            return Ok(());
        };
        // From here on opens fail, so the disk stays closed until it is gone.
        enabled.disk.begin_removal().inspect_err(|_| {
            pr_err!(
                "{}: cannot disable: {} is open\n",
                &*self.name,
                enabled.disk.driver().name()
            );
        })?;
        drop(state.enabled.take());
        pr_info!("{}: disabled\n", &*self.name);
        Ok(())
    }

    /// Refuses a change of a setting while the device is enabled.
    fn check_disabled(&self, state: &DeviceState, attribute: &str) -> Result {
        if state.enabled.is_some() {
            pr_err!("{}: cannot change {attribute} while enabled\n", &*self.name);
            return Err(EBUSY);
        }
        Ok(())
    }
}

/// Writes `value` and a newline into an attribute page.
fn show_line(page: &mut [u8; PAGE_SIZE], value: impl fmt::Display) -> Result<usize> {
    let mut writer = kernel::str::Formatter::new(page);
    writer.write_fmt(fmt!("{value}\n"))?;
    Ok(writer.bytes_written())
}

/// `backing`: the path of the lower block device.
#[vtable]
impl AttributeOperations<0> for DeviceConfig {
    type Data = DeviceConfig;

    fn show(this: &DeviceConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let state = this.state.lock();
        show_line(
            page,
            state
                .backing
                .as_deref()
                .and_then(|p| p.to_str().ok())
                .unwrap_or(""),
        )
    }

    fn store(this: &DeviceConfig, page: &[u8]) -> Result {
        let name: &CStr = &this.name;
        let mut state = this.state.lock();
        this.check_disabled(&state, "backing")?;
        let value = text::value(page).inspect_err(|_| {
            pr_err!(
                "{name}: backing: expected a path of at most {} bytes\n",
                text::MAX_VALUE_LEN
            );
        })?;
        if !value.starts_with(b"/") {
            pr_err!("{name}: backing: not an absolute path\n");
            return Err(EINVAL);
        }
        let path = text::to_cstring(value)?;
        let inspection = LowerDevice::inspect(&path, this_module()).inspect_err(|e| {
            pr_err!("{name}: backing {}: not a block device: {e:?}\n", &*path);
        })?;
        if inspection.is_ours {
            pr_err!(
                "{name}: backing {}: is a blkbounce disk; blkbounce does not stack on itself\n",
                &*path
            );
            return Err(ELOOP);
        }
        if inspection.is_zoned {
            pr_err!(
                "{name}: backing {}: is zoned; blkbounce does not stack on zoned devices\n",
                &*path
            );
            return Err(EOPNOTSUPP);
        }
        if inspection.is_held {
            pr_err!("{name}: backing {}: held exclusively (mounted, or used by md, dm or another blkbounce device)\n", &*path);
            return Err(EBUSY);
        }
        state.backing = Some(path);
        Ok(())
    }
}

/// `mode`: `auto`, `always`, `optimistic` or `off`.
#[vtable]
impl AttributeOperations<1> for DeviceConfig {
    type Data = DeviceConfig;

    fn show(this: &DeviceConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        show_line(page, this.state.lock().mode)
    }

    fn store(this: &DeviceConfig, page: &[u8]) -> Result {
        let name: &CStr = &this.name;
        let mode = Mode::parse(page).inspect_err(|_| {
            pr_err!("{name}: mode: expected auto, always, optimistic or off\n");
        })?;
        let mut state = this.state.lock();
        this.check_disabled(&state, "mode")?;
        state.mode = mode;
        Ok(())
    }
}

/// `enable`: `1` creates the disk, `0` removes it.
#[vtable]
impl AttributeOperations<2> for DeviceConfig {
    type Data = DeviceConfig;

    fn show(this: &DeviceConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        show_line(page, u8::from(this.state.lock().enabled.is_some()))
    }

    fn store(this: &DeviceConfig, page: &[u8]) -> Result {
        let enable = text::bool_value(page).inspect_err(|_| {
            pr_err!(
                "{}: enable: expected a boolean (1, 0, y, n, on, off)\n",
                &*this.name
            );
        })?;
        let mut state = this.state.lock();
        if enable {
            this.enable(&mut state)
        } else {
            this.disable(&mut state)
        }
    }
}

/// `disk`: the disk's name while enabled, else an empty line.
#[vtable]
impl AttributeOperations<3> for DeviceConfig {
    type Data = DeviceConfig;

    fn show(this: &DeviceConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let state = this.state.lock();
        let disk = state.enabled.as_ref().map(|e| e.disk.driver().name());
        show_line(page, disk.and_then(|n| n.to_str().ok()).unwrap_or(""))
    }
}

/// `stats`: the counters of the enabled device, all zero while disabled.
#[vtable]
impl AttributeOperations<4> for DeviceConfig {
    type Data = DeviceConfig;

    fn show(this: &DeviceConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let snapshot = match &this.state.lock().enabled {
            Some(enabled) => BounceDevice::stats_snapshot(&enabled.disk),
            None => StatsSnapshot::default(),
        };
        let mut writer = kernel::str::Formatter::new(page);
        writer.write_fmt(fmt!("{snapshot}"))?;
        Ok(writer.bytes_written())
    }
}

/// `trace`: `1` logs one rate-limited kernel log line per bio decision, `0` stops.
#[vtable]
impl AttributeOperations<5> for DeviceConfig {
    type Data = DeviceConfig;

    fn show(this: &DeviceConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        show_line(page, u8::from(this.state.lock().trace))
    }

    fn store(this: &DeviceConfig, page: &[u8]) -> Result {
        let trace = text::bool_value(page).inspect_err(|_| {
            pr_err!(
                "{}: trace: expected a boolean (1, 0, y, n, on, off)\n",
                &*this.name
            );
        })?;
        let mut state = this.state.lock();
        state.trace = trace;
        if let Some(enabled) = &state.enabled {
            enabled.disk.driver().set_trace(trace);
        }
        Ok(())
    }
}

/// `max_bounce_bytes`: the most bounce memory the device's bios hold at once, in bytes.
/// Bios over it wait, or fail with `EAGAIN` if they must not. Settable while disabled.
#[vtable]
impl AttributeOperations<6> for DeviceConfig {
    type Data = DeviceConfig;

    fn show(this: &DeviceConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        show_line(page, this.state.lock().max_bounce_bytes)
    }

    fn store(this: &DeviceConfig, page: &[u8]) -> Result {
        let name: &CStr = &this.name;
        let ram = lowmem_bytes();
        let bytes = text::u64_value(page)
            .ok()
            .filter(|b| (u64::from(MAX_BOUNCE_BYTES)..=ram).contains(b))
            .ok_or_else(|| {
                pr_err!(
                    "{name}: max_bounce_bytes: expected a number of bytes from {MAX_BOUNCE_BYTES} (one largest bounce bio) to {ram} (lowmem)\n"
                );
                EINVAL
            })?;
        let mut state = this.state.lock();
        this.check_disabled(&state, "max_bounce_bytes")?;
        state.max_bounce_bytes = bytes;
        Ok(())
    }
}
