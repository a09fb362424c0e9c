//! What a hub tells about itself: the upstream's state and the figures
//! for `camera/status` and `/metrics`.

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
    /// Frames the camera sent that were not usable JPEGs and were skipped.
    pub frames_skipped: u64,
    /// The TLS version of the last camera connection, for TLS cameras.
    pub tls_version: Option<&'static str>,
    /// What the connection decodes, for H.264 cameras' MJPEG.
    pub decoding: Option<crate::source::Decoding>,
    pub last_frame_age_ms: Option<u64>,
    /// Upstream connections opened since the hub was made.
    pub connects: u64,
    /// Of those, the ones opened after a failure.
    pub reconnects: u64,
    pub last_error: Option<String>,
    pub viewer_stats: Vec<ViewerStats>,
}
