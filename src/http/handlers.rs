//! The answers to every route except the stream: printers, camera snapshot,
//! test, status and stop, health and the page.

use super::body;
use super::page;
use super::printers;
use super::reply::Reply;
use super::request::Request;
use super::router::Route;
use crate::cameras::{Cameras, TestResult};
use crate::error::Error;
use crate::hub::{HubStats, UpstreamState, ViewerStats};
use crate::json::Value;
use std::sync::Arc;

/// Answers `route`.
pub fn handle(cameras: &Arc<Cameras>, route: Route, request: &Request) -> Reply {
    answer(cameras, route, request).unwrap_or_else(|reply| reply)
}

fn answer(cameras: &Arc<Cameras>, route: Route, request: &Request) -> Result<Reply, Reply> {
    let reply = match route {
        Route::Page => page_reply(cameras, request)?,
        Route::PageScript => Reply::text(
            200,
            "application/javascript; charset=utf-8",
            page::SCRIPT.to_string(),
        ),
        Route::Health => Reply::json(200, &Value::object([("status", Value::from("ok"))])),
        Route::UsbCameras => Reply::json(200, &usb_cameras_json()),
        Route::ListPrinters => {
            let all = cameras.printers().map_err(err)?;
            Reply::json(
                200,
                &Value::Array(all.iter().map(printers::to_json).collect()),
            )
        }
        Route::GetPrinter(id) => printer_reply(200, cameras, id)?,
        Route::CreatePrinter => {
            let v = body::read_json(request)?;
            let p = printers::new_from_json(&v).map_err(invalid)?;
            let saved = cameras.add(&p).map_err(err)?;
            let id = saved.value;
            let p = cameras.printer(id).map_err(err)?;
            Reply::json(201, &printers::saved_json(&p, &saved.warnings))
                .with_header("Location", format!("/printers/{id}"))
        }
        Route::UpdatePrinter(id) => {
            let v = body::read_json(request)?;
            let patch = printers::update_from_json(&v).map_err(invalid)?;
            let saved = cameras.update(id, &patch).map_err(err)?;
            Reply::json(200, &printers::saved_json(&saved.value, &saved.warnings))
        }
        Route::DeletePrinter(id) => {
            cameras.remove_printer(id).map_err(err)?;
            Reply::json(200, &Value::object([("deleted", Value::from(id))]))
        }
        Route::ForgetCert(id) => {
            cameras.forget_cert(id).map_err(err)?;
            printer_reply(200, cameras, id)?
        }
        Route::Snapshot(id) => Reply::jpeg(&cameras.snapshot(id).map_err(err)?, id),
        Route::Hls(id) => super::hls::playlist(cameras, id, request)?,
        Route::HlsInit(id) => super::hls::init(cameras, id)?,
        Route::HlsSegment(id, sequence) => super::hls::segment(cameras, id, sequence)?,
        Route::HlsOf(id) => hls_of(id, request.url()),
        Route::Test(id) => Reply::json(200, &test_json(&cameras.test(id).map_err(err)?)),
        Route::Status(id) => {
            let mjpeg = cameras.status(id).map_err(err)?;
            let mp4 = cameras.mp4_status(id).map_err(err)?;
            Reply::json(200, &status_json(id, mjpeg, mp4))
        }
        Route::Stop(id) => {
            let n = cameras.stop(id).map_err(err)?;
            Reply::json(200, &Value::object([("stopped", Value::from(n))]))
        }
        // Streams take the request itself, metrics the server's figures, and
        // named sources are resolved first: the dispatcher never sends
        // them here.
        Route::Stream(_) | Route::StreamMp4(_) | Route::Metrics | Route::BySource(_) => {
            Reply::not_found()
        }
    };
    Ok(reply)
}

fn err(e: Error) -> Reply {
    Reply::error(&e)
}

fn invalid(why: String) -> Reply {
    Reply::detail(400, &why)
}

fn printer_reply(status: u16, cameras: &Cameras, id: i64) -> Result<Reply, Reply> {
    let p = cameras.printer(id).map_err(err)?;
    Ok(Reply::json(status, &printers::to_json(&p)))
}

fn test_json(t: &TestResult) -> Value {
    let mut members = vec![
        ("success", Value::from(t.success)),
        (
            "camera",
            Value::object([
                ("kind", Value::from(t.camera)),
                ("detected", Value::from(t.detected)),
            ]),
        ),
    ];
    if let Some(r) = &t.resolution {
        members.push(("resolution", Value::from(r.as_str())));
    }
    if let Some(e) = &t.error {
        members.push(("error", Value::from(crate::redact::url_passwords(e))));
    }
    Value::object(members)
}

/// The hub's figures; a camera nobody has used yet is idle with zeros.
/// The wall, or with `?camera=ID` that one camera at full rate.
fn page_reply(cameras: &Arc<Cameras>, request: &Request) -> Result<Reply, Reply> {
    let token = super::access::page_token(cameras.settings(), request);
    let (_, query) = super::router::split_target(request.url());
    if let Some(id) = super::router::query_value(query, "camera") {
        let id = id
            .parse::<i64>()
            .map_err(|_| Reply::detail(400, "camera must be a printer id"))?;
        let printer = cameras.printer(id).map_err(err)?;
        return Ok(Reply::html(page::view(&printer, token.as_deref())));
    }
    let printers = cameras.printers().map_err(err)?;
    let tiles: Vec<page::Tile> = printers
        .iter()
        .map(|printer| page::Tile {
            printer,
            stats: cameras.status(printer.id).ok().flatten(),
        })
        .collect();
    Ok(Reply::html(page::wall(&tiles, token.as_deref())))
}

/// go2rtc's HLS URL answered with the camera's own playlist URL, relative
/// (so a reverse proxy's prefix stays), with the query but for `src` (a
/// token goes along): players follow it, and the playlist's segment URIs
/// are relative to where it is.
fn hls_of(id: i64, target: &str) -> Reply {
    let (_, query) = super::router::split_target(target);
    let rest: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.starts_with("src="))
        .collect();
    let mut location = format!("../printers/{id}/camera/stream.m3u8");
    if !rest.is_empty() {
        location.push('?');
        location.push_str(&rest.join("&"));
    }
    Reply::empty(302).with_header("Location", location)
}

/// The MJPEG hub's figures, with those of the `stream.mp4` hub under
/// `mp4` once it was used (null before).
fn status_json(id: i64, stats: Option<HubStats>, mp4: Option<HubStats>) -> Value {
    let mut figures = hub_json(stats);
    if let Value::Object(members) = &mut figures {
        members.insert(0, ("id".into(), Value::from(id)));
        members.push(("mp4".into(), mp4.map_or(Value::Null, |s| hub_json(Some(s)))));
    }
    figures
}

fn hub_json(stats: Option<HubStats>) -> Value {
    let s = stats.unwrap_or_else(|| HubStats {
        state: UpstreamState::Idle,
        viewers: 0,
        frames_in: 0,
        frames_out: 0,
        frames_dropped: 0,
        frames_skipped: 0,
        tls_version: None,
        decoding: None,
        last_frame_age_ms: None,
        connects: 0,
        reconnects: 0,
        last_error: None,
        viewer_stats: Vec::new(),
    });
    Value::object([
        ("state", Value::from(s.state.as_str())),
        ("viewers", Value::from(s.viewers)),
        ("frames_in", Value::from(s.frames_in)),
        ("frames_out", Value::from(s.frames_out)),
        ("frames_dropped", Value::from(s.frames_dropped)),
        ("frames_skipped", Value::from(s.frames_skipped)),
        ("tls_version", Value::from(s.tls_version)),
        ("decoder", s.decoding.map_or(Value::Null, decoding_json)),
        ("last_frame_age_ms", Value::from(s.last_frame_age_ms)),
        ("connects", Value::from(s.connects)),
        ("reconnects", Value::from(s.reconnects)),
        (
            "last_error",
            Value::from(s.last_error.as_deref().map(crate::redact::url_passwords)),
        ),
        (
            "viewer_list",
            Value::Array(s.viewer_stats.iter().map(viewer_json).collect()),
        ),
    ])
}

/// What an H.264 camera's MJPEG side decodes: "keyframes" when every
/// consumer wants no more pictures than the camera sends keyframes.
fn decoding_json(d: crate::source::Decoding) -> Value {
    let feed = if d.keyframes_only {
        "keyframes"
    } else {
        "every frame"
    };
    Value::object([
        ("decodes", Value::from(feed)),
        ("frames_decoded", Value::from(d.frames_decoded)),
    ])
}

fn viewer_json(v: &ViewerStats) -> Value {
    Value::object([
        ("id", Value::from(v.id)),
        ("fps", Value::from(v.fps)),
        ("frames_out", Value::from(v.frames_out)),
        ("frames_dropped", Value::from(v.frames_dropped)),
        ("connected_ms", Value::from(v.connected_ms)),
    ])
}

/// The V4L2 devices a usb camera can use.
fn usb_cameras_json() -> Value {
    let optional = |v: &Option<String>| v.as_deref().map_or(Value::Null, Value::from);
    Value::Array(
        crate::ffmpeg::list_usb_cameras()
            .iter()
            .map(|c| {
                Value::object([
                    ("device", Value::from(c.device.as_str())),
                    ("name", optional(&c.name)),
                    ("driver", optional(&c.driver)),
                ])
            })
            .collect(),
    )
}
