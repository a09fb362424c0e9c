//! H.264 passthrough building blocks: NAL units and SPS parsing,
//! RTP depacketizing (RFC 6184) and a fragmented-MP4 muxer (served by
//! stream.mp4 and HLS); and the EXIF Orientation tag of JPEG frames. They
//! know nothing of the hub or HTTP.

/// A group larger than this is not kept (a camera with keyframes far
/// apart); new viewers and HLS segments then wait for the next keyframe.
pub const MAX_GOP_BYTES: usize = 8 * 1024 * 1024;
/// Fragments per group at most, for the same reason.
pub const MAX_GOP_FRAMES: usize = 600;

pub mod bits;
pub mod exif;
pub mod fmp4;
pub mod h264;
pub mod rtp;
pub mod rtp_h264;

use std::fmt;

/// Bytes from a camera that do not parse: what was being read and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaError {
    pub what: &'static str,
    pub detail: String,
}

impl MediaError {
    pub fn new(what: &'static str, detail: impl Into<String>) -> MediaError {
        MediaError {
            what,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for MediaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.detail)
    }
}

impl std::error::Error for MediaError {}

/// A camera that sends what cannot be parsed cannot deliver (503).
impl From<MediaError> for crate::error::Error {
    fn from(e: MediaError) -> Self {
        crate::error::Error::Unavailable(format!("camera stream: {e}"))
    }
}
