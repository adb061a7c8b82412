// SPDX-License-Identifier: GPL-2.0

//! pi-meta: one `O_DIRECT` write that carries its own protection information, through
//! io_uring's PI attribute (`IORING_RW_ATTR_FLAG_PI`).
//!
//! ```text
//! pi-meta --dev PATH [--block N] [--bad-guard]
//! ```
//!
//! Writes one 4096-byte block (default block 1) with a T10 DIF type 1 tuple computed over
//! it (CRC-T10DIF guard, application tag 0, reference tag the block number), then reads it
//! back without metadata, so that the kernel verifies the stored tuple. Prints
//! `write=<result> read=<result>`, each `ok` or the errno's name, and exits 0 whatever
//! they are: the caller decides what each device should do. A device without an
//! integrity profile refuses the write with `EINVAL`.
//!
//! With `--bad-guard` the tuple's guard is wrong, and the write asks for no checks, so a
//! PI device stores it as given: every later read of the block that the kernel verifies
//! fails with `EILSEQ`, whatever path it takes. A clean write of the block repairs it.

use blkbounce_tests::{args::Args, buffer::Buffer, device, pattern};
use std::io;
use std::os::unix::io::AsRawFd;
use std::process::ExitCode;

const BLOCK: usize = 4096;
const IORING_OP_READ: u8 = 22;
const IORING_OP_WRITE: u8 = 23;
const IORING_ENTER_GETEVENTS: u32 = 1;
const IORING_OFF_SQ_RING: i64 = 0;
const IORING_OFF_CQ_RING: i64 = 0x8000000;
const IORING_OFF_SQES: i64 = 0x10000000;
const IORING_RW_ATTR_FLAG_PI: u64 = 1;

#[repr(C)]
#[derive(Default)]
struct SqringOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    flags: u32,
    dropped: u32,
    array: u32,
    resv1: u32,
    user_addr: u64,
}

#[repr(C)]
#[derive(Default)]
struct CqringOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    overflow: u32,
    cqes: u32,
    flags: u32,
    resv1: u32,
    user_addr: u64,
}

#[repr(C)]
#[derive(Default)]
struct Params {
    sq_entries: u32,
    cq_entries: u32,
    flags: u32,
    sq_thread_cpu: u32,
    sq_thread_idle: u32,
    features: u32,
    wq_fd: u32,
    resv: [u32; 3],
    sq_off: SqringOffsets,
    cq_off: CqringOffsets,
}

#[repr(C)]
#[derive(Default)]
struct Sqe {
    opcode: u8,
    flags: u8,
    ioprio: u16,
    fd: i32,
    off: u64,
    addr: u64,
    len: u32,
    rw_flags: u32,
    user_data: u64,
    buf_index: u16,
    personality: u16,
    file_index: i32,
    attr_ptr: u64,
    attr_type_mask: u64,
}

/// `struct io_uring_attr_pi`.
#[repr(C)]
struct AttrPi {
    flags: u16,
    app_tag: u16,
    len: u32,
    addr: u64,
    seed: u64,
    rsvd: u64,
}

/// A ring of one entry, used for one I/O at a time.
struct Ring {
    fd: i32,
    params: Params,
    sq: *mut u8,
    sq_len: usize,
    cq: *mut u8,
    cq_len: usize,
    sqes: *mut Sqe,
}

fn map(fd: i32, len: usize, offset: i64) -> io::Result<*mut u8> {
    // SAFETY: A new shared mapping of the ring's memory at an address the kernel picks.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd,
            offset,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p.cast())
}

impl Ring {
    fn new() -> io::Result<Self> {
        let mut params = Params::default();
        // SAFETY: `io_uring_setup` fills `params`, which has the kernel's layout.
        let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, &mut params) } as i32;
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let sq_len = params.sq_off.array as usize + params.sq_entries as usize * 4;
        let cq_len = params.cq_off.cqes as usize + params.cq_entries as usize * 16;
        let sq = map(fd, sq_len, IORING_OFF_SQ_RING)?;
        let cq = map(fd, cq_len, IORING_OFF_CQ_RING)?;
        let sqes = map(fd, params.sq_entries as usize * 64, IORING_OFF_SQES)?.cast();
        Ok(Self {
            fd,
            params,
            sq,
            sq_len,
            cq,
            cq_len,
            sqes,
        })
    }

    fn u32_at(base: *mut u8, offset: u32) -> &'static std::sync::atomic::AtomicU32 {
        // SAFETY: The offsets come from the kernel and lie within the mapped rings.
        unsafe { &*base.add(offset as usize).cast() }
    }

    /// Runs one I/O and returns its result (bytes, or a negative errno).
    fn run(&mut self, sqe: Sqe) -> io::Result<i32> {
        use std::sync::atomic::Ordering::{Acquire, Release};
        let (sq_off, cq_off) = (&self.params.sq_off, &self.params.cq_off);
        let tail = Self::u32_at(self.sq, sq_off.tail).load(Acquire);
        let mask = Self::u32_at(self.sq, sq_off.ring_mask).load(Acquire);
        let slot = tail & mask;
        // SAFETY: The ring has `sq_entries` SQEs and array entries; `slot` is below that.
        unsafe {
            self.sqes.add(slot as usize).write(sqe);
            *self
                .sq
                .add(sq_off.array as usize)
                .cast::<u32>()
                .add(slot as usize) = slot;
        }
        Self::u32_at(self.sq, sq_off.tail).store(tail.wrapping_add(1), Release);
        // SAFETY: One submission, waiting for one completion.
        let n = unsafe {
            libc::syscall(
                libc::SYS_io_uring_enter,
                self.fd,
                1u32,
                1u32,
                IORING_ENTER_GETEVENTS,
                std::ptr::null::<u8>(),
                0usize,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let head = Self::u32_at(self.cq, cq_off.head).load(Acquire);
        let cq_mask = Self::u32_at(self.cq, cq_off.ring_mask).load(Acquire);
        // SAFETY: A completion is there (the call waited for it); `res` is at offset 8.
        let res = unsafe {
            *self
                .cq
                .add(cq_off.cqes as usize + (head & cq_mask) as usize * 16 + 8)
                .cast::<i32>()
        };
        Self::u32_at(self.cq, cq_off.head).store(head.wrapping_add(1), Release);
        Ok(res)
    }
}

impl Ring {
    /// Reads or writes one block at `offset` of `fd` from or into `buf`, with `pi` as its
    /// protection information if given.
    fn block_io(
        &mut self,
        opcode: u8,
        fd: i32,
        offset: u64,
        buf: *mut u8,
        pi: Option<&AttrPi>,
    ) -> io::Result<i32> {
        self.run(Sqe {
            opcode,
            fd,
            off: offset,
            addr: buf as u64,
            len: BLOCK as u32,
            attr_ptr: pi.map_or(0, |pi| pi as *const AttrPi as u64),
            attr_type_mask: if pi.is_some() {
                IORING_RW_ATTR_FLAG_PI
            } else {
                0
            },
            ..Sqe::default()
        })
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: The mappings and the descriptor were made in `new`.
        unsafe {
            libc::munmap(self.sq.cast(), self.sq_len);
            libc::munmap(self.cq.cast(), self.cq_len);
            libc::munmap(self.sqes.cast(), self.params.sq_entries as usize * 64);
            libc::close(self.fd);
        }
    }
}

/// CRC-T10DIF (polynomial 0x8bb7, no reflection, initial value 0).
fn crc_t10dif(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x8bb7
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn result(res: i32) -> String {
    match res {
        r if r == BLOCK as i32 => "ok".into(),
        r if r >= 0 => format!("short({r})"),
        r => match -r {
            libc::EINVAL => "EINVAL".into(),
            libc::EILSEQ => "EILSEQ".into(),
            libc::EIO => "EIO".into(),
            libc::EOPNOTSUPP => "EOPNOTSUPP".into(),
            e => format!("errno{e}"),
        },
    }
}

fn run() -> Result<(), String> {
    let args = Args::parse(&["bad-guard"])?;
    let path = args.required("dev")?;
    let block: u64 = args.number("block", 1)?;
    let file = device::open(path, true).map_err(|e| format!("{path}: {e}"))?;
    let mut ring = Ring::new().map_err(|e| format!("io_uring_setup: {e}"))?;

    let mut data = Buffer::new(BLOCK);
    pattern::fill(data.bytes_mut(), 7, block * BLOCK as u64);
    let mut guard = crc_t10dif(data.bytes_mut());
    if args.flag("bad-guard") {
        guard = !guard;
    }
    let mut tuple = Buffer::new(8);
    let t = tuple.bytes_mut();
    t[0..2].copy_from_slice(&guard.to_be_bytes());
    t[2..4].copy_from_slice(&0u16.to_be_bytes());
    t[4..8].copy_from_slice(&(block as u32).to_be_bytes());
    let pi = AttrPi {
        flags: 0,
        app_tag: 0,
        len: 8,
        addr: tuple.as_ptr() as u64,
        seed: 0,
        rsvd: 0,
    };
    let fd = file.as_raw_fd();
    let offset = block * BLOCK as u64;
    let write = ring
        .block_io(IORING_OP_WRITE, fd, offset, data.as_ptr(), Some(&pi))
        .map_err(|e| format!("io_uring_enter: {e}"))?;
    let back = Buffer::new(BLOCK);
    let read = ring
        .block_io(IORING_OP_READ, fd, offset, back.as_ptr(), None)
        .map_err(|e| format!("io_uring_enter: {e}"))?;
    println!(
        "pi-meta dev={path} write={} read={}",
        result(write),
        result(read)
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pi-meta: {e}");
            ExitCode::from(2)
        }
    }
}
