//! The MJPEG stream: one multipart part per frame on the raw connection
//! until the viewer leaves, the stream is stopped or printcam shuts down.

use super::mjpeg;
use super::nonblocking::{self, wait_either, Wake, Woken};
use super::reply::Reply;
use super::request::Request;
use super::viewers::Viewers;
use crate::cameras::Cameras;
use crate::frame::Frame;
use crate::hub::{self, Delivery, Sent, Sink, TryRecvError};
use std::io::{self, ErrorKind, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The frame rate a viewer asked for: missing means the default, any whole
/// number (negative or huge too) is clamped to 1–30, anything else is
/// refused.
pub fn parse_fps(query: &str) -> Result<u32, Reply> {
    let given = super::router::query_value(query, "fps");
    let Some(text) = given else {
        return Ok(hub::DEFAULT_FPS);
    };
    let digits = text.trim();
    let unsigned = digits.strip_prefix('-').unwrap_or(digits);
    if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
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
    if digits.starts_with('-') {
        return Ok(hub::MIN_FPS);
    }
    // All digits: only overflow can fail, and a huge rate clamps to the maximum.
    let n = digits.parse::<u32>().unwrap_or(u32::MAX);
    Ok(hub::clamp_fps(n))
}

/// Serves the stream of printer `id` while `viewers` has room for it.
/// Errors before the first byte (bad fps, unknown printer, no camera, too
/// many viewers) are ordinary JSON replies. `on_status` is told the status
/// as soon as it is known, for the request log. The flag says the server
/// is stopping; it is looked at every `poll`.
pub fn serve(
    cameras: &Arc<Cameras>,
    viewers: &Viewers,
    id: i64,
    query: &str,
    request: &mut Request,
    (stopping, poll): (&AtomicBool, Duration),
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
            super::access::with_cors(settings, reply).send(request.stream());
            return;
        }
    };
    let out = request.stream();
    let sink = match out
        .try_clone()
        .and_then(|conn| ViewerSink::new(conn, settings.write_timeout))
    {
        Ok(sink) => Arc::new(sink),
        Err(e) => {
            log::warn!("{}: cannot serve a viewer: {e}", hub.name());
            on_status(503);
            Reply::detail(503, "cannot serve the stream now; try again").send(request.stream());
            return;
        }
    };
    let sub = hub.subscribe_direct(fps, sink.clone());
    on_status(200);
    if write_head(&mut &*out, settings.cors_origin.as_deref()).is_err() {
        return;
    }
    sub.deliver_directly();
    let viewer_left = loop {
        if stopping.load(Ordering::Relaxed) {
            break false;
        }
        match sub.try_recv() {
            Ok(delivery) => {
                if sink.finish(&delivery).is_err() {
                    break true;
                }
                sub.deliver_directly();
                continue;
            }
            Err(TryRecvError::Disconnected) => break sink.is_gone(),
            Err(TryRecvError::Empty) => {}
        }
        // Waits on the connection too, so a viewer who hangs up frees its
        // place at once, also while the camera sends nothing (the hub may
        // be reconnecting) and no write would reveal it.
        if wait_either(out, &sink.wake, poll) == Woken::Socket && hung_up(out) {
            break true;
        }
    };
    if !viewer_left {
        // The closing delimiter tells the viewer the stream is over, not cut.
        let _ = sink.close();
    }
    log::debug!("{}: viewer {} done", hub.name(), sub.id());
}

/// A viewer's connection, written by the hub while the viewer keeps up and
/// by the viewer's own thread otherwise; the lock keeps their parts whole.
struct ViewerSink {
    conn: Mutex<Conn>,
    /// Poked by the hub when it queues a frame or ends the viewer.
    wake: Wake,
    /// How long the connection may take nothing before the viewer is dropped.
    stall_limit: Duration,
    gone: AtomicBool,
}

struct Conn {
    stream: TcpStream,
    stalled_since: Option<Instant>,
    /// The hub sent part of a frame whose rest is the thread's to send.
    owing: bool,
    /// The closing delimiter is out: nothing may follow it.
    closed: bool,
}

impl ViewerSink {
    fn new(stream: TcpStream, stall_limit: Duration) -> io::Result<ViewerSink> {
        Ok(ViewerSink {
            conn: Mutex::new(Conn {
                stream,
                stalled_since: None,
                owing: false,
                closed: false,
            }),
            wake: Wake::new()?,
            stall_limit,
            gone: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Conn> {
        crate::sync::lock(&self.conn)
    }

    /// Sends what the hub did not, waiting as long as the socket's write
    /// timeout allows.
    fn finish(&self, delivery: &Delivery) -> io::Result<()> {
        let mut conn = self.lock();
        mjpeg::write_part_from(&mut &conn.stream, &delivery.frame.jpeg, delivery.written)?;
        conn.owing = false;
        Ok(())
    }

    /// Ends the stream with the closing delimiter, unless a frame was cut
    /// short (the hub ended the viewer between its part and the rest): a
    /// delimiter inside a JPEG would only garble it.
    fn close(&self) -> io::Result<()> {
        let mut conn = self.lock();
        conn.closed = true;
        if conn.owing {
            return Ok(());
        }
        write_close_delimiter(&mut &conn.stream)
    }

    fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Relaxed)
    }

    fn stalled(&self, conn: &mut Conn) -> Sent {
        let since = *conn.stalled_since.get_or_insert_with(Instant::now);
        if since.elapsed() < self.stall_limit {
            return Sent::Nothing;
        }
        self.gone.store(true, Ordering::Relaxed);
        Sent::Gone
    }
}

impl Sink for ViewerSink {
    fn try_send(&self, frame: &Frame) -> Sent {
        // Held only while the viewer's own thread writes: it is behind, and
        // this frame is one it misses.
        let Ok(mut conn) = self.conn.try_lock() else {
            return Sent::Nothing;
        };
        // The first write after a hang-up succeeds: ask the socket first,
        // so the place is freed at this frame, not the next.
        if conn.closed || hung_up(&conn.stream) {
            self.gone.store(true, Ordering::Relaxed);
            return Sent::Gone;
        }
        let (result, total) = mjpeg::with_part(&frame.jpeg, |pieces| {
            let total: usize = pieces.iter().map(|p| p.len()).sum();
            (nonblocking::send(&conn.stream, pieces), total)
        });
        match result {
            Ok(0) => self.stalled(&mut conn),
            Ok(n) => {
                conn.stalled_since = None;
                if n < total {
                    conn.owing = true;
                    Sent::Part(n)
                } else {
                    Sent::Whole
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => self.stalled(&mut conn),
            Err(e) if e.kind() == ErrorKind::Interrupted => Sent::Nothing,
            Err(_) => {
                self.gone.store(true, Ordering::Relaxed);
                Sent::Gone
            }
        }
    }

    fn hung_up(&self) -> bool {
        // Held while the viewer's own thread writes, which will see it.
        let Ok(conn) = self.conn.try_lock() else {
            return false;
        };
        let gone = hung_up(&conn.stream);
        if gone {
            self.gone.store(true, Ordering::Relaxed);
        }
        gone
    }

    fn wake(&self) {
        self.wake.poke();
    }
}

/// Whether the viewer has closed its end, seen without blocking. Whatever
/// it sent after its request is read and ignored: a stream takes no input.
fn hung_up(conn: &TcpStream) -> bool {
    let mut scratch = [0u8; 512];
    // Bounded, so a client that keeps sending cannot hold the thread here.
    for _ in 0..16 {
        match nonblocking::recv(conn, &mut scratch) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return e.kind() != ErrorKind::WouldBlock,
        }
    }
    false
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
    use super::nonblocking::pair;
    use super::*;
    use std::io::Read;

    fn frame(len: usize) -> Frame {
        let mut jpeg = vec![0x55u8; len];
        jpeg[..2].copy_from_slice(&[0xFF, 0xD8]);
        jpeg[len - 2..].copy_from_slice(&[0xFF, 0xD9]);
        Frame {
            jpeg: Arc::from(jpeg),
            seq: 1,
            received: Instant::now(),
        }
    }

    fn part_bytes(f: &Frame) -> Vec<u8> {
        let mut v = Vec::new();
        mjpeg::write_part(&mut v, &f.jpeg).unwrap();
        v
    }

    #[test]
    fn a_sink_sends_whole_parts_then_the_delimiter() {
        let (mut client, server) = pair();
        let sink = ViewerSink::new(server, Duration::from_secs(5)).unwrap();
        let f = frame(1000);
        assert_eq!(sink.try_send(&f), Sent::Whole);
        sink.close().unwrap();
        // Nothing follows the delimiter.
        assert_eq!(sink.try_send(&f), Sent::Gone);
        drop(sink);
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        let mut want = part_bytes(&f);
        want.extend_from_slice(b"--frame--\r\n");
        assert_eq!(got, want);
    }

    #[test]
    fn a_sink_nobody_reads_fills_then_stalls_out() {
        let (client, server) = pair();
        let sink = ViewerSink::new(server, Duration::from_millis(200)).unwrap();
        let f = frame(256 * 1024);
        let mut outcomes = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let sent = sink.try_send(&f);
            outcomes.push(sent);
            if sent == Sent::Gone {
                break;
            }
            if let Sent::Part(_) = sent {
                // What the viewer's thread would do: it cannot, so the
                // sink stays owed and busy for the hub.
                assert!(sink.lock().owing);
            }
            assert!(Instant::now() < deadline, "never stalled out: {outcomes:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(outcomes.contains(&Sent::Nothing), "{outcomes:?}");
        assert!(sink.is_gone());
        drop(client);
    }

    #[test]
    fn a_cut_frame_gets_no_delimiter() {
        let (mut client, server) = pair();
        let sink = ViewerSink::new(server, Duration::from_secs(5)).unwrap();
        sink.lock().owing = true;
        sink.close().unwrap();
        drop(sink);
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert!(got.is_empty());
    }

    #[test]
    fn the_viewers_thread_finishes_what_the_hub_began() {
        let (mut client, server) = pair();
        let sink = ViewerSink::new(server, Duration::from_secs(5)).unwrap();
        let f = frame(5000);
        let whole = part_bytes(&f);
        // As if the hub's write had stopped after 100 bytes.
        (&sink.lock().stream).write_all(&whole[..100]).unwrap();
        sink.lock().owing = true;
        let delivery = Delivery {
            frame: f,
            written: 100,
        };
        sink.finish(&delivery).unwrap();
        assert!(!sink.lock().owing);
        sink.close().unwrap();
        drop(sink);
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert!(got.starts_with(&whole));
        assert!(got.ends_with(b"--frame--\r\n"));
    }

    #[test]
    fn a_sink_reports_gone_at_its_first_frame_after_a_hang_up() {
        let (client, server) = pair();
        let probe = server.try_clone().unwrap();
        let sink = ViewerSink::new(server, Duration::from_secs(5)).unwrap();
        drop(client);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !hung_up(&probe) {
            assert!(Instant::now() < deadline, "hang-up never seen");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(Sink::hung_up(&sink));
        // A plain write would succeed here (the peer answers it with a reset).
        assert_eq!(sink.try_send(&frame(1000)), Sent::Gone);
    }

    #[test]
    fn a_viewer_that_hung_up_is_seen_without_waiting() {
        let (client, server) = pair();
        assert!(!hung_up(&server));
        (&client).write_all(b"ignored input").unwrap();
        drop(client);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !hung_up(&server) {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

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
        assert_eq!(fps("fps=-3"), Ok(1));
        assert_eq!(fps("fps=-"), Err(400));
        assert_eq!(fps("fps=--3"), Err(400));
        assert_eq!(fps("fps=1.5"), Err(400));
        assert_eq!(fps("fps="), Err(400));
    }
}
