//! ffmpeg-fed cameras: external rtsp:// and rtsps:// URLs, the RTSPS camera
//! of X1/H2/P2 printers (port 322), and local V4L2 (USB) devices.
//!
//! ffmpeg decodes and re-encodes to MJPEG on its stdout, which is split into
//! JPEGs here. RTSPS always goes through the in-process TLS proxy, so ffmpeg
//! only ever speaks plain RTSP to 127.0.0.1.
//!
//! The frame rate is fixed when ffmpeg starts (the fastest viewer's wish at
//! that moment, at most 30): restarting ffmpeg on every change would cost a
//! printer reconnection and a few seconds without picture, while viewers that
//! want fewer frames simply skip some.

/// The local plain-RTSP end ffmpeg talks to, TLS to the camera.
pub mod tls_proxy;

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::ChildStdout;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use url::Url;

use self::tls_proxy::TlsProxy;
use super::tofu::{PinCheck, PrinterTls, Tofu};
use crate::ffmpeg::{self, Child};
use crate::jpeg::{Splitter, MAX_FRAME};
use crate::redact;
use crate::source::{OnFirstFrame, Source, SourceError, Upstream};
use crate::tls::Dialer;
use crate::urlguard::{self, Policy, Target};

const MAX_FPS: u32 = 30;
/// No byte from ffmpeg for this long means the camera is gone (ffmpeg's own
/// RTSP socket timeout is 10 s; a V4L2 device has none).
const STALL: Duration = Duration::from_secs(30);
/// How often the read loop looks at `up.stopping()`.
const POLL: Duration = Duration::from_millis(500);
const READ_CHUNK: usize = 64 * 1024;
const BAMBU_PATH: &str = "/streaming/live/1";

const LIVEVIEW_OFF: &str = "the printer refused the camera connection: enable LAN mode liveview in the printer's network settings";

enum Kind {
    Url {
        url: String,
        policy: Policy,
        tls: Option<Arc<ClientConfig>>,
    },
    Bambu {
        host: String,
        port: u16,
        access_code: String,
        tls: PrinterTls,
        policy: Policy,
        quirks: Quirks,
    },
    Usb {
        device: String,
    },
}

/// A camera read through ffmpeg.
pub struct Rtsp {
    kind: Kind,
    ffmpeg: Option<PathBuf>,
}

impl Rtsp {
    /// An external rtsp:// or rtsps:// camera. rtsps needs `tls` (the caller
    /// decides how the camera's certificate is checked).
    pub fn url(
        url: String,
        ffmpeg: Option<PathBuf>,
        policy: Policy,
        tls: Option<Arc<ClientConfig>>,
    ) -> Rtsp {
        Rtsp {
            kind: Kind::Url { url, policy, tls },
            ffmpeg,
        }
    }

    /// A printer's own RTSPS camera:
    /// `rtsps://bblp:<access code>@host:port/streaming/live/1`, its
    /// certificate checked by `tls`.
    pub fn bambu(
        host: String,
        port: u16,
        access_code: String,
        tls: Arc<ClientConfig>,
        ffmpeg: Option<PathBuf>,
        policy: Policy,
    ) -> Rtsp {
        let tls = PrinterTls::Fixed(tls);
        Rtsp::printer(host, port, access_code, tls, ffmpeg, policy)
    }

    /// A printer's own RTSPS camera whose certificate is pinned on first use
    /// (`tofu`): a connection with a different certificate is refused for
    /// good, with the message saying how to accept it.
    pub fn bambu_pinned(
        host: String,
        port: u16,
        access_code: String,
        tofu: Arc<Tofu>,
        ffmpeg: Option<PathBuf>,
        policy: Policy,
    ) -> Rtsp {
        let tls = PrinterTls::Tofu(tofu);
        Rtsp::printer(host, port, access_code, tls, ffmpeg, policy)
    }

    fn printer(
        host: String,
        port: u16,
        access_code: String,
        tls: PrinterTls,
        ffmpeg: Option<PathBuf>,
        policy: Policy,
    ) -> Rtsp {
        Rtsp {
            kind: Kind::Bambu {
                host,
                port,
                access_code,
                tls,
                policy,
                quirks: Quirks::default(),
            },
            ffmpeg,
        }
    }

    /// A printer camera with its model family's quirks (none for other
    /// cameras).
    pub fn with_quirks(mut self, q: Quirks) -> Rtsp {
        if let Kind::Bambu { quirks, .. } = &mut self.kind {
            *quirks = q;
        }
        self
    }

    /// A local V4L2 device, `/dev/videoN`.
    pub fn usb(device: String, ffmpeg: Option<PathBuf>) -> Rtsp {
        Rtsp {
            kind: Kind::Usb { device },
            ffmpeg,
        }
    }

    fn secrets(&self) -> Vec<String> {
        match &self.kind {
            Kind::Bambu { access_code, .. } => vec![access_code.clone()],
            Kind::Url { url, .. } => Url::parse(url)
                .map(|u| redact::url_secret_parts(&u))
                .unwrap_or_default(),
            Kind::Usb { .. } => Vec::new(),
        }
    }

    fn redact(&self, text: &str) -> String {
        let secrets = self.secrets();
        let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        redact::secrets(text, &refs)
    }

    /// What to run: ffmpeg's input arguments and the proxy it goes through.
    fn prepare(&self, ffmpeg_path: &Path, fps: u32) -> Result<Prepared, SourceError> {
        match &self.kind {
            Kind::Usb { device } => {
                ffmpeg::usb_device_ok(device).map_err(SourceError::fatal)?;
                Ok(Prepared {
                    args: ffmpeg::usb_args(device, fps),
                    proxy: None,
                    pin: None,
                })
            }
            Kind::Bambu {
                host,
                port,
                access_code,
                tls,
                policy,
                quirks,
            } => {
                // Resolved and checked now, before the access code goes anywhere.
                let target = super::printer_target(host, *port, *policy)?;
                let (dialer, pin) = tls.check();
                let proxy = start_proxy(target, dialer)?;
                // The access code is in ffmpeg's argument list, which local
                // users can read (/proc/<pid>/cmdline); the README says so.
                let local = local_url(proxy.local_port(), BAMBU_PATH, Some(("bblp", access_code)))?;
                Ok(Prepared {
                    args: quirks.apply(rtsp_args(ffmpeg_path, &local, fps)),
                    proxy: Some(proxy),
                    pin,
                })
            }
            Kind::Url { url, policy, tls } => {
                urlguard::check_text(url, *policy)
                    .map_err(|e| SourceError::fatal(self.redact(&e)))?;
                let (parsed, target) = urlguard::check_resolved(url, *policy)
                    .map_err(|e| SourceError::transient(self.redact(&e)))?;
                match parsed.scheme() {
                    // ffmpeg gets the checked address, not the name to
                    // resolve again (a second answer could differ).
                    "rtsp" => Ok(Prepared {
                        args: rtsp_args(ffmpeg_path, &at_address(&parsed, &target)?, fps),
                        proxy: None,
                        pin: None,
                    }),
                    "rtsps" => {
                        let tls = tls.as_ref().ok_or_else(|| {
                            SourceError::fatal("rtsps cameras need TLS settings (internal error)")
                        })?;
                        prepare_rtsps_url(&parsed, target, tls, ffmpeg_path, fps)
                    }
                    _ => Err(SourceError::fatal(
                        "an rtsp camera needs an rtsp:// or rtsps:// URL",
                    )),
                }
            }
        }
    }

    fn confirm_pin(&self, check: &PinCheck) {
        if let Kind::Bambu { tls, .. } = &self.kind {
            tls.confirm(check, &self.describe());
        }
    }

    fn is_printer(&self) -> bool {
        matches!(self.kind, Kind::Bambu { .. })
    }

    /// Runs ffmpeg and hands its frames to `up` until told to stop or
    /// ffmpeg ends. The child is always stopped and reaped before returning.
    /// `Ok(true)`: restart ffmpeg at a higher frame rate.
    fn stream(
        &self,
        ffmpeg_path: &Path,
        run: &Prepared,
        fps: u32,
        up: &dyn Upstream,
    ) -> Result<bool, SourceError> {
        let (args, proxy) = (&run.args, run.proxy.as_ref());
        let mut child = Child::spawn(ffmpeg_path, args).map_err(|e| {
            SourceError::transient(format!("cannot start {}: {e}", ffmpeg_path.display()))
        })?;
        let stdout = child.take_stdout();
        let child = Arc::new(Mutex::new(child));
        let cancel_child = Arc::clone(&child);
        // Only a signal here: the hub's thread must not wait 2 s, and the
        // read loop below notices the stop and does the full stop and reap.
        up.on_cancel(Box::new(move || lock(&cancel_child).terminate()));
        let read = match stdout {
            Some(out) => read_jpegs(out, up, || {
                let faster = up.wanted_fps().min(MAX_FPS) > fps;
                Ok(faster.then_some(Ended::FasterWanted))
            }),
            None => Err(SourceError::transient("ffmpeg has no stdout")),
        };
        let status = lock(&child).stop();
        let tail = lock(&child).tail();
        if up.stopping() {
            return Ok(false);
        }
        match read {
            Ok(Ended::Stopped) => Ok(false),
            Ok(Ended::FasterWanted) => Ok(true),
            Err(e) => Err(SourceError {
                message: self.redact(&e.message),
                ..e
            }),
            Ok(Ended::Eof { frames }) => Err(self.ended_error(proxy, status, &tail, frames)),
        }
    }

    /// Why ffmpeg ended, in words a user can act on.
    fn ended_error(
        &self,
        proxy: Option<&TlsProxy>,
        status: Option<std::process::ExitStatus>,
        tail: &str,
        frames: u64,
    ) -> SourceError {
        let refused = proxy.is_some_and(TlsProxy::refused)
            || (frames == 0 && tail.contains("Connection refused"));
        if self.is_printer() && refused {
            return SourceError::transient(LIVEVIEW_OFF);
        }
        let proxy_error = proxy.and_then(TlsProxy::last_error);
        let status = status.map_or_else(|| "unknown status".to_string(), |s| s.to_string());
        let detail = match (proxy_error, tail.is_empty()) {
            (Some(p), _) => format!("camera connection failed: {p}"),
            (None, false) => tail.to_string(),
            (None, true) => "no error message".to_string(),
        };
        SourceError::transient(self.redact(&format!(
            "ffmpeg ended ({status}) after {frames} frames: {detail}"
        )))
    }
}

/// How a printer family's camera stream must be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quirks {
    /// The frames' own timestamps are unusable: P2S firmware 01.02.00.00
    /// stamps them so that ffmpeg's `-r N` keeps one frame and drops the
    /// rest. ffmpeg then stamps them on arrival instead, after probing
    /// more of the stream (Bambuddy's fix for the same printers).
    pub wallclock_timestamps: bool,
}

/// Input options of the wall-clock fix: 5 MB and 5 s of probing.
const WALLCLOCK_ARGS: [&str; 6] = [
    "-use_wallclock_as_timestamps",
    "1",
    "-probesize",
    "5000000",
    "-analyzeduration",
    "5000000",
];

impl Quirks {
    /// `args` with the input options these quirks need put before `-i`.
    fn apply(self, mut args: Vec<String>) -> Vec<String> {
        if self.wallclock_timestamps {
            let at = args.iter().position(|a| a == "-i").unwrap_or(0);
            args.splice(at..at, WALLCLOCK_ARGS.map(String::from));
        }
        args
    }
}

impl Quirks {
    /// The quirks of printers of the P2S family.
    pub fn p2s() -> Quirks {
        Quirks {
            wallclock_timestamps: true,
        }
    }
}

struct Prepared {
    args: Vec<String>,
    proxy: Option<TlsProxy>,
    /// A printer's pin check, for certificates pinned on first use.
    pin: Option<PinCheck>,
}

/// Why reading ffmpeg's output ended without an error.
pub(super) enum Ended {
    Stopped,
    Eof {
        frames: u64,
    },
    /// A viewer wants more frames than ffmpeg was started for.
    FasterWanted,
}

use crate::sync::lock;

fn rtsp_args(ffmpeg_path: &Path, url: &str, fps: u32) -> Vec<String> {
    ffmpeg::rtsp_args(ffmpeg::rtsp_timeout_flag(ffmpeg_path), url, fps)
}

fn start_proxy(target: Target, dialer: Dialer) -> Result<TlsProxy, SourceError> {
    let host = target.host();
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| SourceError::fatal(format!("{host} is not a valid host name")))?;
    TlsProxy::start_with(target, dialer, name)
        .map_err(|e| SourceError::transient(format!("cannot start the local TLS proxy: {e}")))
}

/// `url` with its host replaced by `target`'s first checked address and its
/// port made explicit; user info, path and query are kept.
fn at_address(url: &Url, target: &Target) -> Result<String, SourceError> {
    let addr = target.first_addr();
    let host = match addr.ip() {
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    let mut out = url.clone();
    let moved = out.set_host(Some(&host)).is_ok() && out.set_port(Some(addr.port())).is_ok();
    if !moved {
        return Err(SourceError::fatal("cannot build the camera URL for ffmpeg"));
    }
    Ok(out.to_string())
}

/// `rtsp://[user:pass@]127.0.0.1:<port><path>`, userinfo percent-encoded.
fn local_url(
    port: u16,
    path_and_query: &str,
    userinfo: Option<(&str, &str)>,
) -> Result<String, SourceError> {
    camera_url(
        "rtsp",
        &format!("127.0.0.1:{port}"),
        path_and_query,
        userinfo,
    )
    .ok_or_else(|| SourceError::fatal("cannot build the local camera URL"))
}

/// A printer's own camera as a URL, for clients that take one (the
/// native RTSP client): `rtsps://bblp:<access code>@host:port/streaming/live/1`,
/// the access code percent-encoded, an IPv6 address in brackets.
pub fn bambu_url(host: &str, port: u16, access_code: &str) -> Option<String> {
    let at = super::label(host, port);
    camera_url("rtsps", &at, BAMBU_PATH, Some(("bblp", access_code)))
}

/// `scheme://[user:pass@]at<path>`, userinfo percent-encoded.
fn camera_url(
    scheme: &str,
    at: &str,
    path_and_query: &str,
    userinfo: Option<(&str, &str)>,
) -> Option<String> {
    let mut u = Url::parse(&format!("{scheme}://{at}{path_and_query}")).ok()?;
    if let Some((user, pass)) = userinfo {
        u.set_username(user).ok()?;
        u.set_password(Some(pass)).ok()?;
    }
    Some(u.to_string())
}

/// The proxy connects to `target`'s checked addresses; ffmpeg to the proxy.
fn prepare_rtsps_url(
    parsed: &Url,
    target: Target,
    tls: &Arc<ClientConfig>,
    ffmpeg_path: &Path,
    fps: u32,
) -> Result<Prepared, SourceError> {
    let proxy = start_proxy(target, Dialer::fixed(Arc::clone(tls)))?;
    let mut local = parsed.clone();
    let moved = local.set_scheme("rtsp").is_ok()
        && local.set_host(Some("127.0.0.1")).is_ok()
        && local.set_port(Some(proxy.local_port())).is_ok();
    if !moved {
        return Err(SourceError::fatal("cannot build the local camera URL"));
    }
    Ok(Prepared {
        args: rtsp_args(ffmpeg_path, local.as_str(), fps),
        proxy: Some(proxy),
        pin: None,
    })
}

/// Reads ffmpeg's stdout into JPEGs for `up` until the hub stops, ffmpeg's
/// stdout ends, nothing arrives for `STALL`, or `check` (asked between
/// reads) says to end.
pub(super) fn read_jpegs(
    mut stdout: ChildStdout,
    up: &dyn Upstream,
    mut check: impl FnMut() -> Result<Option<Ended>, SourceError>,
) -> Result<Ended, SourceError> {
    let fd = stdout.as_raw_fd();
    let mut splitter = Splitter::new(MAX_FRAME);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut frames = Vec::new();
    let mut count = 0u64;
    let mut last_data = Instant::now();
    loop {
        if up.stopping() {
            return Ok(Ended::Stopped);
        }
        if let Some(ended) = check()? {
            return Ok(ended);
        }
        // poll() first: a pipe read has no timeout of its own.
        let readable = ffmpeg::wait_readable(fd, POLL)
            .map_err(|e| SourceError::transient(format!("reading ffmpeg: {e}")))?;
        if !readable {
            if last_data.elapsed() > STALL {
                return Err(SourceError::transient(format!(
                    "no video from the camera for {} s",
                    STALL.as_secs()
                )));
            }
            continue;
        }
        let n = match stdout.read(&mut buf) {
            Ok(0) => return Ok(Ended::Eof { frames: count }),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(SourceError::transient(format!("reading ffmpeg: {e}"))),
        };
        last_data = Instant::now();
        splitter.push(&buf[..n], &mut frames);
        for jpeg in frames.drain(..) {
            count += 1;
            if !up.emit(jpeg) {
                return Ok(Ended::Stopped);
            }
        }
    }
}

impl Source for Rtsp {
    fn describe(&self) -> String {
        match &self.kind {
            Kind::Url { url, .. } => format!("rtsp camera {}", self.redact(url)),
            Kind::Bambu { host, port, .. } => {
                format!(
                    "printer camera rtsps://{}{BAMBU_PATH}",
                    super::label(host, *port)
                )
            }
            Kind::Usb { device } => format!("USB camera {device}"),
        }
    }

    /// ffmpeg runs at the fastest viewer's frame rate: when a faster viewer
    /// arrives it is restarted (after the old one is reaped and its camera
    /// connection closed); a slower one changes nothing.
    fn run(&self, up: &dyn Upstream) -> Result<(), SourceError> {
        let ffmpeg_path = ffmpeg::find(self.ffmpeg.as_deref()).map_err(SourceError::fatal)?;
        loop {
            let fps = up.wanted_fps().clamp(1, MAX_FPS);
            if !self.run_at(&ffmpeg_path, fps, up)? {
                return Ok(());
            }
            log::debug!(
                "{}: restarting ffmpeg for {} fps",
                self.describe(),
                up.wanted_fps()
            );
        }
    }
}

impl Rtsp {
    /// One ffmpeg at `fps`; `Ok(true)` when it should be restarted faster.
    fn run_at(&self, ffmpeg_path: &Path, fps: u32, up: &dyn Upstream) -> Result<bool, SourceError> {
        let mut prepared = self.prepare(ffmpeg_path, fps)?;
        let result = {
            let prepared = &prepared;
            let first_frame = move || {
                if let Some(version) = prepared.proxy.as_ref().and_then(TlsProxy::tls_version) {
                    up.tls_version(version);
                }
                if let Some(check) = &prepared.pin {
                    self.confirm_pin(check);
                }
            };
            let on_first = OnFirstFrame::new(up, first_frame);
            self.stream(ffmpeg_path, prepared, fps, &on_first)
        };
        if let Some(p) = prepared.proxy.as_mut() {
            p.stop();
        }
        // ffmpeg only saw the proxy hang up: the refusal itself is the news,
        // and reconnecting cannot change the certificate.
        match prepared.pin.and_then(|check| check.refusal()) {
            Some(changed) if result.is_err() => Err(SourceError::fatal(changed)),
            _ => result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p2s_quirks_give_ffmpeg_wall_clock_timestamps() {
        let args = |q: Quirks| q.apply(vec!["-a".into(), "-i".into(), "url".into()]);
        let fixed = args(Quirks::p2s());
        assert_eq!(fixed[..3], ["-a", "-use_wallclock_as_timestamps", "1"]);
        assert_eq!(fixed[fixed.len() - 2..], ["-i", "url"]);
        assert_eq!(args(Quirks::default()), ["-a", "-i", "url"]);
    }

    #[test]
    fn local_url_encodes_userinfo() {
        assert_eq!(
            local_url(4000, BAMBU_PATH, Some(("bblp", "12345678"))).unwrap(),
            "rtsp://bblp:12345678@127.0.0.1:4000/streaming/live/1"
        );
        assert_eq!(
            local_url(4000, "/a", Some(("bblp", "a@b:c/d"))).unwrap(),
            "rtsp://bblp:a%40b%3Ac%2Fd@127.0.0.1:4000/a"
        );
    }

    #[test]
    fn bambu_url_brackets_ipv6_and_encodes_the_code() {
        assert_eq!(
            bambu_url("192.168.1.20", 322, "12345678").as_deref(),
            Some("rtsps://bblp:12345678@192.168.1.20:322/streaming/live/1")
        );
        assert_eq!(
            bambu_url("fd00::5", 322, "a@b/c").as_deref(),
            Some("rtsps://bblp:a%40b%2Fc@[fd00::5]:322/streaming/live/1")
        );
        assert_eq!(bambu_url("bad host", 322, "12345678"), None);
    }

    fn ffmpeg_input(s: &Rtsp) -> Result<String, SourceError> {
        let prepared = s.prepare(Path::new("/nonexistent/ffmpeg"), 5)?;
        let at = prepared.args.iter().position(|a| a == "-i").unwrap();
        Ok(prepared.args[at + 1].clone())
    }

    #[test]
    fn ffmpeg_gets_the_checked_address_not_the_name() {
        let loopback_ok = Policy {
            allow_loopback: true,
        };
        let s = Rtsp::url(
            "rtsp://admin:pw@localhost:8554/live?ch=1".into(),
            None,
            loopback_ok,
            None,
        );
        let input = ffmpeg_input(&s).unwrap();
        let parsed = Url::parse(&input).unwrap();
        let ip: std::net::IpAddr = parsed
            .host_str()
            .unwrap()
            .trim_matches(['[', ']'])
            .parse()
            .unwrap_or_else(|_| panic!("not an address: {input}"));
        assert!(ip.is_loopback(), "{input}");
        assert_eq!(parsed.port(), Some(8554));
        assert_eq!(
            (parsed.username(), parsed.password()),
            ("admin", Some("pw"))
        );
        assert_eq!(parsed.path(), "/live");
        assert_eq!(parsed.query(), Some("ch=1"));
        // Without the allowance the name is refused before ffmpeg runs.
        let s = Rtsp::url(
            "rtsp://admin:pw@localhost:8554/live".into(),
            None,
            Policy::default(),
            None,
        );
        let e = ffmpeg_input(&s).unwrap_err();
        assert!(
            e.message.contains("loopback") && !e.message.contains("pw@"),
            "{e}"
        );
    }

    #[test]
    fn at_address_brackets_ipv6_and_keeps_the_rest() {
        let (url, target) =
            urlguard::check_resolved("rtsp://u:p%40w@[fd00::5]/live?a=b", Policy::default())
                .unwrap();
        assert_eq!(
            at_address(&url, &target).unwrap(),
            "rtsp://u:p%40w@[fd00::5]:554/live?a=b"
        );
        let (url, target) =
            urlguard::check_resolved("rtsp://167772165/live", Policy::default()).unwrap();
        assert_eq!(
            at_address(&url, &target).unwrap(),
            "rtsp://10.0.0.5:554/live"
        );
    }

    #[test]
    fn descriptions_hide_secrets() {
        let s = Rtsp::url(
            "rtsp://admin:hunter2@10.0.0.9:554/live".into(),
            None,
            Policy::default(),
            None,
        );
        assert!(!s.describe().contains("hunter2"), "{}", s.describe());
        assert!(!s
            .redact("error opening rtsp://admin:hunter2@10.0.0.9 hunter2")
            .contains("hunter2"));
    }

    #[test]
    fn missing_ffmpeg_is_fatal() {
        struct Up;
        impl Upstream for Up {
            fn emit(&self, _: Vec<u8>) -> bool {
                true
            }
            fn stopping(&self) -> bool {
                false
            }
            fn sleep(&self, _: Duration) -> bool {
                true
            }
            fn wanted_fps(&self) -> u32 {
                5
            }
            fn on_cancel(&self, _: Box<dyn Fn() + Send + Sync>) {}
        }
        let s = Rtsp::usb("/dev/video0".into(), Some("/nonexistent/ffmpeg".into()));
        let e = s.run(&Up).unwrap_err();
        assert!(!e.retry);
        let s = Rtsp::usb("/dev/video001".into(), Some("/bin/sh".into()));
        let e = s.run(&Up).unwrap_err();
        assert!(!e.retry && e.message.contains("/dev/videoN"), "{e}");
    }
}
