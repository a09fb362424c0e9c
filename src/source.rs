//! The one small interface between the hub and the protocols: a source turns
//! "connect" into a sequence of JPEG frames and knows nothing of HTTP.

use std::fmt;
use std::time::Duration;

/// Formats a duration for messages: "5 s", "0.5 s".
pub fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// How long any source waits for a TCP connection to a camera or printer
/// (and, over TLS, for the handshake): one value for every kind of camera.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The hub's side of one upstream connection, handed to a running source.
pub trait Upstream {
    /// Hands over one complete JPEG. Returns false when the hub wants the
    /// connection closed; the source should then return `Ok(())` promptly.
    fn emit(&self, jpeg: Vec<u8>) -> bool;
    /// True once the hub wants this connection closed.
    fn stopping(&self) -> bool;
    /// Sleeps up to `d`; returns false early if the hub wants the connection closed.
    fn sleep(&self, d: Duration) -> bool;
    /// The frame rate the fastest current consumer wants, 1–30.
    fn wanted_fps(&self) -> u32;
    /// Registers how to interrupt a blocking read or a child process when the
    /// hub closes this connection from outside (stop, shutdown). Replaces any
    /// earlier canceller of the same connection.
    fn on_cancel(&self, cancel: Box<dyn Fn() + Send + Sync>);
    /// Counts one frame the camera sent that was unusable (not a JPEG) and
    /// was skipped without dropping the connection.
    fn skipped_frame(&self) {}
    /// The TLS version the camera connection negotiated ("TLS 1.2",
    /// "TLS 1.3"), for the figures.
    fn tls_version(&self, _version: &'static str) {}
    /// How far the current connection got ("TLS handshake with …, logged
    /// in"), so a camera that accepts and then sends nothing is told apart
    /// from one that cannot be reached.
    fn reached(&self, _step: String) {}
    /// The frame rate the fastest viewer wants; None while only snapshots
    /// (one-shot captures) keep the connection open.
    fn viewer_fps(&self) -> Option<u32> {
        Some(self.wanted_fps())
    }
    /// What a source that decodes H.264 feeds its decoder, for the figures.
    fn decoding(&self, _decoding: Decoding) {}
}

/// What a source that decodes H.264 into JPEGs decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoding {
    /// Only keyframes go to the decoder: every consumer wants no more
    /// pictures than the camera sends keyframes.
    pub keyframes_only: bool,
    /// Frames given to the decoder on this connection.
    pub frames_decoded: u32,
}

/// Why an upstream connection ended. The message is shown to users: it must
/// say what to do and never contain a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    pub message: String,
    /// False when retrying cannot help (ffmpeg missing, a bad setting): the hub
    /// then ends its streams instead of reconnecting forever.
    pub retry: bool,
}

impl SourceError {
    /// A failure worth retrying with backoff (network, camera, protocol).
    pub fn transient(message: impl Into<String>) -> Self {
        SourceError {
            message: message.into(),
            retry: true,
        }
    }

    /// A failure that retrying cannot fix.
    pub fn fatal(message: impl Into<String>) -> Self {
        SourceError {
            message: message.into(),
            retry: false,
        }
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SourceError {}

/// A camera protocol. One value per camera; `run` is called once per
/// connection attempt, never twice at the same time for the same camera.
pub trait Source: Send + Sync {
    /// A short description for logs and status, without secrets.
    fn describe(&self) -> String;

    /// True for sources whose first frame after connecting may be stale (some
    /// MJPEG cameras): a one-shot capture then prefers the second frame.
    fn warmup_frame(&self) -> bool {
        false
    }

    /// Connects and delivers frames through `up` until `up.emit` or
    /// `up.stopping` says to stop (then `Ok(())`) or the connection fails.
    fn run(&self, up: &dyn Upstream) -> Result<(), SourceError>;
}

/// Passes everything on to the hub, running `first` once, right before the
/// first frame: what a connection that delivered a frame has proved (the
/// printer knew the access code, the camera is of this kind) is acted on
/// only then.
pub struct OnFirstFrame<'a> {
    up: &'a dyn Upstream,
    first: std::cell::Cell<Option<Box<dyn FnOnce() + 'a>>>,
    fired: std::cell::Cell<bool>,
}

impl<'a> OnFirstFrame<'a> {
    pub fn new(up: &'a dyn Upstream, first: impl FnOnce() + 'a) -> Self {
        OnFirstFrame {
            up,
            first: std::cell::Cell::new(Some(Box::new(first))),
            fired: std::cell::Cell::new(false),
        }
    }

    /// True once a frame has gone through.
    pub fn fired(&self) -> bool {
        self.fired.get()
    }
}

impl Upstream for OnFirstFrame<'_> {
    fn emit(&self, jpeg: Vec<u8>) -> bool {
        if let Some(first) = self.first.take() {
            first();
        }
        self.fired.set(true);
        self.up.emit(jpeg)
    }
    fn stopping(&self) -> bool {
        self.up.stopping()
    }
    fn sleep(&self, d: Duration) -> bool {
        self.up.sleep(d)
    }
    fn wanted_fps(&self) -> u32 {
        self.up.wanted_fps()
    }
    fn on_cancel(&self, cancel: Box<dyn Fn() + Send + Sync>) {
        self.up.on_cancel(cancel);
    }
    fn skipped_frame(&self) {
        self.up.skipped_frame();
    }
    fn tls_version(&self, version: &'static str) {
        self.up.tls_version(version);
    }
    fn reached(&self, step: String) {
        self.up.reached(step);
    }
    fn viewer_fps(&self) -> Option<u32> {
        self.up.viewer_fps()
    }
    fn decoding(&self, decoding: Decoding) {
        self.up.decoding(decoding);
    }
}
