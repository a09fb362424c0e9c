//! One hub per camera: opens one upstream for any number of consumers, fans
//! frames out, keeps the latest for snapshots, and counts what happens.
//! (STUB: being written; API fixed.)

use crate::error::Result;
use crate::frame::Frame;
use crate::source::Source;
use std::sync::Arc;
use std::time::Duration;

pub use crossbeam_channel::RecvTimeoutError;

/// Per-viewer frame rate bounds and default.
pub const MIN_FPS: u32 = 1;
pub const MAX_FPS: u32 = 30;
pub const DEFAULT_FPS: u32 = 10;

/// Clamps a requested frame rate to 1–30.
pub fn clamp_fps(fps: u32) -> u32 {
    fps.clamp(MIN_FPS, MAX_FPS)
}

#[derive(Debug, Clone)]
pub struct HubConfig {
    /// How long the upstream stays open after the last consumer leaves.
    pub grace: Duration,
    /// First wait before reconnecting after a failure; doubles up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            grace: Duration::from_secs(5),
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// What the upstream is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamState {
    /// No connection, nobody asked for one.
    Idle,
    Connecting,
    /// Frames are arriving.
    Live,
    /// The last attempt failed; waiting before the next.
    Retrying,
    /// Gave up (a failure retrying cannot fix); the next consumer tries again.
    Failed,
}

impl UpstreamState {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamState::Idle => "idle",
            UpstreamState::Connecting => "connecting",
            UpstreamState::Live => "live",
            UpstreamState::Retrying => "retrying",
            UpstreamState::Failed => "failed",
        }
    }
}

/// One viewer's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewerStats {
    pub id: u64,
    pub fps: u32,
    pub frames_out: u64,
    pub frames_dropped: u64,
    pub connected_ms: u64,
}

/// The hub's figures, for `/camera/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubStats {
    pub state: UpstreamState,
    pub viewers: usize,
    pub frames_in: u64,
    pub frames_out: u64,
    pub frames_dropped: u64,
    pub last_frame_age_ms: Option<u64>,
    /// Upstream connections opened since the hub was made.
    pub connects: u64,
    /// Of those, the ones opened after a failure.
    pub reconnects: u64,
    pub last_error: Option<String>,
    pub viewer_stats: Vec<ViewerStats>,
}

/// A handle to one camera's hub; clones share it.
#[derive(Clone)]
pub struct Hub {}

impl Hub {
    pub fn new(_name: String, _source: Arc<dyn Source>, _config: HubConfig) -> Hub {
        todo!()
    }

    /// A new viewer at `fps` (clamped). The upstream starts if it is not running.
    pub fn subscribe(&self, _fps: u32) -> Subscription {
        todo!()
    }

    /// The latest frame if the camera is live, else starts the upstream and
    /// waits up to `timeout` for a good frame. 503-kind error with the reason
    /// if none comes.
    pub fn snapshot(&self, _timeout: Duration) -> Result<Frame> {
        todo!()
    }

    /// Ends every viewer's stream; returns how many were ended.
    pub fn stop_viewers(&self) -> usize {
        todo!()
    }

    /// Ends all viewers and closes the upstream, waiting for it to finish.
    pub fn shutdown(&self) {
        todo!()
    }

    pub fn stats(&self) -> HubStats {
        todo!()
    }
}

/// A viewer's place in the hub. Dropping it leaves the hub.
pub struct Subscription {}

impl Subscription {
    /// The next frame for this viewer; `Disconnected` once the hub ended the stream.
    pub fn recv(&self, _timeout: Duration) -> std::result::Result<Frame, RecvTimeoutError> {
        todo!()
    }

    pub fn id(&self) -> u64 {
        todo!()
    }
}
