//! What the benchmarks share (examples/bench.rs, examples/bench_h264.rs):
//! the printcam child, /proc figures, one-shot HTTP, the viewer threads
//! and the report's header.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub type Res<T> = Result<T, String>;

pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Marks the bench's COM segment; the payload is ASCII so no 0xFF byte can
/// confuse a JPEG splitter.
pub const COM_TAG: &str = "printcam-bench";

pub fn work_dir() -> Res<PathBuf> {
    let work = std::env::temp_dir().join(format!("printcam-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    Ok(work)
}

pub fn window_secs() -> Res<u64> {
    let arg = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("BENCH_SECS").ok());
    match arg {
        None => Ok(20),
        Some(s) => s
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| format!("window must be whole seconds >= 1, got {s:?}")),
    }
}

pub fn printcam_bin() -> Res<PathBuf> {
    let bin = match std::env::var_os("PRINTCAM_BIN") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/printcam"),
    };
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} does not exist: run `cargo build --release` first (or set PRINTCAM_BIN)",
            bin.display()
        ))
    }
}

// ---------------------------------------------------------------- printcam

/// The printcam child; killed and reaped on drop.
pub struct Printcam {
    child: Child,
    pub addr: SocketAddr,
}

impl Printcam {
    pub fn start(bin: &Path, db: &Path) -> Res<Printcam> {
        let addr = free_port()?;
        let log = std::fs::File::create(db.with_extension("log")).map_err(|e| e.to_string())?;
        let child = Command::new(bin)
            .args(["serve", "--listen", &addr.to_string(), "--db"])
            .arg(db)
            .args(["--allow-loopback", "--grace", "5"])
            // The default limits would refuse 100 viewers.
            .args(["--max-viewers", "1000", "--max-viewers-per-camera", "1000"])
            .args(per_client_limit(bin))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let mut server = Printcam { child, addr };
        server.wait_ready(db)?;
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_ready(&mut self, db: &Path) -> Res<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Err(format!(
                    "printcam exited ({st}); see {}",
                    db.with_extension("log").display()
                ));
            }
            if let Ok((200, _)) = http(self.addr, "GET", "/healthz", None) {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(50));
        }
        Err("printcam did not answer /healthz within 15 s".into())
    }

    /// Adds a printer (a JSON body for POST /printers); returns its id.
    pub fn add_printer(&self, body: &str) -> Res<u64> {
        let (status, reply) = http(self.addr, "POST", "/printers", Some(body))?;
        let text = String::from_utf8_lossy(&reply);
        if status != 201 {
            return Err(format!("POST /printers: {status} {text}"));
        }
        json_number(&text, "id").ok_or_else(|| format!("no id in {text}"))
    }
}

impl Drop for Printcam {
    fn drop(&mut self) {
        // SIGTERM for an orderly stop, SIGKILL if it takes too long.
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child, which is not reaped yet.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every viewer of the bench comes from 127.0.0.1, so a build that bounds
/// connections per client gets a bound to match; older builds (measured
/// side by side) have no such flag.
pub fn per_client_limit(bin: &Path) -> Vec<&'static str> {
    let help = Command::new(bin).args(["serve", "--help"]).output();
    let knows = help
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--max-connections-per-client"));
    if knows {
        vec!["--max-connections-per-client", "1000"]
    } else {
        Vec::new()
    }
}

pub fn free_port() -> Res<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map_err(|e| e.to_string())
}

#[derive(Clone, Copy, Default)]
pub struct ProcStatus {
    pub hwm_kb: u64,
    pub rss_kb: u64,
    pub threads: u64,
}

pub fn proc_status(pid: u32) -> Res<ProcStatus> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(ProcStatus {
        hwm_kb: field("VmHWM:"),
        rss_kb: field("VmRSS:"),
        threads: field("Threads:"),
    })
}

/// utime + stime of `pid`, in milliseconds.
pub fn cpu_ms(pid: u32) -> Res<f64> {
    let f = stat_numbers(pid)?;
    Ok(ticks_ms(f[11] + f[12]))
}

/// The fields of /proc/<pid>/stat from the state on (field 3, index 0), as
/// numbers (0 where one is not); at least the 20 the kernel always writes.
pub fn stat_numbers(pid: u32) -> Res<Vec<u64>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    // The command name before them may hold spaces and parentheses.
    let rest = text.rsplit_once(')').map(|(_, r)| r).ok_or("bad stat")?;
    let mut f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    f.resize(f.len().max(20), 0);
    Ok(f)
}

/// Clock ticks (as /proc counts CPU time) in milliseconds.
pub fn ticks_ms(ticks: u64) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 * 1000.0 / hz
}

// ---------------------------------------------------------------- HTTP

/// One HTTP/1.0 request (so no chunked replies); returns status and body.
pub fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Res<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    if let Some(b) = body {
        req += &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        );
    }
    req += "\r\n";
    req += body.unwrap_or("");
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).map_err(|e| e.to_string())?;
    let head_end = find(&reply, b"\r\n\r\n").ok_or("no end of headers")?;
    let status = std::str::from_utf8(&reply[..head_end])
        .ok()
        .and_then(|h| h.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or("bad status line")?;
    Ok((status, reply[head_end + 4..].to_vec()))
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The first number after `"key":` in a JSON text.
pub fn json_number(text: &str, key: &str) -> Option<u64> {
    let at = text.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// (send time ns, sequence) from a stamped JPEG.
pub fn read_stamp(jpeg: &[u8]) -> Option<(u64, u64)> {
    if jpeg.get(..4)? != [0xFF, 0xD8, 0xFF, 0xFE] {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([*jpeg.get(4)?, *jpeg.get(5)?]));
    let text = std::str::from_utf8(jpeg.get(6..4 + len)?).ok()?;
    let mut words = text.strip_prefix(COM_TAG)?.split_whitespace();
    let t = words.next()?.strip_prefix("t=")?.parse().ok()?;
    let s = words.next()?.strip_prefix("s=")?.parse().ok()?;
    Some((t, s))
}

// ---------------------------------------------------------------- viewers

pub const WARMING: usize = 0;
pub const MEASURING: usize = 1;
pub const DONE: usize = 2;

#[derive(Default)]
pub struct ViewerTally {
    /// JPEGs, or MP4 fragments (`moof` boxes).
    pub frames: u64,
    pub bytes: u64,
    pub gaps: u64,
    pub unstamped: u64,
    pub latencies_us: Vec<u32>,
    pub got_head: bool,
    pub first_frame: bool,
    pub error: Option<String>,
}

/// How a viewer reads its stream: `watch_mjpeg`, or another format's.
pub type Watch = fn(TcpStream, &str, &AtomicUsize, &Mutex<ViewerTally>) -> Res<()>;

pub struct Viewers {
    pub phase: Arc<AtomicUsize>,
    pub tallies: Vec<Arc<Mutex<ViewerTally>>>,
    sockets: Vec<TcpStream>,
    threads: Vec<JoinHandle<()>>,
}

impl Viewers {
    /// `n` viewers of `path`, each on its own thread reading with `watch`.
    pub fn start(addr: SocketAddr, path: &str, n: usize, watch: Watch) -> Res<Viewers> {
        let phase = Arc::new(AtomicUsize::new(WARMING));
        let mut v = Viewers {
            phase,
            tallies: Vec::new(),
            sockets: Vec::new(),
            threads: Vec::new(),
        };
        for i in 0..n {
            let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| e.to_string())?;
            v.sockets.push(s.try_clone().map_err(|e| e.to_string())?);
            let tally = Arc::new(Mutex::new(ViewerTally::default()));
            v.tallies.push(Arc::clone(&tally));
            let phase = Arc::clone(&v.phase);
            let path = path.to_string();
            let t = thread::Builder::new()
                .name(format!("viewer-{i}"))
                .spawn(move || {
                    if let Err(e) = watch(s, &path, &phase, &tally) {
                        if phase.load(Ordering::SeqCst) != DONE {
                            let mut t = lock(&tally);
                            let first = match (t.got_head, t.first_frame) {
                                (_, true) => "after its first frame",
                                (true, false) => "after the response head, before its first frame",
                                (false, false) => "before the response head",
                            };
                            t.error = Some(format!("viewer {i}, {first}: {e}"));
                        }
                    }
                })
                .map_err(|e| e.to_string())?;
            v.threads.push(t);
        }
        Ok(v)
    }

    /// Waits up to 10 s for every viewer's first frame; returns how many
    /// are still waiting (the run goes on: they show as stalled).
    pub fn wait_first_frames(&self) -> Res<usize> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let waiting = self.tallies.iter().filter(|t| !lock(t).first_frame).count();
            if let Some(e) = self.tallies.iter().find_map(|t| lock(t).error.clone()) {
                return Err(format!("a viewer failed: {e}"));
            }
            if waiting == 0 || Instant::now() > deadline {
                return Ok(waiting);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(self) {
        self.phase.store(DONE, Ordering::SeqCst);
        for s in &self.sockets {
            let _ = s.shutdown(Shutdown::Both);
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

pub fn lock(t: &Mutex<ViewerTally>) -> std::sync::MutexGuard<'_, ViewerTally> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

/// A viewer's socket that waits out read timeouts until the run is over,
/// so a stalled stream shows in the figures instead of ending the bench.
pub struct Patient<'a> {
    pub s: TcpStream,
    pub phase: &'a AtomicUsize,
}

impl Read for Patient<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.s.read(buf) {
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) && self.phase.load(Ordering::SeqCst) != DONE => {}
                other => return other,
            }
        }
    }
}

/// Asks for `path` and reads the response head, which must be a 200 of
/// `content_type`; the reader waits out read timeouts until `phase` is DONE.
pub fn open_stream<'a>(
    s: TcpStream,
    path: &str,
    phase: &'a AtomicUsize,
    content_type: &str,
) -> Res<BufReader<Patient<'a>>> {
    s.set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    (&s).write_all(format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut r = BufReader::with_capacity(128 * 1024, Patient { s, phase });
    let head = read_head(&mut r)?;
    let typed = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.eq_ignore_ascii_case("content-type") && v.trim().starts_with(content_type)
        })
    });
    if !head.starts_with("HTTP/1.1 200") || !typed {
        return Err(format!("{path}: {}", head.lines().next().unwrap_or("")));
    }
    Ok(r)
}

pub fn watch_mjpeg(
    s: TcpStream,
    path: &str,
    phase: &AtomicUsize,
    tally: &Mutex<ViewerTally>,
) -> Res<()> {
    let mut r = open_stream(s, path, phase, "multipart/x-mixed-replace")?;
    lock(tally).got_head = true;
    let mut jpeg = Vec::new();
    let mut last_seq: Option<u64> = None;
    while phase.load(Ordering::SeqCst) != DONE {
        let part = read_head(&mut r)?;
        let len = part
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .ok_or_else(|| format!("part without Content-Length: {part:?}"))?;
        jpeg.resize(len, 0);
        r.read_exact(&mut jpeg).map_err(|e| e.to_string())?;
        let received = now_ns();
        let mut t = lock(tally);
        t.first_frame = true;
        if phase.load(Ordering::SeqCst) != MEASURING {
            last_seq = read_stamp(&jpeg).map(|(_, s)| s);
            continue;
        }
        t.frames += 1;
        t.bytes += len as u64;
        match read_stamp(&jpeg) {
            Some((sent, seq)) => {
                let us = received.saturating_sub(sent) / 1000;
                t.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                if let Some(prev) = last_seq {
                    t.gaps += seq.saturating_sub(prev + 1);
                }
                last_seq = Some(seq);
            }
            None => t.unstamped += 1,
        }
    }
    Ok(())
}

/// Reads header lines up to the blank line (skipping blank lines before
/// them, such as the CRLF after the previous part's JPEG).
pub fn read_head(r: &mut impl BufRead) -> Res<String> {
    let mut head = String::new();
    let mut line = String::new();
    for _ in 0..100 {
        line.clear();
        if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("stream closed".into());
        }
        if line.trim().is_empty() {
            if head.is_empty() {
                continue;
            }
            return Ok(head);
        }
        head.push_str(&line);
    }
    Err("header too long".into())
}

pub fn mb(kb: u64) -> String {
    format!("{:.2}", kb as f64 / 1024.0)
}

pub fn command_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into())
}

/// The report's first lines: what, when, on what machine, which binary.
pub fn header(title: &str, bin: &Path) -> String {
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    let size = std::fs::metadata(bin).map_or(0, |m| m.len());
    let path = bin.to_string_lossy();
    format!(
        "{title}, {}\nmachine: {} ({}), nproc {cores}\nbinary: {path}, {size} bytes, {}\n",
        command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        command_line("uname", &["-m"]),
        command_line("uname", &["-sr"]),
        command_line("file", &["-b", &path]),
    )
}

/// Prints the report and writes it to `BENCH_OUT`, or else to `default`
/// (a path in the repository).
pub fn publish(report: &str, default: &str) -> Res<()> {
    print!("{report}");
    let out = std::env::var_os("BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(default));
    std::fs::write(&out, report).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!("written to {}", out.display());
    Ok(())
}
