//! The MJPEG stream: one multipart part per frame on the raw connection
//! until the viewer leaves, the stream is stopped or printcam shuts down.

use super::reply::Reply;
use super::request::Request;
use super::viewers::Viewers;
use crate::cameras::Cameras;
use crate::hub::{self, RecvTimeoutError};
use crate::mjpeg;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long to wait for a frame before checking for shutdown again; also
/// how late a stream may notice that the server is stopping.
const POLL: Duration = Duration::from_secs(1);

/// The frame rate a viewer asked for: missing means the default, anything
/// numeric is clamped to 1–30, anything else is refused.
pub fn parse_fps(query: &str) -> Result<u32, Reply> {
    let given = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "fps")
        .map(|(_, v)| v.into_owned());
    let Some(text) = given else {
        return Ok(hub::DEFAULT_FPS);
    };
    let digits = text.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Reply::detail(
            400,
            &format!(
                "fps must be a whole number from {} to {}, not \"{}\"",
                hub::MIN_FPS,
                hub::MAX_FPS,
                super::router::quote_safely(&text)
            ),
        ));
    }
    // All digits: only overflow can fail, and a huge rate clamps to the maximum.
    let n = digits.parse::<u32>().unwrap_or(u32::MAX);
    Ok(hub::clamp_fps(n))
}

/// Serves the stream of printer `id` while `viewers` has room for it.
/// Errors before the first byte (bad fps, unknown printer, no camera, too
/// many viewers) are ordinary JSON replies. `on_status` is told the status
/// as soon as it is known, for the request log.
pub fn serve(
    cameras: &Arc<Cameras>,
    viewers: &Viewers,
    id: i64,
    query: &str,
    request: &mut Request,
    stopping: &AtomicBool,
    on_status: impl FnOnce(u16),
) {
    let settings = cameras.settings();
    let admitted = parse_fps(query).and_then(|fps| {
        let hub = cameras.hub(id).map_err(|e| Reply::error(&e))?;
        let pass = viewers.admit(id, settings.max_viewers, settings.max_viewers_per_camera)?;
        Ok((hub, fps, pass))
    });
    let (hub, fps, _pass) = match admitted {
        Ok(admitted) => admitted,
        Err(reply) => {
            on_status(reply.status);
            super::access::with_cors(settings, reply).send(request);
            return;
        }
    };
    let sub = hub.subscribe(fps);
    let mut out = request.stream();
    on_status(200);
    if write_head(&mut out, settings.cors_origin.as_deref()).is_err() {
        return;
    }
    let mut sent = 0u64;
    let viewer_left = loop {
        if stopping.load(Ordering::Relaxed) {
            break false;
        }
        match sub.recv(POLL) {
            Ok(frame) => {
                if mjpeg::write_part(&mut out, &frame.jpeg).is_err() {
                    break true;
                }
                sent += 1;
            }
            // The hub may be reconnecting to the camera: keep the viewer,
            // unless it has hung up, which no write would reveal while the
            // camera sends nothing.
            Err(RecvTimeoutError::Timeout) => {
                if hung_up(out) {
                    break true;
                }
            }
            Err(RecvTimeoutError::Disconnected) => break false,
        }
    };
    if !viewer_left {
        // The closing delimiter tells the viewer the stream is over, not cut.
        let _ = write_close_delimiter(&mut out);
    }
    log::debug!(
        "{}: viewer {} done after {sent} frames",
        hub.name(),
        sub.id()
    );
}

/// Whether the viewer has closed its end, seen without blocking. Whatever
/// it sent after its request is read and ignored: a stream takes no input.
fn hung_up(conn: &mut TcpStream) -> bool {
    if conn.set_nonblocking(true).is_err() {
        return true;
    }
    let mut scratch = [0u8; 512];
    // Bounded, so a client that keeps sending cannot hold the thread here.
    let mut gone = false;
    for _ in 0..16 {
        match conn.read(&mut scratch) {
            Ok(0) => gone = true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => gone = e.kind() != ErrorKind::WouldBlock,
        }
        break;
    }
    gone || conn.set_nonblocking(false).is_err()
}

fn write_close_delimiter(out: &mut dyn Write) -> std::io::Result<()> {
    write!(out, "--{}--\r\n", mjpeg::BOUNDARY)?;
    out.flush()
}

fn write_head(out: &mut dyn Write, cors_origin: Option<&str>) -> std::io::Result<()> {
    // The origin was checked for header-safe characters when configured.
    let cors = cors_origin.map_or(String::new(), |o| {
        format!("Access-Control-Allow-Origin: {o}\r\nVary: Origin\r\n")
    });
    let head = format!(
        "HTTP/1.1 200 OK\r\n\
         Content-Type: {}\r\n\
         Cache-Control: no-cache, no-store, must-revalidate\r\n\
         Pragma: no-cache\r\n\
         X-Content-Type-Options: nosniff\r\n\
         {cors}\
         Connection: close\r\n\r\n",
        mjpeg::CONTENT_TYPE
    );
    out.write_all(head.as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fps(q: &str) -> Result<u32, u16> {
        parse_fps(q).map_err(|r| r.status)
    }

    #[test]
    fn fps_is_defaulted_clamped_or_refused() {
        assert_eq!(fps(""), Ok(hub::DEFAULT_FPS));
        assert_eq!(fps("token=x"), Ok(hub::DEFAULT_FPS));
        assert_eq!(fps("fps=5"), Ok(5));
        assert_eq!(fps("fps=0"), Ok(1));
        assert_eq!(fps("fps=99"), Ok(30));
        assert_eq!(fps("fps=99999999999999999999"), Ok(30));
        assert_eq!(fps("fps=%32"), Ok(2));
        assert_eq!(fps("fps=abc"), Err(400));
        assert_eq!(fps("fps=-3"), Err(400));
        assert_eq!(fps("fps=1.5"), Err(400));
        assert_eq!(fps("fps="), Err(400));
    }
}
