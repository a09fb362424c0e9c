//! A real browser for the tests where its behaviour is the point: Debian's
//! headless Chromium, and a page server on another loopback origin whose
//! pages report what they saw back to the test.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// True when Chromium can run here; see `programs::require` for the rule.
pub fn have_chromium() -> bool {
    super::programs::require("chromium", "--version", "chromium")
}

/// Serves one HTML page at `/` from its own loopback address (another
/// origin than printcam's) and collects what the page sends to
/// `/report?…`, one query string per report.
pub struct PageServer {
    pub addr: SocketAddr,
    page: Arc<Mutex<String>>,
    reports: Arc<(Mutex<VecDeque<String>>, Condvar)>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PageServer {
    /// `ip` is a loopback address such as 127.0.0.2, so the page's origin
    /// differs from a server on 127.0.0.1. The page is set later
    /// (`set_page`), once it can name the server it talks to.
    pub fn start(ip: &str) -> PageServer {
        let listener = TcpListener::bind((ip, 0)).expect("bind the page server");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("page server address");
        let reports = Arc::new((Mutex::new(VecDeque::new()), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let page = Arc::new(Mutex::new(String::new()));
        let (p, r, s) = (page.clone(), reports.clone(), stop.clone());
        let thread = thread::Builder::new()
            .name("test-pages".into())
            .spawn(move || serve_pages(listener, &p, &r, &s))
            .expect("page server thread");
        PageServer {
            addr,
            page,
            reports,
            stop,
            thread: Some(thread),
        }
    }

    pub fn set_page(&self, html: String) {
        *self.page.lock().unwrap() = html;
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next report, waiting at most `limit`.
    pub fn next_report(&self, limit: Duration) -> Option<String> {
        let (queue, cv) = &*self.reports;
        let deadline = Instant::now() + limit;
        let mut q = queue.lock().unwrap();
        loop {
            if let Some(r) = q.pop_front() {
                return Some(r);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            q = cv.wait_timeout(q, left).unwrap().0;
        }
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_pages(
    listener: TcpListener,
    page: &Mutex<String>,
    reports: &(Mutex<VecDeque<String>>, Condvar),
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((conn, _)) => {
                let html = page.lock().unwrap().clone();
                answer(conn, &html, reports);
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn answer(conn: TcpStream, page: &str, reports: &(Mutex<VecDeque<String>>, Condvar)) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(&conn);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    // The rest of the head; pages send no bodies.
    loop {
        let mut h = String::new();
        match reader.read_line(&mut h) {
            Ok(0) | Err(_) => break,
            Ok(_) if h == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (body, kind) = if let Some(q) = target.strip_prefix("/report?") {
        let (queue, cv) = reports;
        queue.lock().unwrap().push_back(decode(q));
        cv.notify_all();
        (String::new(), "text/plain")
    } else if target == "/" {
        (page.to_string(), "text/html")
    } else {
        (String::new(), "text/plain")
    };
    let status = if target == "/" || target.starts_with("/report?") {
        "200 OK"
    } else {
        "404 Not Found"
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut w = &conn;
    let _ = w.write_all(reply.as_bytes());
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
}

/// Percent-decoding of what `encodeURIComponent` made.
fn decode(q: &str) -> String {
    url::form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| {
            if v.is_empty() {
                k.into_owned()
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A headless Chromium showing `url`, killed and reaped on drop.
pub struct Chromium {
    child: Child,
    profile: PathBuf,
}

impl Chromium {
    pub fn open(url: &str) -> Chromium {
        Chromium::open_sized(url, 1280, 900)
    }

    pub fn open_sized(url: &str, width: u32, height: u32) -> Chromium {
        let profile = fresh_profile("page");
        let child = Command::new("chromium")
            .args(common_flags(&profile))
            .arg(format!("--window-size={width},{height}"))
            // Keeps the page open until the test is done with it.
            .arg("--remote-debugging-port=0")
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        Chromium { child, profile }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Flags for a headless Chromium on a machine with no network and as root.
fn common_flags(profile: &std::path::Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

/// The DOM of `url` after `budget` of page time, as Chromium serializes it.
pub fn dump_dom(url: &str, budget: Duration) -> String {
    let profile = fresh_profile("dom");
    let out = Command::new("chromium")
        .args(common_flags(&profile))
        .arg("--dump-dom")
        .arg(format!("--virtual-time-budget={}", budget.as_millis()))
        .arg(url)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("run chromium");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        out.status.success(),
        "chromium --dump-dom failed: {}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fresh_profile(what: &str) -> PathBuf {
    let profile = std::env::temp_dir().join(format!(
        "printcam-chromium-{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&profile).expect("profile dir");
    profile
}

/// A screenshot of `url` after `budget` of page time, as PNG bytes.
pub fn screenshot(url: &str, width: u32, height: u32, budget: Duration) -> Vec<u8> {
    let profile = fresh_profile("shot");
    let out = profile.join("shot.png");
    let status = Command::new("chromium")
        .args(common_flags(&profile))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", out.display()))
        .arg(format!("--virtual-time-budget={}", budget.as_millis()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run chromium");
    assert!(status.success(), "chromium --screenshot failed: {status}");
    let png = std::fs::read(&out).expect("screenshot written");
    let _ = std::fs::remove_dir_all(&profile);
    png
}
