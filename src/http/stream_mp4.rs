//! `camera/stream.mp4`: the camera's H.264 as fragmented MP4 for a
//! `<video>` element, without decoding. A viewer gets the init segment,
//! the group of pictures from the last keyframe (so it shows a picture at
//! once), then one fragment per frame as the camera sends it.

use super::reply::Reply;
use super::request::Request;
use super::stream::{self, Format};
use super::viewers::Viewers;
use crate::cameras::Cameras;
use crate::gop::Gate;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

pub const CONTENT_TYPE: &str = "video/mp4";

/// Serves printer `id`'s MP4 stream while `viewers` has room for it; as
/// `stream::serve` does for MJPEG, with the same limits and figures.
pub fn serve(
    cameras: &Arc<Cameras>,
    viewers: &Viewers,
    id: i64,
    request: &mut Request,
    (stopping, poll): (&AtomicBool, Duration),
    on_status: impl FnOnce(u16),
) {
    let settings = cameras.settings();
    let admitted = cameras
        .mp4_hub(id)
        .map_err(|e| Reply::error(&e))
        .and_then(|(hub, gop)| {
            let pass = viewers.admit(id, settings.max_viewers, settings.max_viewers_per_camera)?;
            // Waits for the camera's first frame (or says why none came),
            // so a failure is a JSON reply and not a video that never starts.
            hub.snapshot(settings.snapshot_timeout)
                .map_err(|e| Reply::error(&e))?;
            Ok((hub, gop, pass))
        });
    let (hub, gop, _pass) = match admitted {
        Ok(admitted) => admitted,
        Err(reply) => return stream::refuse(settings, request, reply, on_status),
    };
    let format = Format::Mp4(Gate::default());
    let sink = match stream::new_sink(&hub, request, settings.write_timeout, format) {
        Ok(sink) => sink,
        Err(reply) => return stream::refuse(settings, request, reply, on_status),
    };
    let Some(joined) = gop.join(|| hub.subscribe_every_frame(sink.clone())) else {
        let reply = Reply::detail(503, "the camera sent no picture yet; try again");
        return stream::refuse(settings, request, reply, on_status);
    };
    on_status(200);
    let out = request.stream();
    let cors = settings.cors_origin.as_deref();
    let started = stream::write_head(&mut &*out, cors, CONTENT_TYPE)
        .and_then(|()| sink.write_first(&joined.init, &joined.fragments));
    if started.is_err() {
        return;
    }
    // A new picture size needs a new init segment, which a stream cannot
    // take: the viewer is ended and its player may reconnect.
    let new_size = || gop.generation() != joined.generation;
    stream::play(&hub, &joined.value, &sink, out, (stopping, poll), &new_size);
}
