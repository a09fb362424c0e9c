//! The H.264 benchmark (issue 12): what an RTSP camera costs printcam and
//! the ffmpeg children it runs, for `<video>` viewers of `stream.mp4` (the
//! native RTSP client, no ffmpeg) and for MJPEG viewers at 15 and 1 fps with
//! `rtsp_client` "auto" (MJPEG decoded from the native session) and
//! "ffmpeg" (an ffmpeg child as the RTSP client), side by side for a
//! 1280x720 and a 1920x1080 camera at 15 fps (GStreamer's RTSP server,
//! tests/rtsp_server.py, one keyframe a second).
//!
//! ```sh
//! cargo build --release && cargo run --release --example bench_h264 [SECONDS]
//! ```
//!
//! SECONDS (or `BENCH_SECS`) is the measuring window per row, default 20,
//! after a 5 s warm-up; `BENCH_SIZES=720` (or `1080`, default both) runs one
//! camera only. `PRINTCAM_BIN` names another binary. The table is printed
//! and written to bench/results-h264.txt (or `BENCH_OUT`).
//!
//! CPU is that of printcam's whole process tree over the window: its own
//! utime+stime, the cutime+cstime of the children it reaped (so a child
//! that exits in the window counts), and the utime+stime+cutime+cstime of
//! each live descendant. What ran is read from the children's command
//! lines, not assumed from the setting asked for.

#[path = "bench/common.rs"]
mod common;

use common::{
    http, lock, mb, printcam_bin, proc_status, stat_numbers, ticks_ms, window_secs, work_dir,
    Printcam, ProcStatus, Res, ViewerTally, Viewers, DONE, MEASURING, WARMING,
};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const CAMERA_FPS: f64 = 15.0;
const SIZES: [(u32, u32); 2] = [(1280, 720), (1920, 1080)];
const WARMUP: Duration = Duration::from_secs(5);
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
const USER: &str = "bench";
const PASSWORD: &str = "bench-pw";
/// A stream keeps up when each viewer gets at least this share of the
/// rate it asked for.
const KEEPS_UP: f64 = 0.9;

fn main() {
    if let Err(e) = run() {
        eprintln!("bench_h264: {e}");
        std::process::exit(1);
    }
}

fn run() -> Res<()> {
    let secs = window_secs()?;
    let bin = printcam_bin()?;
    let work = work_dir()?;
    let sizes = sizes()?;
    eprintln!(
        "bench_h264: {} ({secs} s per row after {} s warm-up)",
        bin.display(),
        WARMUP.as_secs()
    );
    let result = measure_all(&bin, &work, &sizes, secs);
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        eprintln!("bench_h264: logs are kept in {}", work.display());
    }
    common::publish(&render(&result?, secs, &bin), "bench/results-h264.txt")
}

fn sizes() -> Res<Vec<(u32, u32)>> {
    let Ok(list) = std::env::var("BENCH_SIZES") else {
        return Ok(SIZES.to_vec());
    };
    list.split(',')
        .map(|h| {
            let h = h.trim().trim_end_matches('p');
            SIZES
                .into_iter()
                .find(|(_, height)| height.to_string() == h)
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("BENCH_SIZES: expected 720, 1080 or 720,1080, got {list:?}"))
}

// ---------------------------------------------------------------- rows

#[derive(Clone, Copy)]
enum Row {
    /// N raw `<video>` clients of stream.mp4.
    Mp4(usize),
    /// One MJPEG viewer at `fps`, with `rtsp_client` set to `client`.
    Mjpeg { fps: u32, client: &'static str },
}

const ROWS: [Row; 7] = [
    Row::Mp4(1),
    Row::Mp4(5),
    Row::Mp4(20),
    Row::Mjpeg {
        fps: 15,
        client: "auto",
    },
    Row::Mjpeg {
        fps: 1,
        client: "auto",
    },
    Row::Mjpeg {
        fps: 15,
        client: "ffmpeg",
    },
    Row::Mjpeg {
        fps: 1,
        client: "ffmpeg",
    },
];

impl Row {
    fn label(self) -> String {
        match self {
            Row::Mp4(n) => format!("mp4 x{n}"),
            Row::Mjpeg { fps, .. } => format!("mjpeg {fps} fps"),
        }
    }

    fn path(self, id: u64) -> String {
        match self {
            Row::Mp4(_) => format!("/printers/{id}/camera/stream.mp4"),
            Row::Mjpeg { fps, .. } => format!("/printers/{id}/camera/stream?fps={fps}"),
        }
    }

    fn viewers(self) -> usize {
        match self {
            Row::Mp4(n) => n,
            Row::Mjpeg { .. } => 1,
        }
    }

    /// Frames (MP4 fragments or JPEGs) a second each viewer should get.
    fn rate(self) -> f64 {
        match self {
            Row::Mp4(_) => CAMERA_FPS,
            Row::Mjpeg { fps, .. } => f64::from(fps),
        }
    }
}

/// What became of the row's `rtsp_client`.
enum Setting {
    /// MP4 rows leave it at its default.
    NotAsked,
    Applied(&'static str),
    /// The binary refused it or does not keep it: why.
    Unsupported(&'static str, String),
}

impl Setting {
    fn label(&self) -> String {
        match self {
            Setting::NotAsked => "-".into(),
            Setting::Applied(c) => (*c).into(),
            Setting::Unsupported(c, _) => format!("{c} UNSUPPORTED"),
        }
    }
}

/// Sets printer `id`'s `rtsp_client` through the API and reads it back.
fn apply_setting(server: &Printcam, id: u64, client: &'static str) -> Res<Setting> {
    let body = format!(r#"{{"rtsp_client":"{client}"}}"#);
    let (status, reply) = http(
        server.addr,
        "PATCH",
        &format!("/printers/{id}"),
        Some(&body),
    )?;
    if status != 200 {
        let text = String::from_utf8_lossy(&reply).into_owned();
        return Ok(Setting::Unsupported(
            client,
            format!("PATCH {{\"rtsp_client\":\"{client}\"}} answered {status} {text}"),
        ));
    }
    let (status, reply) = http(server.addr, "GET", &format!("/printers/{id}"), None)?;
    let text = String::from_utf8_lossy(&reply);
    match json_string(&text, "rtsp_client") {
        Some(v) if status == 200 && v == client => Ok(Setting::Applied(client)),
        other => Ok(Setting::Unsupported(
            client,
            format!("PATCH answered 200 but GET /printers/{id} shows rtsp_client {other:?}"),
        )),
    }
}

/// The string after `"key":` in a JSON text (no escapes expected).
fn json_string(text: &str, key: &str) -> Option<String> {
    let at = text.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

// ---------------------------------------------------------------- the double

/// tests/rtsp_server.py with a session timeout, so it prints what its
/// clients ask; killed and reaped on drop.
struct RtspDouble {
    child: Child,
    port: u16,
    sessions: Arc<AtomicUsize>,
    reader: Option<JoinHandle<()>>,
}

impl RtspDouble {
    fn start(size: (u32, u32), log: &Path) -> Res<RtspDouble> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rtsp_server.py");
        let log = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = Command::new("/usr/bin/python3")
            .arg(&script)
            .args([USER, PASSWORD, &size.0.to_string(), &size.1.to_string()])
            .args(["1", "60"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("/usr/bin/python3 {}: {e}", script.display()))?;
        let sessions = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let reader = child.stdout.take().map(|out| {
            let sessions = Arc::clone(&sessions);
            thread::Builder::new()
                .name("rtsp-events".into())
                .spawn(move || read_events(out, &tx, &sessions))
        });
        let mut double = RtspDouble {
            child,
            port: 0,
            sessions,
            reader: reader.transpose().map_err(|e| e.to_string())?,
        };
        double.port = rx.recv_timeout(Duration::from_secs(20)).map_err(|_| {
            "the GStreamer RTSP double did not print its port within 20 s (it needs \
             python3-gi, gir1.2-gst-rtsp-server-1.0 and gstreamer1.0-plugins-ugly)"
                .to_string()
        })?;
        Ok(double)
    }

    fn url(&self) -> String {
        format!(
            "rtsp://{USER}:{PASSWORD}@127.0.0.1:{}/streaming/live/1",
            self.port
        )
    }

    /// RTSP sessions begun so far (each client's first request is OPTIONS).
    fn sessions(&self) -> usize {
        self.sessions.load(Ordering::SeqCst)
    }

    /// Waits up to 10 s for the last row's connections to close.
    fn wait_idle(&self) -> Res<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while tcp_connections(self.port) > 0 {
            if Instant::now() > deadline {
                return Err("the RTSP double still has a connection from a stopped row".into());
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for RtspDouble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Its stdout closed with it, so the reader is at its end.
        if let Some(t) = self.reader.take() {
            let _ = t.join();
        }
    }
}

/// The port line, then one line per client request or close.
fn read_events(out: std::process::ChildStdout, port: &mpsc::Sender<u16>, sessions: &AtomicUsize) {
    let mut lines = BufReader::new(out).lines();
    if let Some(Ok(first)) = lines.next() {
        if let Ok(p) = first.trim().parse() {
            let _ = port.send(p);
        }
    }
    for line in lines.map_while(Result::ok) {
        if line.trim() == "OPTIONS" {
            sessions.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Established TCP connections to 127.0.0.1:`port`, seen from the server
/// side, in /proc/net/tcp.
fn tcp_connections(port: u16) -> usize {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return 0;
    };
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"01")
        })
        .count()
}

// ---------------------------------------------------------------- the tree

/// What ran as printcam's child, from its command line: today's MJPEG
/// path runs ffmpeg as the RTSP client (`-rtsp_transport`, an rtsp input);
/// the new one feeds a decoder Annex B on stdin (`-i pipe:0` or `-i -`).
fn classify(args: &[String]) -> &'static str {
    let input = args
        .windows(2)
        .find(|w| w[0] == "-i")
        .map_or("", |w| w[1].as_str());
    if args.iter().any(|a| a == "-rtsp_transport") || input.starts_with("rtsp") {
        "ffmpeg-rtsp"
    } else if input == "-" || input.starts_with("pipe:") {
        "ffmpeg-decoder"
    } else {
        "other"
    }
}

fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every live (or not yet reaped) descendant of `root`.
fn descendants(root: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, u32::try_from(*stat_numbers(pid).ok()?.get(1)?).ok()?)))
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while let Some(&p) = found.get(i) {
        found.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

/// utime+stime+cutime+cstime of `pid`, ms.
fn with_reaped_ms(pid: u32) -> Option<f64> {
    let f = stat_numbers(pid).ok()?;
    Some(ticks_ms(f[11] + f[12] + f[13] + f[14]))
}

/// CPU of `root`'s whole tree so far, ms. A child reaped between reading
/// the descendants and `root` would count twice or not at all, so the
/// reading is taken again until `root`'s own figure stood still across it.
fn tree_cpu_ms(root: u32) -> Res<f64> {
    for _ in 0..5 {
        let before = with_reaped_ms(root).ok_or("printcam's /proc/PID/stat is gone")?;
        let kids: f64 = descendants(root)
            .into_iter()
            .filter_map(with_reaped_ms)
            .sum();
        if with_reaped_ms(root) == Some(before) {
            return Ok(before + kids);
        }
    }
    Err("printcam's CPU figures did not stand still for a reading".into())
}

#[derive(Default)]
struct Kid {
    class: &'static str,
    is_ffmpeg: bool,
    hwm_kb: u64,
}

/// Samples printcam and its children every `SAMPLE_EVERY`.
#[derive(Default)]
struct Sampler {
    kids: BTreeMap<u32, Kid>,
    pc_max_rss_kb: u64,
    kids_max_rss_kb: u64,
    total_max_rss_kb: u64,
    max_connections: usize,
}

impl Sampler {
    /// One sample; memory maxima only when `window` (the warm-up shows
    /// which children ran, not what a steady state costs).
    fn sample(&mut self, root: u32, double_port: u16, window: bool) -> Res<()> {
        let pc = proc_status(root)?;
        let mut kids_rss = 0;
        for pid in descendants(root) {
            let kid = self.kids.entry(pid).or_insert_with(|| {
                let args = cmdline(pid);
                Kid {
                    class: classify(&args),
                    is_ffmpeg: args.first().is_some_and(|argv0| argv0.ends_with("ffmpeg")),
                    hwm_kb: 0,
                }
            });
            if let Ok(st) = proc_status(pid) {
                kids_rss += st.rss_kb;
                kid.hwm_kb = kid.hwm_kb.max(st.hwm_kb);
            }
        }
        self.max_connections = self.max_connections.max(tcp_connections(double_port));
        if window {
            self.pc_max_rss_kb = self.pc_max_rss_kb.max(pc.rss_kb);
            self.kids_max_rss_kb = self.kids_max_rss_kb.max(kids_rss);
            self.total_max_rss_kb = self.total_max_rss_kb.max(pc.rss_kb + kids_rss);
        }
        Ok(())
    }

    /// The kinds of children seen, or that there were none.
    fn ran(&self) -> String {
        let mut classes: Vec<&str> = self.kids.values().map(|k| k.class).collect();
        classes.sort_unstable();
        classes.dedup();
        if classes.is_empty() {
            "native, no child".into()
        } else {
            classes.join("+")
        }
    }

    /// Waits up to 5 s for every child seen to be gone with printcam (they
    /// have PR_SET_PDEATHSIG); kills any left behind and says so.
    fn check_gone(&self) -> Vec<u32> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let alive = |pid: &u32| Path::new(&format!("/proc/{pid}")).exists();
        while self.kids.keys().any(alive) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        let left: Vec<u32> = self.kids.keys().copied().filter(alive).collect();
        for &pid in &left {
            if let Ok(p) = libc::pid_t::try_from(pid) {
                // SAFETY: kill(2) on a child printcam started and left behind.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
        left
    }
}

// ---------------------------------------------------------------- viewers

/// A raw `<video>` client: reads stream.mp4 box by box and counts the
/// fragments (`moof`) and bytes it gets.
fn watch_mp4(s: TcpStream, path: &str, phase: &AtomicUsize, tally: &Mutex<ViewerTally>) -> Res<()> {
    let mut r = common::open_stream(s, path, phase, "video/mp4")?;
    lock(tally).got_head = true;
    while phase.load(Ordering::SeqCst) != DONE {
        let (kind, size) = read_box(&mut r)?;
        let mut t = lock(tally);
        if kind == *b"moof" {
            t.first_frame = true;
        }
        if phase.load(Ordering::SeqCst) == MEASURING {
            t.frames += u64::from(kind == *b"moof");
            t.bytes += size;
        }
    }
    Ok(())
}

/// Reads one MP4 box through to its end; returns its type and size.
fn read_box(r: &mut impl Read) -> Res<([u8; 4], u64)> {
    let mut head = [0u8; 8];
    r.read_exact(&mut head).map_err(|e| e.to_string())?;
    let kind = [head[4], head[5], head[6], head[7]];
    let (size, header) = match u32::from_be_bytes([head[0], head[1], head[2], head[3]]) {
        1 => {
            let mut large = [0u8; 8];
            r.read_exact(&mut large).map_err(|e| e.to_string())?;
            (u64::from_be_bytes(large), 16)
        }
        n => (u64::from(n), 8),
    };
    let body = size
        .checked_sub(header)
        .ok_or_else(|| format!("box {:?} of size {size}", String::from_utf8_lossy(&kind)))?;
    let copied =
        std::io::copy(&mut r.take(body), &mut std::io::sink()).map_err(|e| e.to_string())?;
    if copied != body {
        return Err("stream closed inside a box".into());
    }
    Ok((kind, size))
}

// ---------------------------------------------------------------- runs

struct RowStats {
    size: (u32, u32),
    row: Row,
    setting: Setting,
    ran: String,
    window_s: f64,
    /// Whole tree, and printcam's own share, ms over the window.
    tree_cpu_ms: f64,
    own_cpu_ms: f64,
    rate_mean: f64,
    rate_min: f64,
    kbyte_s: f64,
    no_first_frame: usize,
    pc_peak: ProcStatus,
    pc_max_rss_kb: u64,
    kids_max_rss_kb: u64,
    kids_max_hwm_kb: u64,
    total_max_rss_kb: u64,
    ffmpeg_seen: usize,
    rtsp_sessions: usize,
    max_connections: usize,
    left_behind: Vec<u32>,
}

impl RowStats {
    fn cpu_pct(&self) -> f64 {
        self.tree_cpu_ms / (self.window_s * 10.0)
    }

    fn keeps_up(&self) -> bool {
        self.rate_min >= self.row.rate() * KEEPS_UP
    }
}

fn measure_all(bin: &Path, work: &Path, sizes: &[(u32, u32)], secs: u64) -> Res<Vec<RowStats>> {
    let mut rows = Vec::new();
    for &size in sizes {
        let log = work.join(format!("rtsp-{}p.log", size.1));
        let double = RtspDouble::start(size, &log)?;
        for (i, row) in ROWS.into_iter().enumerate() {
            double.wait_idle()?;
            eprintln!("bench_h264: {}p, {}...", size.1, row.label());
            let db = work.join(format!("{}p-row{i}.db", size.1));
            rows.push(measure_row(bin, &db, &double, size, row, secs)?);
        }
    }
    Ok(rows)
}

fn measure_row(
    bin: &Path,
    db: &Path,
    double: &RtspDouble,
    size: (u32, u32),
    row: Row,
    secs: u64,
) -> Res<RowStats> {
    let sessions0 = double.sessions();
    let server = Printcam::start(bin, db)?;
    let pid = server.pid();
    let id = server.add_printer(&format!(
        r#"{{"name":"bench","camera_type":"rtsp","camera_url":"{}"}}"#,
        double.url()
    ))?;
    let setting = match row {
        Row::Mp4(_) => Setting::NotAsked,
        Row::Mjpeg { client, .. } => apply_setting(&server, id, client)?,
    };
    let watch = match row {
        Row::Mp4(_) => watch_mp4,
        Row::Mjpeg { .. } => common::watch_mjpeg,
    };
    let viewers = Viewers::start(server.addr, &row.path(id), row.viewers(), watch)?;
    let mut sampler = Sampler::default();
    let measured = window(&viewers, &mut sampler, pid, double.port, secs);
    viewers.stop();
    drop(server);
    let left_behind = sampler.check_gone();
    let w = measured?;
    let tallies = &w.tallies;
    let rates: Vec<f64> = tallies.iter().map(|t| t.0 as f64 / w.window_s).collect();
    let bytes: u64 = tallies.iter().map(|t| t.1).sum();
    Ok(RowStats {
        size,
        row,
        setting,
        ran: sampler.ran(),
        window_s: w.window_s,
        tree_cpu_ms: w.tree_cpu_ms,
        own_cpu_ms: w.own_cpu_ms,
        rate_mean: rates.iter().sum::<f64>() / rates.len().max(1) as f64,
        rate_min: rates.iter().copied().fold(f64::INFINITY, f64::min),
        kbyte_s: bytes as f64 / 1024.0 / w.window_s / rates.len().max(1) as f64,
        no_first_frame: w.no_first_frame,
        pc_peak: w.pc_peak,
        pc_max_rss_kb: sampler.pc_max_rss_kb.max(w.pc_peak.rss_kb),
        kids_max_rss_kb: sampler.kids_max_rss_kb,
        kids_max_hwm_kb: sampler.kids.values().map(|k| k.hwm_kb).max().unwrap_or(0),
        total_max_rss_kb: sampler.total_max_rss_kb,
        ffmpeg_seen: sampler.kids.values().filter(|k| k.is_ffmpeg).count(),
        rtsp_sessions: double.sessions() - sessions0,
        max_connections: sampler.max_connections,
        left_behind,
    })
}

struct Window {
    window_s: f64,
    tree_cpu_ms: f64,
    own_cpu_ms: f64,
    no_first_frame: usize,
    pc_peak: ProcStatus,
    /// (frames, bytes) of each viewer.
    tallies: Vec<(u64, u64)>,
}

/// The warm-up and the measuring window of one row.
fn window(viewers: &Viewers, sampler: &mut Sampler, pid: u32, port: u16, secs: u64) -> Res<Window> {
    let no_first_frame = viewers.wait_first_frames()?;
    sample_for(sampler, pid, port, WARMUP, false)?;
    let tree0 = tree_cpu_ms(pid)?;
    let own0 = common::cpu_ms(pid)?;
    let t0 = Instant::now();
    viewers.phase.store(MEASURING, Ordering::SeqCst);
    sample_for(sampler, pid, port, Duration::from_secs(secs), true)?;
    // Stop counting before reading the figures, so the window is the same.
    viewers.phase.store(WARMING, Ordering::SeqCst);
    let window_s = t0.elapsed().as_secs_f64();
    let tree_cpu_ms = tree_cpu_ms(pid)? - tree0;
    let own_cpu_ms = common::cpu_ms(pid)? - own0;
    let pc_peak = proc_status(pid)?;
    if let Some(e) = viewers.tallies.iter().find_map(|t| lock(t).error.clone()) {
        return Err(format!("a viewer failed: {e}"));
    }
    Ok(Window {
        window_s,
        tree_cpu_ms,
        own_cpu_ms,
        no_first_frame,
        pc_peak,
        tallies: viewers
            .tallies
            .iter()
            .map(|t| {
                let t = lock(t);
                (t.frames, t.bytes)
            })
            .collect(),
    })
}

fn sample_for(s: &mut Sampler, pid: u32, port: u16, d: Duration, window: bool) -> Res<()> {
    let end = Instant::now() + d;
    loop {
        s.sample(pid, port, window)?;
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        thread::sleep(SAMPLE_EVERY.min(left));
    }
}

// ---------------------------------------------------------------- report

fn render(rows: &[RowStats], secs: u64, bin: &Path) -> String {
    let mut out = common::header("printcam H.264 benchmark", bin);
    out += &format!(
        "camera: GStreamer RTSP server (tests/rtsp_server.py), H.264 15 fps, a keyframe a second, \
         Digest, TCP, loopback;\n{secs} s window after {} s warm-up; a fresh printcam per row; \
         viewers and camera on the same machine\n\n",
        WARMUP.as_secs()
    );
    out += "size  | row          | rtsp_client asked  | ran              | rate/viewer mean  min | KB/s/viewer | CPU % core: tree  printcam | printcam HWM  maxRSS MB  threads | children maxRSS  HWM MB | total maxRSS MB | ffmpeg seen | RTSP sessions (max conns)\n";
    out += "------|--------------|--------------------|------------------|-----------------------|-------------|----------------------------|----------------------------------|-------------------------|-----------------|-------------|--------------------------\n";
    for r in rows {
        out += &format!(
            "{:>5} | {:<12} | {:<18} | {:<16} | {:>9.2} {:>5.2} {:<5} | {:>11.1} | {:>16.2} {:>9.2} | {:>12} {:>10} {:>8} | {:>15} {:>7} | {:>15} | {:>11} | {:>7} ({})\n",
            format!("{}p", r.size.1),
            r.row.label(),
            r.setting.label(),
            r.ran,
            r.rate_mean,
            r.rate_min,
            if r.keeps_up() { "ok" } else { "LOW" },
            r.kbyte_s,
            r.cpu_pct(),
            r.own_cpu_ms / (r.window_s * 10.0),
            mb(r.pc_peak.hwm_kb),
            mb(r.pc_max_rss_kb),
            r.pc_peak.threads,
            mb(r.kids_max_rss_kb),
            mb(r.kids_max_hwm_kb),
            mb(r.total_max_rss_kb),
            r.ffmpeg_seen,
            r.rtsp_sessions,
            r.max_connections,
        );
    }
    out += &notes(rows);
    out += "\ntargets:\n";
    out += &targets(rows);
    out
}

fn notes(rows: &[RowStats]) -> String {
    let mut out = format!(
        "\n(window lengths: {}; rate is MP4 fragments or JPEGs a second per viewer, \"ok\" when the \
         slowest viewer got >= {:.0} % of the rate asked; RSS maxima sampled every {} ms in the window; \
         children and ffmpeg counted from the first viewer on; RTSP sessions are the OPTIONS the \
         double saw from the row's start)\n",
        rows.iter()
            .map(|r| format!("{:.1}", r.window_s))
            .collect::<Vec<_>>()
            .join(", "),
        KEEPS_UP * 100.0,
        SAMPLE_EVERY.as_millis()
    );
    let mut unsupported: Vec<String> = rows
        .iter()
        .filter_map(|r| match &r.setting {
            Setting::Unsupported(_, why) => Some(why.clone()),
            _ => None,
        })
        .collect();
    unsupported.sort_unstable();
    unsupported.dedup();
    for why in unsupported {
        out += &format!(
            "UNSUPPORTED: this binary does not take rtsp_client ({why}); those rows ran the \
             binary's default, shown under \"ran\"\n"
        );
    }
    for r in rows.iter().filter(|r| r.no_first_frame > 0) {
        out += &format!(
            "{}p {}: {} viewer(s) had no frame 10 s after connecting\n",
            r.size.1,
            r.row.label(),
            r.no_first_frame
        );
    }
    for r in rows.iter().filter(|r| !r.left_behind.is_empty()) {
        out += &format!(
            "{}p {}: children {:?} outlived printcam by 5 s and were killed\n",
            r.size.1,
            r.row.label(),
            r.left_behind
        );
    }
    out
}

fn verdict(pass: bool) -> &'static str {
    if pass {
        "PASS"
    } else {
        "FAIL"
    }
}

fn targets(rows: &[RowStats]) -> String {
    let mut out = String::new();
    match rows
        .iter()
        .find(|r| r.size.1 == 1080 && matches!(r.row, Row::Mp4(5)))
    {
        None => out += "- 5 <video> viewers of 1080p15: not run\n",
        Some(r) => {
            out += &format!(
                "- 5 <video> viewers of 1080p15: CPU {:.2} % of a core (< 2 %): {}; RSS {} MB in all (< 8 MB): {}; {} ffmpeg (none): {}; fragments {:.2}/s per viewer at the least (~15): {}\n",
                r.cpu_pct(),
                verdict(r.cpu_pct() < 2.0),
                mb(r.total_max_rss_kb),
                verdict(r.total_max_rss_kb < 8 * 1024),
                r.ffmpeg_seen,
                verdict(r.ffmpeg_seen == 0),
                r.rate_min,
                verdict(r.keeps_up()),
            );
        }
    }
    for &(_, height) in &SIZES {
        for client in ["auto", "ffmpeg"] {
            out += &third(rows, height, client);
        }
    }
    out
}

/// "A 1 fps MJPEG viewer costs at most a third of a 15 fps one", judged
/// for the new path ("auto") only where it is what ran; the ffmpeg rows
/// are shown for reference.
fn third(rows: &[RowStats], height: u32, client: &str) -> String {
    let find = |fps: u32| {
        rows.iter().find(|r| {
            r.size.1 == height
                && matches!(r.row, Row::Mjpeg { fps: f, client: c } if f == fps && c == client)
        })
    };
    let (Some(fast), Some(slow)) = (find(15), find(1)) else {
        return String::new();
    };
    let ratio = slow.tree_cpu_ms / fast.tree_cpu_ms.max(f64::MIN_POSITIVE);
    let figures = format!(
        "{height}p, rtsp_client {client}: 1 fps {:.2} % vs 15 fps {:.2} % of a core, ratio {ratio:.2} (<= 0.33)",
        slow.cpu_pct(),
        fast.cpu_pct()
    );
    let new_path_ran = [fast, slow]
        .iter()
        .all(|r| matches!(r.setting, Setting::Applied(_)) && r.ran == "ffmpeg-decoder");
    let judged = match client {
        "auto" if new_path_ran => verdict(ratio <= 1.0 / 3.0).to_string(),
        "auto" => format!(
            "NOT JUDGED: the new path did not run (set: {} / {}, ran: {} / {})",
            slow.setting.label(),
            fast.setting.label(),
            slow.ran,
            fast.ran
        ),
        _ => format!("reference only (ran: {} / {})", slow.ran, fast.ran),
    };
    format!("- {figures}: {judged}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split(' ').map(String::from).collect()
    }

    #[test]
    fn tells_todays_rtsp_child_from_the_decoder_child() {
        let today = "ffmpeg -hide_banner -loglevel error -rtsp_transport tcp -stimeout 10000000 \
                     -fflags nobuffer -flags low_delay -i rtsp://u:p@127.0.0.1:9/x -an -f mjpeg -";
        let decoder = "ffmpeg -hide_banner -loglevel error -threads 1 -flags low_delay -f h264 \
                       -i pipe:0 -an -f mjpeg -q:v 5 pipe:1";
        assert_eq!(classify(&args(today)), "ffmpeg-rtsp");
        assert_eq!(classify(&args(decoder)), "ffmpeg-decoder");
        assert_eq!(
            classify(&args("ffmpeg -f h264 -i - -f mjpeg -")),
            "ffmpeg-decoder"
        );
        assert_eq!(classify(&args("ffmpeg -f v4l2 -i /dev/video0 -")), "other");
    }

    /// A child that burns CPU and is reaped before the second reading
    /// still counts, through cutime/cstime.
    #[test]
    fn a_reaped_child_counts_in_the_tree() {
        let me = std::process::id();
        let usage = || {
            // SAFETY: getrusage writes into the zeroed struct it is given.
            let mut u: libc::rusage = unsafe { std::mem::zeroed() };
            unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
            let us = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
            us(u.ru_utime) + us(u.ru_stime)
        };
        let (tree0, kids0) = (tree_cpu_ms(me).unwrap(), usage());
        let st = Command::new("/bin/sh")
            .args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
            .status()
            .unwrap();
        assert!(st.success());
        let (tree, kids) = (tree_cpu_ms(me).unwrap() - tree0, usage() - kids0);
        assert!(kids >= 50.0, "the child burnt only {kids} ms");
        // /proc counts in clock ticks, getrusage in microseconds.
        assert!(tree >= kids - 20.0, "tree {tree} ms, the child {kids} ms");
    }
}
