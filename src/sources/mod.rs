//! One module per camera protocol; each implements `crate::source::Source`.
//! They know nothing of the registry or HTTP, and only `h264_decode` of
//! the hubs (it consumes the hub of a camera's H.264 session):
//! `cameras::build` makes them from a printer's settings and hands them
//! callbacks.

pub mod chamber;
pub mod demo;
pub mod detect;
pub mod exclusive;
pub mod h264_decode;
mod http_client;
mod http_wire;
pub mod mjpeg_http;
pub mod rtsp;
pub mod rtsp_h264;
pub mod rtsp_native;
pub mod snapshot_http;
pub mod tofu;

use crate::source::SourceError;
use crate::urlguard::{self, Policy, Target};

/// A printer's address, checked right before connecting to it: a refused
/// text cannot become acceptable (fatal), a lookup may succeed later.
pub(crate) fn printer_target(
    host: &str,
    port: u16,
    policy: Policy,
) -> std::result::Result<Target, SourceError> {
    let refused = |why: String| format!("printer address refused: {why}");
    urlguard::check_host_text(host, policy).map_err(|why| SourceError::fatal(refused(why)))?;
    urlguard::check_host(host, port, policy).map_err(|why| SourceError::transient(refused(why)))
}

/// `host:port`, an IPv6 address in brackets; for messages.
pub fn label(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
