//! Outside programs the tests run (ffmpeg above all), and the rule for when
//! one is missing: under CI the test fails, elsewhere it is skipped loudly.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// True if `program` runs (`program arg` exits 0). When it does not: panics
/// under CI, otherwise prints what to install and returns false.
pub fn require(program: &str, arg: &str, package: &str) -> bool {
    let found = Command::new(program)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    decide(found, program, package)
}

/// True if Debian's python3 can import `module`; otherwise as `require`.
pub fn require_python_module(module: &str, package: &str) -> bool {
    let found = Command::new("/usr/bin/python3")
        .args(["-c", &format!("import {module}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    decide(found, &format!("python module {module}"), package)
}

/// The rule for a missing program: under CI the test fails, elsewhere it
/// is skipped with a message naming the package.
fn decide(found: bool, what: &str, package: &str) -> bool {
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{what} is required under CI (Debian package: {package})"
        );
        eprintln!(
            "SKIPPED: {what} not found; install the Debian package `{package}` to run this test"
        );
    }
    found
}

pub fn have_ffmpeg() -> bool {
    require("ffmpeg", "-version", "ffmpeg")
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// A child process that is killed and reaped however the test ends.
pub struct Reaped(pub Child);

impl Reaped {
    /// True once the process has exited (and is reaped).
    pub fn exited(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(Some(_)))
    }

    /// Waits up to `limit` for the process to exit on its own.
    pub fn exits_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.exited() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.exited()
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real MJPEG network camera: ffmpeg serving 1280x720 testsrc2 at 15 fps
/// as multipart over HTTP to exactly one client, exiting when it leaves.
/// `content_type` None makes it announce application/octet-stream, as some
/// cheap cameras do.
pub fn ffmpeg_camera(port: u16, content_type: Option<&str>) -> Reaped {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-loglevel", "error", "-re", "-f", "lavfi"])
        .args(["-i", "testsrc2=size=1280x720:rate=15"])
        .args(["-c:v", "mjpeg", "-q:v", "5", "-f", "mpjpeg"]);
    if let Some(ct) = content_type {
        cmd.args(["-content_type", ct]);
    }
    cmd.args(["-listen", "1", &format!("http://127.0.0.1:{port}/stream")])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let camera = Reaped(cmd.spawn().expect("spawn ffmpeg"));
    wait_listening(port);
    camera
}

/// Waits (up to 10 s) until something listens on 127.0.0.1:`port`, read
/// from /proc/net/tcp: connecting to find out would use up the one client
/// an `ffmpeg -listen 1` camera serves.
pub fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let needle = format!(":{port:04X} 00000000:0000 0A");
    while Instant::now() < deadline {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        if table.contains(&needle) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on port {port} after 10 s");
}

/// The multipart content type ffmpeg is told to announce.
pub const FFMPEG_MULTIPART: &str = "multipart/x-mixed-replace;boundary=ffmpeg";
