//! Finding, running and always reaping ffmpeg (and the small helper programs
//! printcam runs: `v4l2-ctl`). Unix only, like the targets.
//!
//! Every child is put in its own process group (so a stop also reaches
//! anything it forked), gets SIGTERM, then SIGKILL after a grace period, and
//! is always waited for. On Linux it also gets PR_SET_PDEATHSIG so it dies
//! with printcam even if printcam is killed with SIGKILL.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a child gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(2);
/// Lines of stderr kept for error messages.
const TAIL_LINES: usize = 20;
/// Longer stderr lines are cut: the ring must stay small whatever ffmpeg prints.
const TAIL_LINE_MAX: usize = 400;
/// Socket I/O timeout given to ffmpeg's RTSP demuxer, in microseconds.
const RTSP_IO_TIMEOUT_US: &str = "10000000";
/// Time allowed to `ffmpeg -h` and `v4l2-ctl --info`.
const HELPER_TIMEOUT: Duration = Duration::from_secs(5);
/// Where ffmpeg usually lives when PATH (procd, systemd) does not say.
const USUAL_DIRS: &[&str] = &["/usr/bin", "/usr/local/bin", "/opt/homebrew/bin"];

const NOT_FOUND: &str =
    "ffmpeg was not found: install it (apt install ffmpeg / opkg install ffmpeg) or set PRINTCAM_FFMPEG";

/// The ffmpeg to run: `explicit` (the PRINTCAM_FFMPEG setting) if given, else
/// the first one on PATH or in the usual directories.
pub fn find(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        if !p.exists() {
            return Err(format!(
                "the ffmpeg setting (--ffmpeg or PRINTCAM_FFMPEG) is {}, which does not exist",
                p.display()
            ));
        }
        if !is_executable(p) {
            return Err(format!(
                "the ffmpeg setting (--ffmpeg or PRINTCAM_FFMPEG) is {}, which is not an \
                 executable file",
                p.display()
            ));
        }
        return Ok(p.to_path_buf());
    }
    find_program("ffmpeg").ok_or_else(|| NOT_FOUND.to_string())
}

/// `name` on PATH, then in the usual directories.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(USUAL_DIRS.iter().map(PathBuf::from))
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The RTSP demuxer's socket-timeout option for this ffmpeg: `-stimeout` on
/// builds that have it (there `-timeout` may mean listen mode), else
/// `-timeout`. Probed once per path.
pub fn rtsp_timeout_flag(ffmpeg: &Path) -> &'static str {
    probed(
        ffmpeg,
        &["-hide_banner", "-h", "demuxer=rtsp"],
        timeout_flag_from_help,
    )
}

/// How this ffmpeg is told to pass frames on as they come (no frame rate
/// of its own, which would hold each picture until the next one shows how
/// long it lasts): `-fps_mode` since ffmpeg 5.1 (listed in the long help
/// only), `-vsync` before.
pub fn passthrough_flag(ffmpeg: &Path) -> &'static str {
    probed(ffmpeg, &["-hide_banner", "-h", "long"], |help| {
        if help
            .lines()
            .any(|l| l.split_whitespace().next() == Some("-fps_mode"))
        {
            "-fps_mode"
        } else {
            "-vsync"
        }
    })
}

/// What `read` makes of `ffmpeg args…`'s help, asked once per path and
/// question.
fn probed(ffmpeg: &Path, args: &[&str], read: fn(&str) -> &'static str) -> &'static str {
    type Answers = HashMap<(PathBuf, String), &'static str>;
    static CACHE: OnceLock<Mutex<Answers>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let key = (ffmpeg.to_path_buf(), args.join(" "));
    if let Some(answer) = lock(cache).get(&key) {
        return answer;
    }
    // Probed outside the lock: a slow ffmpeg must not hold up other paths.
    let help =
        run_with_timeout(Command::new(ffmpeg).args(args), HELPER_TIMEOUT).unwrap_or_default();
    let answer = read(&help);
    lock(cache).insert(key, answer);
    answer
}

fn timeout_flag_from_help(help: &str) -> &'static str {
    let has_stimeout = help
        .lines()
        .any(|l| l.split_whitespace().next() == Some("-stimeout"));
    if has_stimeout {
        "-stimeout"
    } else {
        "-timeout"
    }
}

/// ffmpeg arguments turning an RTSP URL into MJPEG on stdout.
///
/// TCP interleaved transport because printers expect it and the TLS proxy
/// only carries TCP. `-fflags nobuffer` stops libavformat from buffering
/// packets while it probes the stream and `-flags low_delay` makes the H.264
/// decoder hand out each frame at once instead of holding some for
/// reordering: together they keep the picture close to live (the original
/// service used them for the same reason). `-r` makes ffmpeg drop frames
/// before encoding, so a 2 fps viewer costs little CPU on a router.
pub fn rtsp_args(timeout_flag: &str, url: &str, fps: u32) -> Vec<String> {
    let fps = fps.to_string();
    [
        "-hide_banner",
        "-loglevel",
        "error",
        "-rtsp_transport",
        "tcp",
        timeout_flag,
        RTSP_IO_TIMEOUT_US,
        "-fflags",
        "nobuffer",
        "-flags",
        "low_delay",
        "-i",
        url,
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(mjpeg_output_args(&fps))
    .collect()
}

/// ffmpeg arguments decoding H.264 (Annex B) on stdin into MJPEG on
/// stdout, each picture as soon as its access unit is in: one thread (frame
/// threads hold pictures back), the smallest probe, no reordering delay,
/// frames passed on without a frame rate, every JPEG flushed at once. The
/// feeder ends each access unit with an access unit delimiter, so the
/// parser knows the unit is complete without waiting for the next one.
pub fn decode_args(passthrough_flag: &str) -> Vec<String> {
    [
        "-hide_banner",
        "-loglevel",
        "error",
        "-threads",
        "1",
        "-probesize",
        "32",
        "-analyzeduration",
        "0",
        "-flags",
        "low_delay",
        "-f",
        "h264",
        "-i",
        "pipe:0",
        "-an",
        passthrough_flag,
        "passthrough",
        "-f",
        "mjpeg",
        "-q:v",
        "5",
        "-flush_packets",
        "1",
        "pipe:1",
    ]
    .map(String::from)
    .to_vec()
}

/// ffmpeg arguments turning a V4L2 device into MJPEG on stdout.
pub fn usb_args(device: &str, fps: u32) -> Vec<String> {
    let fps = fps.to_string();
    [
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "v4l2",
        "-framerate",
        &fps,
        "-i",
        device,
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(mjpeg_output_args(&fps))
    .collect()
}

fn mjpeg_output_args(fps: &str) -> impl Iterator<Item = String> {
    ["-an", "-f", "mjpeg", "-q:v", "5", "-r", fps, "-"]
        .map(String::from)
        .into_iter()
}

/// Checks that `path` is `/dev/videoN` with N in 0–99 and that it exists.
pub fn usb_device_ok(path: &str) -> Result<(), String> {
    if !is_video_device_name(path) {
        return Err("a USB camera must be /dev/videoN with N from 0 to 99".to_string());
    }
    if !Path::new(path).exists() {
        return Err(format!("{path} does not exist: is the camera plugged in?"));
    }
    Ok(())
}

fn is_video_device_name(path: &str) -> bool {
    let Some(n) = path.strip_prefix("/dev/video") else {
        return false;
    };
    let digits_only = !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
    digits_only && n.len() <= 2 && !(n.len() == 2 && n.starts_with('0'))
}

/// A local V4L2 device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbCamera {
    pub device: String,
    /// "Card type" from `v4l2-ctl --info`, when it is installed.
    pub name: Option<String>,
    /// "Driver name" from `v4l2-ctl --info`, when it is installed.
    pub driver: Option<String>,
}

/// The `/dev/videoN` devices present, in number order, with what `v4l2-ctl`
/// says about them when it is installed.
pub fn list_usb_cameras() -> Vec<UsbCamera> {
    let mut devices: Vec<(u32, String)> = std::fs::read_dir("/dev")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .map(|name| format!("/dev/{name}"))
                .filter(|p| is_video_device_name(p))
                .filter_map(|p| Some((p["/dev/video".len()..].parse().ok()?, p)))
                .collect()
        })
        .unwrap_or_default();
    devices.sort();
    let v4l2_ctl = find_program("v4l2-ctl");
    devices
        .into_iter()
        .map(|(_, device)| {
            let info = v4l2_ctl.as_ref().and_then(|prog| {
                run_with_timeout(
                    Command::new(prog).args(["--device", &device, "--info"]),
                    HELPER_TIMEOUT,
                )
            });
            let field = |key: &str| info.as_deref().and_then(|i| v4l2_field(i, key));
            UsbCamera {
                name: field("Card type"),
                driver: field("Driver name"),
                device,
            }
        })
        .collect()
}

/// The value of `key   : value` in `v4l2-ctl --info` output.
fn v4l2_field(info: &str, key: &str) -> Option<String> {
    info.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        let v = v.trim();
        (k.trim() == key && !v.is_empty()).then(|| v.to_string())
    })
}

/// Runs a short helper program and returns its stdout, or None if it failed
/// to start or did not finish in time (it is then killed and reaped).
fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Option<String> {
    let mut child = Child::spawn_command(cmd.stdin(Stdio::null())).ok()?;
    let mut stdout = child.take_stdout()?;
    // The reader thread ends when the child (and its process group) is gone.
    let reader = crate::sync::spawn("helper-stdout".into(), None, move || {
        let mut out = Vec::new();
        let _ = (&mut stdout).take(1 << 20).read_to_end(&mut out);
        out
    })
    .ok()?;
    let deadline = Instant::now() + timeout;
    while child.try_wait().is_none() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let finished = child.try_wait().is_some();
    child.stop();
    let out = reader.join().ok()?;
    finished.then(|| String::from_utf8_lossy(&out).into_owned())
}

use crate::sync::lock;

/// A running child process whose stderr is drained into a small ring of
/// redacted lines. Dropping it stops and reaps it.
///
/// On Linux the child is killed when the thread that spawned it exits
/// (PR_SET_PDEATHSIG follows the thread, not the process): spawn it on the
/// thread that owns it, as sources do.
pub struct Child {
    inner: std::process::Child,
    pid: u32,
    status: Option<ExitStatus>,
    stdout: Option<std::process::ChildStdout>,
    stdin: Option<std::process::ChildStdin>,
    tail: Arc<Mutex<VecDeque<String>>>,
    drain: Option<JoinHandle<()>>,
}

impl Child {
    /// Starts `program args…` with stdin null and stdout, stderr piped.
    pub fn spawn(program: &Path, args: &[String]) -> io::Result<Child> {
        Child::spawn_command(Command::new(program).args(args).stdin(Stdio::null()))
    }

    /// As `spawn`, with stdin a pipe (`take_stdin`).
    pub fn spawn_fed(program: &Path, args: &[String]) -> io::Result<Child> {
        Child::spawn_command(Command::new(program).args(args).stdin(Stdio::piped()))
    }

    fn spawn_command(cmd: &mut Command) -> io::Result<Child> {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        #[cfg(target_os = "linux")]
        {
            // SAFETY: prctl and getppid are async-signal-safe; nothing else
            // runs between fork and exec.
            unsafe {
                let parent = libc::getpid();
                cmd.pre_exec(move || {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    // The parent may have died before prctl took effect.
                    if libc::getppid() != parent {
                        libc::_exit(1);
                    }
                    Ok(())
                });
            }
        }
        let mut inner = cmd.spawn()?;
        let pid = inner.id();
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
        let drain = match inner.stderr.take() {
            Some(stderr) => {
                let ring = Arc::clone(&tail);
                let spawned = crate::sync::spawn(format!("stderr-{pid}"), None, move || {
                    drain_stderr(stderr, &ring)
                });
                match spawned {
                    Ok(h) => Some(h),
                    Err(e) => {
                        // An undrained stderr would hang the child: do not keep it.
                        let _ = inner.kill();
                        let _ = inner.wait();
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        let stdout = inner.stdout.take();
        let stdin = inner.stdin.take();
        Ok(Child {
            inner,
            pid,
            status: None,
            stdout,
            stdin,
            tail,
            drain,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The child's stdout (once).
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.stdout.take()
    }

    /// The child's stdin (once), when spawned with `spawn_fed`.
    pub fn take_stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.stdin.take()
    }

    /// The last lines of stderr, passwords in URLs redacted, joined by "; ".
    pub fn tail(&self) -> String {
        let ring = lock(&self.tail);
        ring.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The exit status if the child has exited (it is then reaped).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.inner.try_wait().ok().flatten();
        }
        self.status
    }

    /// Asks the child to exit (SIGTERM to its process group) without waiting.
    /// Does nothing once it has been reaped, so the pid cannot have been reused.
    pub fn terminate(&mut self) {
        if self.try_wait().is_none() {
            signal_group(self.pid, libc::SIGTERM);
        }
    }

    /// SIGTERM, up to `STOP_GRACE` to exit, then SIGKILL; always reaps the
    /// child and joins the stderr thread. Idempotent. Returns the exit status
    /// (None only if waiting failed).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if self.try_wait().is_none() {
            signal_group(self.pid, libc::SIGTERM);
            let deadline = Instant::now() + STOP_GRACE;
            while self.try_wait().is_none() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
        }
        if self.try_wait().is_none() {
            signal_group(self.pid, libc::SIGKILL);
            self.status = self.inner.wait().ok();
        }
        if let Some(h) = self.drain.take() {
            // Something the child forked and left behind could hold stderr
            // open forever: wait a bounded time, then let the thread go.
            let deadline = Instant::now() + STOP_GRACE;
            while !h.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
            }
            if h.is_finished() {
                let _ = h.join();
            } else {
                log::warn!(
                    "a child of ffmpeg (pid {}) still holds its stderr open",
                    self.pid
                );
            }
        }
        self.status
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Signals the process group led by `pid`. Only called while the leader is
/// unreaped, so the group id still belongs to our child.
fn signal_group(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: plain syscalls; a negative pid addresses the process group.
        // If the child left its group (setsid), signal it alone.
        unsafe {
            if libc::kill(-pid, sig) != 0 {
                libc::kill(pid, sig);
            }
        }
    }
}

fn drain_stderr(mut stderr: std::process::ChildStderr, ring: &Mutex<VecDeque<String>>) {
    let mut buf = [0u8; 4096];
    let mut line = Vec::with_capacity(TAIL_LINE_MAX);
    loop {
        let n = match stderr.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == b'\n' || b == b'\r' {
                push_line(ring, &mut line);
            } else if line.len() < TAIL_LINE_MAX {
                line.push(b);
            }
        }
    }
    push_line(ring, &mut line);
}

fn push_line(ring: &Mutex<VecDeque<String>>, line: &mut Vec<u8>) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    if !text.is_empty() {
        let text = crate::redact::url_passwords(text);
        let mut ring = lock(ring);
        if ring.len() == TAIL_LINES {
            ring.pop_front();
        }
        ring.push_back(text);
    }
    line.clear();
}

/// Waits until `fd` is readable (or at EOF/error), up to `timeout`.
/// Returns Ok(false) on timeout.
pub fn wait_readable(fd: std::os::fd::RawFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd for the duration of the call.
    let r = unsafe { libc::poll(&mut pfd, 1, ms) };
    match r {
        r if r < 0 => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
        0 => Ok(false),
        _ => Ok(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usb_args_exact() {
        assert_eq!(
            usb_args("/dev/video0", 5).join(" "),
            "-hide_banner -loglevel error -f v4l2 -framerate 5 -i /dev/video0 \
             -an -f mjpeg -q:v 5 -r 5 -"
        );
    }

    #[test]
    fn rtsp_args_exact() {
        assert_eq!(
            rtsp_args("-stimeout", "rtsp://127.0.0.1:5000/x", 2).join(" "),
            "-hide_banner -loglevel error -rtsp_transport tcp -stimeout 10000000 \
             -fflags nobuffer -flags low_delay -i rtsp://127.0.0.1:5000/x \
             -an -f mjpeg -q:v 5 -r 2 -"
        );
    }

    #[test]
    fn url_is_one_argument() {
        let args = rtsp_args("-timeout", "rtsp://a b/c", 1);
        assert!(args.iter().any(|a| a == "rtsp://a b/c"));
    }

    #[test]
    fn timeout_flag_probe() {
        let old = "  -stimeout          <int>        .D........ set timeout (in microseconds) of socket TCP I/O operations\n  -timeout <int> listen";
        assert_eq!(timeout_flag_from_help(old), "-stimeout");
        let new = "  -timeout           <int64>      .D......... set timeout (in microseconds)\n  -listen_timeout <int>";
        assert_eq!(timeout_flag_from_help(new), "-timeout");
        assert_eq!(timeout_flag_from_help(""), "-timeout");
    }

    #[test]
    fn video_device_names() {
        for ok in ["/dev/video0", "/dev/video9", "/dev/video10", "/dev/video99"] {
            assert!(is_video_device_name(ok), "{ok}");
        }
        for bad in [
            "/dev/video",
            "/dev/video00",
            "/dev/video01",
            "/dev/video100",
            "/dev/video-1",
            "/dev/video1 ",
            "/dev/video1/../sda",
            "/dev/videoa",
            "/dev/video+1",
            "dev/video1",
            "/dev/video1\0",
            "/dev/video١",
        ] {
            assert!(!is_video_device_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn usb_device_must_exist() {
        assert!(usb_device_ok("/dev/video98").is_err() || Path::new("/dev/video98").exists());
        assert!(usb_device_ok("/etc/passwd").is_err());
    }

    #[test]
    fn v4l2_info_fields() {
        let info = "Driver Info:\n\tDriver name      : uvcvideo\n\tCard type        : HD Pro Webcam C920\n\tBus info         : usb-0000:00:14.0-1\n";
        assert_eq!(v4l2_field(info, "Driver name").as_deref(), Some("uvcvideo"));
        assert_eq!(
            v4l2_field(info, "Card type").as_deref(),
            Some("HD Pro Webcam C920")
        );
        assert_eq!(v4l2_field(info, "Serial"), None);
    }

    #[test]
    fn find_explicit() {
        assert!(find(Some(Path::new("/nonexistent/ffmpeg")))
            .unwrap_err()
            .contains("does not exist"));
        let plain = std::env::temp_dir().join(format!("printcam-not-exec-{}", std::process::id()));
        std::fs::write(&plain, "x").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = find(Some(&plain)).unwrap_err();
        let _ = std::fs::remove_file(&plain);
        assert!(err.contains("not an executable"), "{err}");
        assert_eq!(
            find(Some(Path::new("/bin/sh"))).unwrap(),
            PathBuf::from("/bin/sh")
        );
    }

    #[test]
    fn helper_output_and_timeout() {
        let out = run_with_timeout(
            Command::new("/bin/sh").args(["-c", "echo hi"]),
            HELPER_TIMEOUT,
        );
        assert_eq!(out.as_deref(), Some("hi\n"));
        let t = Instant::now();
        let out = run_with_timeout(
            Command::new("/bin/sh").args(["-c", "sleep 30"]),
            Duration::from_millis(200),
        );
        assert_eq!(out, None);
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn stderr_tail_is_kept_and_bounded() {
        let mut c = Child::spawn(
            Path::new("/bin/sh"),
            &[
                "-c".into(),
                "i=0; while [ $i -lt 30 ]; do echo line$i >&2; i=$((i+1)); done".into(),
            ],
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while c.try_wait().is_none() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        assert!(c.stop().is_some_and(|s| s.success()));
        let tail = c.tail();
        assert!(tail.starts_with("line10; "), "{tail}");
        assert!(tail.ends_with("line29"), "{tail}");
    }
}
