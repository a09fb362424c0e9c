//! The soak: printcam serving two cameras while six clients open and close
//! streams for months' worth of churn, compressed. Each client picks a
//! camera, a rate of 2–15 fps and a length of 0.5–6 s, watches, hangs up
//! and starts again; a seventh asks for a snapshot every 100 ms. Every
//! `--every` seconds it prints printcam's anonymous memory
//! (/proc/PID/smaps_rollup), RSS, threads, open fds and glibc's malloc
//! arenas (the main one and those in /proc/PID/maps). The verdict: after
//! the warm-up anonymous memory grows by at most 256 KB, and once the
//! clients are gone threads and fds are back where they were before them.
//!
//! ```sh
//! cargo run --release --example bench -- soak --minutes 60 [--warmup-minutes 10] [--every 30]
//! ```
//!
//! bench/soak.sh runs it for the glibc and the static musl build.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::FromRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::{cpu_ms, http, proc_status, Camera, Printcam, Res, IO_TIMEOUT};

/// glibc's thread arenas, counted from the memory map (none on musl).
#[path = "../../tests/support/arenas.rs"]
mod arenas;

const CLIENTS: u8 = 6;
const SNAPSHOT_EVERY: Duration = Duration::from_millis(100);
/// What anonymous memory may grow by after the warm-up.
const GROWTH_BUDGET_KB: u64 = 256;
/// Longer than printcam's `--grace 5`, so every upstream has closed.
const SETTLE: Duration = Duration::from_secs(8);

struct Options {
    length: Duration,
    warmup: Duration,
    every: Duration,
}

fn minutes(flag: &str, value: Option<&String>) -> Res<Duration> {
    value
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|m| m.is_finite() && *m > 0.0)
        .map(|m| Duration::from_secs_f64(m * 60.0))
        .ok_or_else(|| format!("{flag} takes a number of minutes > 0"))
}

fn options(args: &[String]) -> Res<Options> {
    let mut length = Duration::from_secs(60 * 60);
    let mut warmup = None;
    let mut every = Duration::from_secs(30);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--minutes" => length = minutes(flag, it.next())?,
            "--warmup-minutes" => warmup = Some(minutes(flag, it.next())?),
            "--every" => {
                every = it
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .filter(|s| *s >= 1)
                    .map(Duration::from_secs)
                    .ok_or("--every takes whole seconds >= 1")?
            }
            other => return Err(format!("soak: unknown argument {other:?}")),
        }
    }
    // A quarter of the run, at most 10 minutes, unless told.
    let warmup = warmup.unwrap_or_else(|| (length / 4).min(Duration::from_secs(600)));
    if warmup >= length {
        return Err("the warm-up must be shorter than the run".into());
    }
    Ok(Options {
        length,
        warmup,
        every,
    })
}

/// Runs the soak; Ok(false) is a run that missed its verdict.
pub fn run(args: &[String], bin: &Path, jpeg: Vec<u8>, work: &Path) -> Res<bool> {
    let o = options(args)?;
    let camera = Camera::start(jpeg)?;
    let result = soak(&o, bin, work, &camera);
    camera.stop();
    result
}

#[derive(Clone, Copy)]
struct Sample {
    at: Duration,
    anon_kb: u64,
    rss_kb: u64,
    threads: u64,
    fds: usize,
    arenas: usize,
}

fn sample(pid: u32, at: Duration) -> Res<Sample> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .map_err(|e| format!("/proc/{pid}/smaps_rollup: {e}"))?;
    let anon_kb = rollup
        .lines()
        .find_map(|l| l.strip_prefix("Anonymous:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or("no Anonymous: line in smaps_rollup")?;
    let status = proc_status(pid)?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map_err(|e| format!("/proc/{pid}/fd: {e}"))?
        .count();
    let arenas = arenas::thread_arenas(pid).map_err(|e| format!("/proc/{pid}/maps: {e}"))?;
    Ok(Sample {
        at,
        anon_kb,
        rss_kb: status.rss_kb,
        threads: status.threads,
        fds,
        arenas,
    })
}

fn print_sample(s: &Sample, tally: &Tally) {
    println!(
        "{:>6} s | anon {:>6} KB | rss {:>6} KB | threads {:>3} | fds {:>3} | malloc arenas {:>2} | streams {:>6} ({} failed) | snapshots {:>6} ({} failed)",
        s.at.as_secs(),
        s.anon_kb,
        s.rss_kb,
        s.threads,
        s.fds,
        s.arenas + 1,
        tally.streams,
        tally.stream_failures,
        tally.snapshots,
        tally.snapshot_failures
    );
    let _ = std::io::stdout().flush();
}

#[derive(Clone, Default)]
struct Tally {
    streams: u64,
    stream_failures: u64,
    snapshots: u64,
    snapshot_failures: u64,
    last_error: Option<String>,
}

fn lock(t: &Mutex<Tally>) -> std::sync::MutexGuard<'_, Tally> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

fn soak(o: &Options, bin: &Path, work: &Path, camera: &Camera) -> Res<bool> {
    let server = Printcam::start(bin, &work.join("soak.db"))?;
    let ids = [
        server.add_camera(camera.addr, 1)?,
        server.add_camera(camera.addr, 2)?,
    ];
    let pid = server.pid();
    thread::sleep(Duration::from_secs(2));
    let before = sample(pid, Duration::ZERO)?;
    let cpu_before = cpu_ms(pid)?;
    println!(
        "soak: {} for {} min, warm-up {} min, a sample every {} s; before any client: anon {} KB, threads {}, fds {}",
        bin.display(),
        o.length.as_secs_f64() / 60.0,
        o.warmup.as_secs_f64() / 60.0,
        o.every.as_secs(),
        before.anon_kb,
        before.threads,
        before.fds
    );
    let load = Load {
        addr: server.addr,
        ids,
        stop: Arc::new(AtomicBool::new(false)),
        tally: Arc::new(Mutex::new(Tally::default())),
    };
    let (stop, tally) = (Arc::clone(&load.stop), Arc::clone(&load.tally));
    let mut threads = Vec::new();
    for i in 0..CLIENTS {
        threads.push(spawn_client(i, load.clone())?);
    }
    threads.push(spawn_snapshots(load)?);
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut next = o.every;
    while start.elapsed() < o.length {
        thread::sleep(next.saturating_sub(start.elapsed()));
        let s = sample(pid, start.elapsed())?;
        print_sample(&s, &lock(&tally));
        samples.push(s);
        next += o.every;
    }
    let cpu = cpu_ms(pid)? - cpu_before;
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        let _ = t.join();
    }
    thread::sleep(SETTLE);
    let after = sample(pid, start.elapsed())?;
    let tally = lock(&tally).clone();
    println!(
        "soak: clients gone for {} s: anon {} KB, threads {}, fds {}; printcam CPU {:.1} s",
        SETTLE.as_secs(),
        after.anon_kb,
        after.threads,
        after.fds,
        cpu / 1000.0
    );
    if let Some(e) = &tally.last_error {
        println!("soak: last client error: {e}");
    }
    Ok(verdict(o, &samples, &before, &after, &tally))
}

fn verdict(o: &Options, samples: &[Sample], before: &Sample, after: &Sample, t: &Tally) -> bool {
    let warm: Vec<&Sample> = samples.iter().filter(|s| s.at >= o.warmup).collect();
    let (Some(first), Some(last)) = (warm.first(), warm.last()) else {
        println!("soak: FAIL: no sample after the warm-up");
        return false;
    };
    let peak = warm
        .iter()
        .map(|s| s.anon_kb)
        .max()
        .unwrap_or(first.anon_kb);
    let growth = peak.saturating_sub(first.anon_kb);
    let memory_ok = growth <= GROWTH_BUDGET_KB;
    let back = after.threads == before.threads && after.fds == before.fds;
    let served = t.streams > 0 && t.snapshots > 0 && t.stream_failures + t.snapshot_failures == 0;
    println!(
        "soak: after the warm-up anon went {} -> {} KB (peak {} KB, growth {} KB, budget {} KB): {}",
        first.anon_kb,
        last.anon_kb,
        peak,
        growth,
        GROWTH_BUDGET_KB,
        if memory_ok { "met" } else { "MISSED" }
    );
    println!(
        "soak: threads {} -> {}, fds {} -> {} (before the clients -> after them): {}",
        before.threads,
        after.threads,
        before.fds,
        after.fds,
        if back { "back" } else { "NOT BACK" }
    );
    println!(
        "soak: {} streams, {} snapshots, {} failed: {}",
        t.streams,
        t.snapshots,
        t.stream_failures + t.snapshot_failures,
        if served { "served" } else { "FAILURES" }
    );
    let pass = memory_ok && back && served;
    println!("soak: {}", if pass { "PASS" } else { "FAIL" });
    pass
}

/// xorshift64*: enough randomness to vary the clients, reproducibly.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// What the client threads share: where printcam is, the two printers, the
/// stop flag and the counts.
#[derive(Clone)]
struct Load {
    addr: SocketAddr,
    ids: [u64; 2],
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
}

fn spawn_client(i: u8, load: Load) -> Res<JoinHandle<()>> {
    // Each client from its own loopback address, as distinct viewers are.
    let from = Ipv4Addr::new(127, 0, 0, 2 + i);
    thread::Builder::new()
        .name(format!("soak-client-{i}"))
        .spawn(move || {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (u64::from(i) + 1));
            while !load.stop.load(Ordering::SeqCst) {
                let id = load.ids[rng.below(2) as usize];
                let fps = 2 + rng.below(14);
                let hold = Duration::from_millis(500 + rng.below(5_501));
                let watched = watch_for(from, load.addr, id, fps, hold, &load.stop);
                let mut t = lock(&load.tally);
                match watched {
                    Ok(()) => t.streams += 1,
                    Err(e) => {
                        t.stream_failures += 1;
                        t.last_error = Some(format!("client {i}: {e}"));
                    }
                }
            }
        })
        .map_err(|e| e.to_string())
}

/// One viewer: a stream of printer `id` at `fps`, read for `hold`, then
/// closed by hanging up.
fn watch_for(
    from: Ipv4Addr,
    addr: SocketAddr,
    id: u64,
    fps: u64,
    hold: Duration,
    stop: &AtomicBool,
) -> Res<()> {
    let mut s = connect_from(from, addr).map_err(|e| format!("connect from {from}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let request =
        format!("GET /printers/{id}/camera/stream?fps={fps} HTTP/1.1\r\nHost: soak\r\n\r\n");
    s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let until = Instant::now() + hold;
    let mut buf = vec![0u8; 64 * 1024];
    let mut head = Vec::new();
    let mut quiet_since = Instant::now();
    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
        match s.read(&mut buf) {
            Ok(0) => return Err("the stream closed early".into()),
            Ok(n) => {
                quiet_since = Instant::now();
                if head.len() < 12 {
                    head.extend_from_slice(&buf[..n.min(12 - head.len())]);
                    if head.len() == 12 && !head.starts_with(b"HTTP/1.1 200") {
                        return Err(format!("stream: {}", String::from_utf8_lossy(&head)));
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                // 2 fps is a frame every 500 ms; several seconds of nothing is a stall.
                if quiet_since.elapsed() > IO_TIMEOUT {
                    return Err("no data for 5 s".into());
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// A TCP connection from the loopback address `from`; std cannot bind a
/// client socket before connecting.
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let SocketAddr::V4(to) = to else {
        return Err(std::io::Error::other("IPv4 only"));
    };
    let raw = |a: SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: socket() returns a new fd or -1; on success the fd is owned by
    // the TcpStream made from it, which closes it however this ends.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let local = raw(SocketAddrV4::new(from, 0));
    let remote = raw(to);
    // SAFETY: bind and connect read `len` bytes of a sockaddr_in we own.
    let bound = unsafe { libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len) };
    if bound != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    let connected = unsafe { libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len) };
    if connected != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stream)
}

fn spawn_snapshots(load: Load) -> Res<JoinHandle<()>> {
    thread::Builder::new()
        .name("soak-snapshots".into())
        .spawn(move || {
            let mut k = 0usize;
            while !load.stop.load(Ordering::SeqCst) {
                let next = Instant::now() + SNAPSHOT_EVERY;
                let id = load.ids[k % 2];
                k += 1;
                let got = http(
                    load.addr,
                    "GET",
                    &format!("/printers/{id}/camera/snapshot"),
                    None,
                );
                let mut t = lock(&load.tally);
                match got {
                    Ok((200, body)) if body.starts_with(&[0xFF, 0xD8]) => t.snapshots += 1,
                    Ok((status, body)) => {
                        t.snapshot_failures += 1;
                        t.last_error = Some(format!(
                            "snapshot: {status} {}",
                            String::from_utf8_lossy(&body[..body.len().min(200)])
                        ));
                    }
                    Err(e) => {
                        t.snapshot_failures += 1;
                        t.last_error = Some(format!("snapshot: {e}"));
                    }
                }
                drop(t);
                thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        })
        .map_err(|e| e.to_string())
}
