//! `camera/stream.m3u8` and the segments it lists: HLS of the camera's
//! H.264 for Safari and iPhones, from the same session as `stream.mp4`.
//! A player polls the playlist about once a segment; each request counts
//! as a snapshot consumer, so the hub's grace period keeps the camera open
//! between polls.

use super::access;
use super::reply::Reply;
use super::request::Request;
use crate::cameras::Cameras;
use crate::gop::Gop;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
pub const INIT_TYPE: &str = "video/mp4";
pub const SEGMENT_TYPE: &str = "video/iso.segment";

/// The playlist of the segments kept; the first request of a camera that
/// is not running waits (up to the snapshot timeout) for one segment.
pub fn playlist(cameras: &Arc<Cameras>, id: i64, request: &Request) -> Result<Reply, Reply> {
    let gop = keep_open(cameras, id, true)?;
    let (_, generation) = gop.init().ok_or_else(no_picture)?;
    // The playlist's URIs are relative to it, so they work under /api/v1
    // too; they carry the token the playlist was fetched with.
    let token = access::page_token(cameras.settings(), request).map(|t| {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", &t)
            .finish()
    });
    let and_token = token.as_ref().map_or(String::new(), |t| format!("&{t}"));
    let only_token = token.as_ref().map_or(String::new(), |t| format!("?{t}"));
    // A new init segment (new picture size) gets a new URI, so players
    // fetch it again.
    let init_uri = format!("hls/init.mp4?v={generation}{and_token}");
    let text = crate::hls::playlist(&gop.segments().list(), &init_uri, |n| {
        format!("hls/{n}.m4s{only_token}")
    });
    Ok(Reply::text(200, PLAYLIST_TYPE, text))
}

pub fn init(cameras: &Arc<Cameras>, id: i64) -> Result<Reply, Reply> {
    let gop = keep_open(cameras, id, false)?;
    let (init, _) = gop.init().ok_or_else(no_picture)?;
    Ok(Reply::bytes(INIT_TYPE, init))
}

/// Segment `sequence`; 404 once it has left the ring.
pub fn segment(cameras: &Arc<Cameras>, id: i64, sequence: u64) -> Result<Reply, Reply> {
    let gop = keep_open(cameras, id, false)?;
    let segment = gop.segments().get(sequence).ok_or_else(|| {
        Reply::detail(
            404,
            &format!("segment {sequence} is no longer kept; fetch the playlist again"),
        )
    })?;
    Ok(Reply::bytes(SEGMENT_TYPE, segment.data.clone()))
}

/// Printer `id`'s MP4 camera, started if need be and kept open for the
/// grace period; with `first_segment`, once it has a complete segment.
fn keep_open(cameras: &Arc<Cameras>, id: i64, first_segment: bool) -> Result<Arc<Gop>, Reply> {
    let settings = cameras.settings();
    let (hub, gop) = cameras.mp4_hub(id).map_err(|e| Reply::error(&e))?;
    gop.segments().want();
    let deadline = Instant::now() + settings.snapshot_timeout;
    let left = || deadline.saturating_duration_since(Instant::now());
    hub.snapshot(left()).map_err(|e| Reply::error(&e))?;
    if !first_segment {
        return Ok(gop);
    }
    // A segment ends at the next keyframe, which may be longer in coming
    // than the grace period: asking again keeps the camera open meanwhile.
    let step = (settings.grace / 2).clamp(Duration::from_millis(10), Duration::from_millis(100));
    while !gop.segments().wait_for_one(step.min(left())) {
        if left().is_zero() {
            return Err(Reply::detail(
                503,
                "the camera sent no complete group of pictures yet; try again",
            ));
        }
        hub.snapshot(left()).map_err(|e| Reply::error(&e))?;
    }
    Ok(gop)
}

fn no_picture() -> Reply {
    Reply::detail(503, "the camera sent no picture yet; try again")
}
