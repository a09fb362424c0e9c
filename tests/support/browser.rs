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

impl Chromium {
    /// The page's DevTools connection, once Chromium has opened it (up to
    /// 30 s): for what a page's own script does not report, such as a
    /// `<video>`'s playback or a screenshot of the page as it is.
    pub fn devtools(&self) -> Devtools {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(page) = self.page_socket() {
                return Devtools::connect(&page);
            }
            assert!(
                Instant::now() < deadline,
                "chromium opened no DevTools page"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The first page's DevTools address (`127.0.0.1:PORT`, path), from the
    /// port Chromium wrote into its profile and its `/json/list`.
    fn page_socket(&self) -> Option<(String, String)> {
        let file = std::fs::read_to_string(self.profile.join("DevToolsActivePort")).ok()?;
        let port: u16 = file.lines().next()?.trim().parse().ok()?;
        let host = format!("127.0.0.1:{port}");
        let list = http_get(&host, "/json/list")?;
        let targets = printcam::json::parse(&list).ok()?;
        let printcam::json::Value::Array(targets) = targets else {
            return None;
        };
        let page = targets
            .iter()
            .find(|t| t.get("type").and_then(|v| v.as_str()) == Some("page"))?;
        let url = page.get("webSocketDebuggerUrl")?.as_str()?;
        let path = url.strip_prefix(&format!("ws://{host}"))?.to_string();
        Some((host, path))
    }
}

/// A GET's body, or None. DevTools keeps the connection open (and
/// answers no HTTP/1.0), so the body is read by its length.
fn http_get(host: &str, path: &str) -> Option<String> {
    let mut conn = TcpStream::connect(host).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    conn.set_write_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(conn, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").ok()?;
    let head = read_head(&mut conn)?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    let len: usize = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })?;
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).ok()?;
    String::from_utf8(body).ok()
}

/// An HTTP head, read a byte at a time so nothing after it is taken.
fn read_head(conn: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).ok()?;
        head.push(byte[0]);
    }
    String::from_utf8(head).ok()
}

/// A Chrome DevTools Protocol connection to one page: a WebSocket client
/// just big enough for commands and their answers.
pub struct Devtools {
    conn: TcpStream,
    next_id: u64,
}

impl Devtools {
    fn connect((host, path): &(String, String)) -> Devtools {
        let mut conn = TcpStream::connect(host.as_str()).expect("connect to DevTools");
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        conn.set_write_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            conn,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: cHJpbnRjYW0tdGVzdHMtMQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let head = read_head(&mut conn).expect("DevTools handshake");
        assert!(head.starts_with("HTTP/1.1 101"), "DevTools said {head}");
        Devtools { conn, next_id: 1 }
    }

    /// Sends `method` with `params` (a JSON object) and returns its result.
    pub fn call(&mut self, method: &str, params: &str) -> printcam::json::Value {
        let message = self.call_raw(method, params);
        let v = printcam::json::parse(&message).expect("DevTools sends JSON");
        assert!(v.get("error").is_none(), "{method}: {message}");
        v.get("result").cloned().expect("a result")
    }

    /// The whole answer to `method`, as text.
    fn call_raw(&mut self, method: &str, params: &str) -> String {
        let id = self.next_id;
        self.next_id += 1;
        let name = printcam::json::Value::from(method).to_json();
        self.send(&format!(
            r#"{{"id":{id},"method":{name},"params":{params}}}"#
        ));
        // Events (none are asked for) carry no id.
        let mine = format!(r#"{{"id":{id},"#);
        loop {
            let message = self.receive();
            if message.starts_with(&mine) {
                return message;
            }
        }
    }

    /// The value of the JavaScript `expression` (which must give a string).
    pub fn eval(&mut self, expression: &str) -> String {
        let expr = printcam::json::Value::from(expression).to_json();
        let r = self.call(
            "Runtime.evaluate",
            &format!(r#"{{"expression":{expr},"returnByValue":true,"awaitPromise":true}}"#),
        );
        let value = r.get("result").and_then(|r| r.get("value"));
        match value.and_then(|v| v.as_str()) {
            Some(s) => s.to_string(),
            None => panic!("{expression} gave no string: {}", r.to_json()),
        }
    }

    /// The page as shown now, as PNG bytes, at `width` x `height` CSS
    /// pixels (`mobile`: as a phone lays it out).
    pub fn screenshot(&mut self, width: u32, height: u32, mobile: bool) -> Vec<u8> {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            &format!(
                r#"{{"width":{width},"height":{height},"deviceScaleFactor":1,"mobile":{mobile}}}"#
            ),
        );
        // The answer can pass printcam's JSON limit (1 MB): its one
        // string is taken as it stands (base64 needs no unescaping).
        let answer = self.call_raw("Page.captureScreenshot", r#"{"format":"png"}"#);
        let data = answer
            .split_once(r#""data":""#)
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(data, _)| data)
            .expect("PNG data");
        base64_decode(data)
    }

    fn send(&mut self, text: &str) {
        let mask = [0x5a, 0x13, 0xc7, 0x2e];
        let mut frame = vec![0x81];
        let len = text.len();
        if len < 126 {
            frame.push(0x80 | len as u8);
        } else if len < 65536 {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
        frame.extend_from_slice(&mask);
        frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.conn.write_all(&frame).expect("send to DevTools");
    }

    /// One whole text message (its frames joined).
    fn receive(&mut self) -> String {
        let mut message = Vec::new();
        loop {
            let mut head = [0u8; 2];
            self.conn.read_exact(&mut head).expect("DevTools frame");
            let len = match head[1] & 0x7f {
                126 => {
                    let mut n = [0u8; 2];
                    self.conn.read_exact(&mut n).unwrap();
                    u16::from_be_bytes(n) as usize
                }
                127 => {
                    let mut n = [0u8; 8];
                    self.conn.read_exact(&mut n).unwrap();
                    u64::from_be_bytes(n) as usize
                }
                n => n as usize,
            };
            let mut payload = vec![0u8; len];
            self.conn
                .read_exact(&mut payload)
                .expect("DevTools payload");
            message.extend_from_slice(&payload);
            if head[0] & 0x80 != 0 {
                return String::from_utf8(message).expect("DevTools sends UTF-8");
            }
        }
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').map(value).collect();
    digits
        .chunks(4)
        .flat_map(|c| {
            let n = c
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &d)| n | (d as u32) << (18 - 6 * i));
            let bytes = n.to_be_bytes();
            bytes[1..c.len()].to_vec()
        })
        .collect()
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

/// True when Firefox ESR can run here; see `programs::require` for the rule.
pub fn have_firefox() -> bool {
    super::programs::require("firefox-esr", "--version", "firefox-esr")
}

/// A headless Firefox ESR showing `url` from a fresh temporary profile,
/// killed and reaped on drop. Firefox has no `--dump-dom`: its pages report
/// to a `PageServer`.
pub struct Firefox {
    child: Child,
    profile: PathBuf,
}

/// Preferences that keep a test's Firefox off the network (only loopback
/// is allowed) and let a muted video play by itself.
const FIREFOX_PREFS: &str = r#"
user_pref("app.update.enabled", false);
user_pref("app.update.auto", false);
user_pref("app.normandy.enabled", false);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("browser.aboutwelcome.enabled", false);
user_pref("browser.safebrowsing.malware.enabled", false);
user_pref("browser.safebrowsing.phishing.enabled", false);
user_pref("browser.safebrowsing.downloads.enabled", false);
user_pref("browser.safebrowsing.update.enabled", false);
user_pref("browser.search.update", false);
user_pref("captivedetect.canonicalURL", "");
user_pref("datareporting.healthreport.uploadEnabled", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("extensions.update.enabled", false);
user_pref("extensions.blocklist.enabled", false);
user_pref("media.autoplay.default", 0);
user_pref("media.gmp-manager.updateEnabled", false);
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("network.dns.disablePrefetch", true);
user_pref("network.prefetch-next", false);
user_pref("services.settings.server", "http://127.0.0.1:9/");
user_pref("toolkit.telemetry.enabled", false);
"#;

impl Firefox {
    pub fn open(url: &str) -> Firefox {
        let profile = fresh_profile("firefox");
        std::fs::write(profile.join("user.js"), FIREFOX_PREFS).expect("firefox prefs");
        let child = Command::new("firefox-esr")
            .args(["--headless", "--no-remote", "--profile"])
            .arg(&profile)
            .arg(url)
            // A root user's HOME may hold another profile: none is read.
            .env("HOME", &profile)
            .env("MOZ_CRASHREPORTER_DISABLE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start firefox-esr");
        Firefox { child, profile }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Firefox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
