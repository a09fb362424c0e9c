//! The router benchmark: runs the release printcam binary as a child process
//! against an in-process MJPEG camera (1280x720, 15 fps) and measures what
//! printcam alone costs — CPU from /proc/<pid>/stat, memory and threads from
//! /proc/<pid>/status — and what its viewers get: frame rate, drops and the
//! latency it adds (each frame carries its send time in a JPEG COM segment).
//!
//! ```sh
//! cargo build --release && cargo run --release --example bench [SECONDS]
//! ```
//!
//! SECONDS (or `BENCH_SECS`) is the measuring window per viewer count,
//! default 20, after a 3 s warm-up. `PRINTCAM_BIN` names another binary.
//! The table is printed and written to bench/results.txt (or `BENCH_OUT`).
//!
//! `bench soak …` is the memory soak instead (examples/bench/soak.rs).

#[path = "bench/common.rs"]
mod common;
#[path = "bench/soak.rs"]
mod soak;

use common::{
    cpu_ms, http, json_number, lock, mb, now_ns, printcam_bin, proc_status, window_secs, work_dir,
    Printcam, ProcStatus, Res, Viewers, COM_TAG, IO_TIMEOUT, MEASURING, WARMING,
};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const CAMERA_FPS: u64 = 15;
const VIEWER_COUNTS: [usize; 3] = [1, 20, 100];
const WARMUP: Duration = Duration::from_secs(3);
const SNAPSHOTS: usize = 200;

fn main() {
    if let Err(e) = run() {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("soak") {
        return run_soak(&args[1..]);
    }
    let secs = window_secs()?;
    let bin = printcam_bin()?;
    let jpeg = bench_frame()?;
    let work = work_dir()?;
    eprintln!(
        "bench: {} ({} KB frames at {CAMERA_FPS} fps, {secs} s per run after {} s warm-up)",
        bin.display(),
        jpeg.len() / 1024,
        WARMUP.as_secs()
    );
    let camera = Camera::start(jpeg)?;
    let result = measure_all(&bin, &work, &camera, secs);
    camera.stop();
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        eprintln!("bench: printcam's logs are kept in {}", work.display());
    }
    common::publish(&render(&result?, secs, &bin), "bench/results.txt")
}

fn run_soak(args: &[String]) -> Res<()> {
    let bin = printcam_bin()?;
    let work = work_dir()?;
    let passed = soak::run(args, &bin, bench_frame()?, &work);
    if matches!(passed, Ok(true)) {
        let _ = std::fs::remove_dir_all(&work);
        return Ok(());
    }
    let log = work.join("soak.log");
    eprintln!("bench: printcam's log is kept in {}", log.display());
    passed?;
    Err("the soak missed its verdict".into())
}

fn bench_frame() -> Res<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read(root.join("bench/frame-1280x720.jpg"))
        .map_err(|e| format!("bench/frame-1280x720.jpg: {e}"))
}

/// `BENCH_VIEWERS=1,20` runs only those viewer counts (N=1 must be among
/// them for the snapshot figures).
fn viewer_counts() -> Res<Vec<usize>> {
    match std::env::var("BENCH_VIEWERS") {
        Err(_) => Ok(VIEWER_COUNTS.to_vec()),
        Ok(list) => list
            .split(',')
            .map(|n| n.trim().parse::<usize>().ok().filter(|n| *n >= 1))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| format!("BENCH_VIEWERS: expected counts like 1,20,100, got {list:?}")),
    }
}

struct Results {
    runs: Vec<RunStats>,
    snapshot_ms: (f64, f64),
    snapshot_failures: usize,
    idle: ProcStatus,
    idle_upstreams: usize,
}

fn measure_all(bin: &Path, work: &Path, camera: &Camera, secs: u64) -> Res<Results> {
    let mut runs = Vec::new();
    let mut snapshot = None;
    for (i, &n) in viewer_counts()?.iter().enumerate() {
        let server = Printcam::start(bin, &work.join(format!("run{i}.db")))?;
        let id = server.add_camera(camera.addr, 1)?;
        camera.reset_peak()?;
        eprintln!("bench: {n} viewer(s)...");
        let path = format!("/printers/{id}/camera/stream?fps={CAMERA_FPS}");
        let viewers = Viewers::start(server.addr, &path, n, common::watch_mjpeg)?;
        let run = measure_run(&server, id, &viewers, camera, secs);
        if n == 1 && run.is_ok() {
            // With a viewer keeping the camera live, as the budget means.
            snapshot = Some(snapshots(server.addr, id));
        }
        viewers.stop();
        runs.push(run?);
        drop(server);
    }
    let (snapshot_ms, snapshot_failures) =
        snapshot.ok_or("no run with 1 viewer, so no snapshot figures")??;
    eprintln!("bench: idle with 3 cameras...");
    camera.reset_peak()?;
    let server = Printcam::start(bin, &work.join("idle.db"))?;
    for k in 1..=3 {
        server.add_camera(camera.addr, k)?;
    }
    thread::sleep(Duration::from_secs(6));
    let idle = proc_status(server.pid())?;
    let idle_upstreams = camera.total.load(Ordering::SeqCst);
    Ok(Results {
        runs,
        snapshot_ms,
        snapshot_failures,
        idle,
        idle_upstreams,
    })
}

fn frames_dropped(addr: SocketAddr, id: u64) -> Res<u64> {
    let (status, body) = http(addr, "GET", &format!("/printers/{id}/camera/status"), None)?;
    let text = String::from_utf8_lossy(&body);
    if status != 200 {
        return Err(format!("camera/status: {status} {text}"));
    }
    json_number(&text, "frames_dropped").ok_or_else(|| format!("no frames_dropped in {text}"))
}

impl Printcam {
    /// Registers an MJPEG camera at the bench camera; returns the printer id.
    fn add_camera(&self, cam: SocketAddr, k: usize) -> Res<u64> {
        self.add_printer(&format!(
            r#"{{"name":"bench{k}","camera_type":"mjpeg","camera_url":"http://{cam}/stream?cam={k}"}}"#
        ))
    }
}

// ---------------------------------------------------------------- camera

/// The test camera: a multipart MJPEG stream at 15 fps to each connection,
/// every frame stamped with its send time and a sequence number.
struct Camera {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    active: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
    thread: JoinHandle<()>,
}

impl Camera {
    fn start(jpeg: Vec<u8>) -> Res<Camera> {
        if jpeg.get(..2) != Some(&[0xFF, 0xD8][..]) {
            return Err("the frame is not a JPEG".into());
        }
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let active = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let total = Arc::new(AtomicUsize::new(0));
        let ctx = CamCtx {
            jpeg: Arc::from(jpeg),
            stop: Arc::clone(&stop),
            active: Arc::clone(&active),
            peak: Arc::clone(&peak),
            total: Arc::clone(&total),
            seq: Arc::new(AtomicU64::new(0)),
        };
        let thread = thread::Builder::new()
            .name("bench-camera".into())
            .spawn(move || camera_accept(listener, ctx))
            .map_err(|e| e.to_string())?;
        Ok(Camera {
            addr,
            stop,
            active,
            peak,
            total,
            thread,
        })
    }

    /// Waits for the previous run's connection to close, then zeroes the
    /// counters for the next run.
    fn reset_peak(&self) -> Res<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.active.load(Ordering::SeqCst) > 0 {
            if Instant::now() > deadline {
                return Err("the camera still has a connection from a stopped printcam".into());
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.peak.store(0, Ordering::SeqCst);
        self.total.store(0, Ordering::SeqCst);
        Ok(())
    }

    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
    }
}

#[derive(Clone)]
struct CamCtx {
    jpeg: Arc<[u8]>,
    stop: Arc<AtomicBool>,
    active: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
    seq: Arc<AtomicU64>,
}

fn camera_accept(listener: TcpListener, ctx: CamCtx) {
    let mut conns = Vec::new();
    while !ctx.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((s, _)) => {
                let c = ctx.clone();
                let n = ctx.total.fetch_add(1, Ordering::SeqCst);
                let now = ctx.active.fetch_add(1, Ordering::SeqCst) + 1;
                ctx.peak.fetch_max(now, Ordering::SeqCst);
                let t = thread::Builder::new()
                    .name(format!("bench-camera-{n}"))
                    .spawn(move || {
                        let _ = camera_conn(s, &c);
                        c.active.fetch_sub(1, Ordering::SeqCst);
                    });
                match t {
                    Ok(t) => conns.push(t),
                    Err(_) => {
                        ctx.active.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            }
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
    for t in conns {
        let _ = t.join();
    }
}

fn camera_conn(s: TcpStream, ctx: &CamCtx) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.set_nodelay(true)?;
    let mut reader = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let mut w = s;
    w.write_all(
        b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=camframe\r\n\
          Cache-Control: no-cache\r\n\r\n",
    )?;
    let period = Duration::from_nanos(1_000_000_000 / CAMERA_FPS);
    let start = Instant::now();
    let mut part = Vec::with_capacity(ctx.jpeg.len() + 200);
    for k in 0u32.. {
        if ctx.stop.load(Ordering::SeqCst) {
            break;
        }
        let due = start + period * k;
        thread::sleep(due.saturating_duration_since(Instant::now()));
        let seq = ctx.seq.fetch_add(1, Ordering::SeqCst);
        stamped_part(&mut part, &ctx.jpeg, seq);
        w.write_all(&part)?;
    }
    Ok(())
}

/// A multipart part whose JPEG has a COM segment right after SOI carrying
/// the send time (ns since the Unix epoch) and the sequence number.
fn stamped_part(part: &mut Vec<u8>, jpeg: &[u8], seq: u64) {
    let payload = format!("{COM_TAG} t={} s={seq}", now_ns());
    let com_len = payload.len() + 2;
    let len = jpeg.len() + 4 + payload.len();
    part.clear();
    part.extend_from_slice(
        format!("--camframe\r\nContent-Type: image/jpeg\r\nContent-Length: {len}\r\n\r\n")
            .as_bytes(),
    );
    part.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xFE]);
    part.extend_from_slice(&(com_len as u16).to_be_bytes());
    part.extend_from_slice(payload.as_bytes());
    part.extend_from_slice(&jpeg[2..]);
    part.extend_from_slice(b"\r\n");
}

// ---------------------------------------------------------------- runs

struct RunStats {
    viewers: usize,
    window_s: f64,
    fps_mean: f64,
    fps_min: f64,
    /// Viewers without a frame 10 s after connecting, and without one in
    /// the whole window.
    no_first_frame: usize,
    stalled: usize,
    delivered: u64,
    hub_dropped: u64,
    seq_gaps: u64,
    unstamped: u64,
    lat_p50_ms: f64,
    lat_p99_ms: f64,
    cpu_ms_per_1000: f64,
    peak: ProcStatus,
    max_rss_kb: u64,
    max_threads: u64,
    upstream_peak: usize,
    upstream_total: usize,
}

fn measure_run(
    server: &Printcam,
    id: u64,
    viewers: &Viewers,
    camera: &Camera,
    secs: u64,
) -> Res<RunStats> {
    let no_first_frame = viewers.wait_first_frames()?;
    thread::sleep(WARMUP);
    let pid = server.pid();
    let dropped0 = frames_dropped(server.addr, id)?;
    let cpu0 = cpu_ms(pid)?;
    let t0 = Instant::now();
    viewers.phase.store(MEASURING, Ordering::SeqCst);
    let (mut max_rss_kb, mut max_threads) = (0, 0);
    let end = t0 + Duration::from_secs(secs);
    while Instant::now() < end {
        thread::sleep(
            Duration::from_millis(250).min(end.saturating_duration_since(Instant::now())),
        );
        let st = proc_status(pid)?;
        max_rss_kb = max_rss_kb.max(st.rss_kb);
        max_threads = max_threads.max(st.threads);
    }
    // Stop counting before reading the figures, so the window is the same.
    viewers.phase.store(WARMING, Ordering::SeqCst);
    let window_s = t0.elapsed().as_secs_f64();
    let cpu = cpu_ms(pid)? - cpu0;
    let peak = proc_status(pid)?;
    let hub_dropped = frames_dropped(server.addr, id)?.saturating_sub(dropped0);
    if let Some(e) = viewers.tallies.iter().find_map(|t| lock(t).error.clone()) {
        return Err(format!("a viewer failed: {e}"));
    }
    let tallies: Vec<_> = viewers.tallies.iter().map(|t| lock(t)).collect();
    let rates: Vec<f64> = tallies.iter().map(|t| t.frames as f64 / window_s).collect();
    let delivered: u64 = tallies.iter().map(|t| t.frames).sum();
    let mut lat: Vec<u32> = tallies
        .iter()
        .flat_map(|t| t.latencies_us.iter().copied())
        .collect();
    lat.sort_unstable();
    Ok(RunStats {
        viewers: tallies.len(),
        window_s,
        fps_mean: rates.iter().sum::<f64>() / rates.len().max(1) as f64,
        fps_min: rates.iter().copied().fold(f64::INFINITY, f64::min),
        no_first_frame,
        stalled: tallies.iter().filter(|t| t.frames == 0).count(),
        delivered,
        hub_dropped,
        seq_gaps: tallies.iter().map(|t| t.gaps).sum(),
        unstamped: tallies.iter().map(|t| t.unstamped).sum(),
        lat_p50_ms: percentile_us(&lat, 0.50) / 1000.0,
        lat_p99_ms: percentile_us(&lat, 0.99) / 1000.0,
        cpu_ms_per_1000: cpu / delivered.max(1) as f64 * 1000.0,
        peak,
        max_rss_kb: max_rss_kb.max(peak.rss_kb),
        max_threads: max_threads.max(peak.threads),
        upstream_peak: camera.peak.load(Ordering::SeqCst),
        upstream_total: camera.total.load(Ordering::SeqCst),
    })
}

/// Nearest-rank percentile of sorted samples.
fn percentile_us(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1])
}

/// 200 sequential snapshots; returns (p50, p99) in ms and the failures.
fn snapshots(addr: SocketAddr, id: u64) -> Res<((f64, f64), usize)> {
    let path = format!("/printers/{id}/camera/snapshot");
    let mut us = Vec::with_capacity(SNAPSHOTS);
    let mut failures = 0;
    for _ in 0..SNAPSHOTS {
        let t = Instant::now();
        match http(addr, "GET", &path, None) {
            Ok((200, body)) if body.starts_with(&[0xFF, 0xD8]) => {
                us.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            _ => failures += 1,
        }
    }
    us.sort_unstable();
    Ok((
        (
            percentile_us(&us, 0.50) / 1000.0,
            percentile_us(&us, 0.99) / 1000.0,
        ),
        failures,
    ))
}

// ---------------------------------------------------------------- report

fn render(r: &Results, secs: u64, bin: &Path) -> String {
    let mut out = common::header("printcam benchmark", bin);
    out += &format!(
        "camera: 1280x720 JPEG ({} KB) multipart at {CAMERA_FPS} fps on loopback; viewers ask fps={CAMERA_FPS};\n\
         {secs} s window after {} s warm-up; a fresh printcam per row; viewers run on the same machine\n\n",
        frame_kb(),
        WARMUP.as_secs()
    );
    out += "viewers | fps/viewer mean  min | delivered | dropped hub  seq-gaps | latency p50  p99 ms | CPU ms/1000 frames | VmHWM MB  VmRSS MB | threads | upstreams max (total)\n";
    out += "--------|----------------------|-----------|-----------------------|---------------------|--------------------|--------------------|---------|----------------------\n";
    for s in &r.runs {
        out += &format!(
            "{:>7} | {:>15.2} {:>5.2} | {:>9} | {:>11} {:>9} | {:>11.2} {:>7.2} | {:>18.1} | {:>8} {:>9} | {:>7} | {:>6} ({})\n",
            s.viewers,
            s.fps_mean,
            s.fps_min,
            s.delivered,
            s.hub_dropped,
            s.seq_gaps,
            s.lat_p50_ms,
            s.lat_p99_ms,
            s.cpu_ms_per_1000,
            mb(s.peak.hwm_kb),
            mb(s.max_rss_kb),
            s.max_threads,
            s.upstream_peak,
            s.upstream_total,
        );
    }
    for s in r.runs.iter().filter(|s| s.no_first_frame + s.stalled > 0) {
        out += &format!(
            "{} viewers: {} had no frame 10 s after connecting; {} got no frame in the whole window\n",
            s.viewers, s.no_first_frame, s.stalled
        );
    }
    let unstamped: u64 = r.runs.iter().map(|s| s.unstamped).sum();
    if unstamped > 0 {
        out += &format!("({unstamped} frames arrived without the bench's COM stamp)\n");
    }
    out += &format!(
        "\n(window lengths: {}; VmRSS is the largest sampled every 250 ms in the window; threads likewise)\n",
        r.runs
            .iter()
            .map(|s| format!("{:.1} s", s.window_s))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(line) = per_viewer(&r.runs) {
        out += &line;
    }
    out += &format!(
        "snapshot, camera live (1 viewer): {SNAPSHOTS} sequential GETs, p50 {:.2} ms, p99 {:.2} ms, {} failed\n",
        r.snapshot_ms.0, r.snapshot_ms.1, r.snapshot_failures
    );
    out += &format!(
        "idle, 3 cameras configured, none watched, after 6 s: VmRSS {} MB, VmHWM {} MB, threads {}, upstream connections {}\n",
        mb(r.idle.rss_kb),
        mb(r.idle.hwm_kb),
        r.idle.threads,
        r.idle_upstreams
    );
    out
}

/// What one more viewer costs, from the runs with the fewest and the most
/// viewers: the basis of the default viewer limits (README, Configuration).
fn per_viewer(runs: &[RunStats]) -> Option<String> {
    let few = runs.iter().min_by_key(|s| s.viewers)?;
    let many = runs.iter().max_by_key(|s| s.viewers)?;
    let more = many.viewers.checked_sub(few.viewers).filter(|&n| n > 0)? as f64;
    let kb = (many.max_rss_kb as f64 - few.max_rss_kb as f64) / more;
    let threads = (many.max_threads as f64 - few.max_threads as f64) / more;
    Some(format!(
        "per viewer ({} → {} viewers): {kb:.1} KB of VmRSS, {threads:.2} threads\n",
        few.viewers, many.viewers
    ))
}

fn frame_kb() -> u64 {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/frame-1280x720.jpg");
    std::fs::metadata(p).map_or(0, |m| m.len() / 1024)
}
