//! Outside programs the tests run (ffmpeg above all), and the one rule for
//! when one is missing: under CI (`CI` set, to anything) the test fails;
//! elsewhere it is skipped with a loud message naming the Debian package.
//! Every test that needs a program asks `find`, `require`,
//! `require_python_module` or `require_gst_rtsp` here, and all decide
//! through `missing`.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What a missing `what` means with `ci` as the value of `CI`: Err(why the
/// test fails) under CI, otherwise Ok(the skip message).
pub fn missing_verdict(ci: Option<&OsStr>, what: &str, package: &str) -> Result<String, String> {
    if ci.is_some() {
        Err(format!(
            "{what} is missing, and CI is set, so this test fails instead of skipping: \
             install the Debian package(s) {package}"
        ))
    } else {
        Ok(format!(
            "SKIPPED: {what} is missing: install the Debian package(s) {package} to run this test"
        ))
    }
}

/// Says that `what` is missing: panics under CI, otherwise prints the skip
/// message (the caller then returns from the test).
pub fn missing(what: &str, package: &str) {
    match missing_verdict(std::env::var_os("CI").as_deref(), what, package) {
        Ok(skip) => eprintln!("{skip}"),
        Err(fail) => panic!("{fail}"),
    }
}

/// True if `program` runs (`program arg` exits 0); otherwise `missing`.
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

/// `found`, after `missing` when it is false.
fn decide(found: bool, what: &str, package: &str) -> bool {
    if !found {
        missing(what, package);
    }
    found
}

/// The program's path (an absolute one as given, a name searched for as
/// printcam searches for ffmpeg), or None after `missing`.
pub fn find(program: &str, package: &str) -> Option<PathBuf> {
    let found = if program.starts_with('/') {
        Some(PathBuf::from(program)).filter(|p| p.exists())
    } else {
        printcam::ffmpeg::find_program(program)
    };
    if found.is_none() {
        missing(program, package);
    }
    found
}

pub fn have_ffmpeg() -> bool {
    require("ffmpeg", "-version", "ffmpeg")
}

/// True if python3-gi with GStreamer's RTSP server and x264enc is usable;
/// otherwise `missing`.
pub fn require_gst_rtsp() -> bool {
    require_gst_with(
        "x264enc",
        "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base \
         gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly",
    )
}

/// True if GStreamer's RTSP server and `element` are usable (the double's
/// other encoders: x265enc); otherwise `missing` naming `package`.
pub fn require_gst_element(element: &str, package: &str) -> bool {
    require_gst_rtsp() && require_gst_with(element, package)
}

fn require_gst_with(element: &str, package: &str) -> bool {
    let Some(python) = find("/usr/bin/python3", "python3") else {
        return false;
    };
    let check = format!(
        "import gi; gi.require_version('Gst','1.0'); gi.require_version('GstRtspServer','1.0'); \
         from gi.repository import Gst, GstRtspServer; Gst.init(None); \
         assert Gst.ElementFactory.find('{element}')"
    );
    let ok = Command::new(python)
        .args(["-c", &check])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        missing(
            &format!("GStreamer's RTSP server (with {element})"),
            package,
        );
    }
    ok
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

/// What `ffprobe` (at `ffprobe`) says of the first video stream at `url`:
/// `codec,width,height`, and its stderr when it said nothing.
pub fn probe_url(ffprobe: &std::path::Path, url: &str) -> (String, String) {
    let out = Command::new(ffprobe)
        .args([
            "-v",
            "error",
            "-rw_timeout",
            "20000000",
            "-select_streams",
            "v:0",
        ])
        .args([
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run ffprobe");
    (
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
