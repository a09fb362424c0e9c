//! The MJPEG stream: one multipart part per frame on the raw connection
//! until the viewer leaves, the stream is stopped or printcam shuts down.

use super::mjpeg;
use super::nonblocking::{self, wait_either, Wake, Woken};
use super::reply::Reply;
use super::request::Request;
use super::viewers::Viewers;
use crate::cameras::Cameras;
use crate::frame::Frame;
use crate::gop::{Admit, Gate};
use crate::hub::{self, Delivery, Sent, Sink, TryRecvError};
use std::io::{self, ErrorKind, IoSlice, Write};
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
        Err(reply) => return refuse(settings, request, reply, on_status),
    };
    let sink = match new_sink(&hub, request, settings.write_timeout, Format::Mjpeg) {
        Ok(sink) => sink,
        Err(reply) => return refuse(settings, request, reply, on_status),
    };
    let sub = hub.subscribe_direct(fps, sink.clone());
    on_status(200);
    let out = request.stream();
    if write_head(
        &mut &*out,
        settings.cors_origin.as_deref(),
        mjpeg::CONTENT_TYPE,
    )
    .is_err()
    {
        return;
    }
    play(&hub, &sub, &sink, out, (stopping, poll), &|| false);
}

/// Answers a stream request that cannot be served with `reply`.
pub(super) fn refuse(
    settings: &crate::config::Settings,
    request: &mut Request,
    reply: Reply,
    on_status: impl FnOnce(u16),
) {
    on_status(reply.status);
    super::access::with_cors(settings, reply).send(request.stream());
}

/// A sink on the request's connection, or the 503 to answer.
pub(super) fn new_sink(
    hub: &hub::Hub,
    request: &mut Request,
    write_timeout: Duration,
    format: Format,
) -> Result<Arc<ViewerSink>, Reply> {
    let sink = request
        .stream()
        .try_clone()
        .and_then(|conn| ViewerSink::new(conn, write_timeout, format));
    sink.map(Arc::new).map_err(|e| {
        log::warn!("{}: cannot serve a viewer: {e}", hub.name());
        Reply::detail(503, "cannot serve the stream now; try again")
    })
}

/// Sends what the hub could not until the viewer leaves, the stream ends,
/// the server stops or `ended` says so.
pub(super) fn play(
    hub: &hub::Hub,
    sub: &hub::Subscription,
    sink: &ViewerSink,
    out: &TcpStream,
    (stopping, poll): (&AtomicBool, Duration),
    ended: &dyn Fn() -> bool,
) {
    sub.deliver_directly();
    let viewer_left = loop {
        if stopping.load(Ordering::Relaxed) || ended() {
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

/// How frames go on the wire.
pub(super) enum Format {
    /// One multipart part per JPEG, a closing delimiter at the end.
    Mjpeg,
    /// The fragments as they are, from a keyframe on and without gaps.
    Mp4(Gate),
}

impl Format {
    fn admit(&self, frame: &Frame) -> Admit {
        match self {
            Format::Mjpeg => Admit::Send,
            Format::Mp4(gate) => gate.admit(&frame.jpeg),
        }
    }

    fn sent(&mut self, frame: &Frame) {
        if let Format::Mp4(gate) = self {
            gate.sent(&frame.jpeg);
        }
    }

    /// Calls `f` with the frame's bytes on the wire, as slices for one writev.
    fn with_pieces<R>(&self, frame: &Frame, f: impl FnOnce(&mut [IoSlice<'_>]) -> R) -> R {
        match self {
            Format::Mjpeg => mjpeg::with_part(&frame.jpeg, f),
            Format::Mp4(_) => f(&mut [IoSlice::new(&frame.jpeg)]),
        }
    }
}

/// A viewer's connection, written by the hub while the viewer keeps up and
/// by the viewer's own thread otherwise; the lock keeps their parts whole.
pub(super) struct ViewerSink {
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
    format: Format,
}

impl ViewerSink {
    fn new(stream: TcpStream, stall_limit: Duration, format: Format) -> io::Result<ViewerSink> {
        Ok(ViewerSink {
            conn: Mutex::new(Conn {
                stream,
                stalled_since: None,
                owing: false,
                closed: false,
                format,
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
        let frame = &delivery.frame;
        // A frame the hub began was admitted then.
        if delivery.written == 0 && conn.format.admit(frame) != Admit::Send {
            return Ok(());
        }
        conn.format.with_pieces(frame, |pieces| {
            mjpeg::write_pieces_from(&mut &conn.stream, pieces, delivery.written)
        })?;
        conn.format.sent(frame);
        conn.owing = false;
        Ok(())
    }

    /// Writes `bytes` whole, waiting as long as the socket's write timeout
    /// allows; `frames` also count as sent (the group of pictures a new
    /// viewer starts with).
    pub(super) fn write_first(&self, bytes: &[u8], frames: &[Arc<[u8]>]) -> io::Result<()> {
        let mut conn = self.lock();
        (&conn.stream).write_all(bytes)?;
        for fragment in frames {
            (&conn.stream).write_all(fragment)?;
            if let Format::Mp4(gate) = &mut conn.format {
                gate.sent(fragment);
            }
        }
        (&conn.stream).flush()
    }

    /// Ends the stream with the closing delimiter, unless a frame was cut
    /// short (the hub ended the viewer between its part and the rest): a
    /// delimiter inside a JPEG would only garble it.
    fn close(&self) -> io::Result<()> {
        let mut conn = self.lock();
        conn.closed = true;
        if conn.owing || matches!(conn.format, Format::Mp4(_)) {
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
        match conn.format.admit(frame) {
            Admit::Send => {}
            Admit::Skip => return Sent::Nothing,
            Admit::Already => return Sent::Whole,
        }
        let (result, total) = conn.format.with_pieces(frame, |pieces| {
            let total: usize = pieces.iter().map(|p| p.len()).sum();
            (nonblocking::send(&conn.stream, pieces), total)
        });
        match result {
            Ok(0) => self.stalled(&mut conn),
            Ok(n) => {
                conn.stalled_since = None;
                conn.format.sent(frame);
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

pub(super) fn write_head(
    out: &mut dyn Write,
    cors_origin: Option<&str>,
    content_type: &str,
) -> std::io::Result<()> {
    // The origin was checked for header-safe characters when configured.
    let cors = cors_origin.map_or(String::new(), |o| {
        format!("Access-Control-Allow-Origin: {o}\r\nVary: Origin\r\n")
    });
    let head = format!(
        "HTTP/1.1 200 OK\r\n\
         Content-Type: {content_type}\r\n\
         Cache-Control: no-cache, no-store, must-revalidate\r\n\
         Pragma: no-cache\r\n\
         X-Content-Type-Options: nosniff\r\n\
         {cors}\
         Connection: close\r\n\r\n"
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
        let sink = ViewerSink::new(server, Duration::from_secs(5), Format::Mjpeg).unwrap();
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
        let sink = ViewerSink::new(server, Duration::from_millis(200), Format::Mjpeg).unwrap();
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
        let sink = ViewerSink::new(server, Duration::from_secs(5), Format::Mjpeg).unwrap();
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
        let sink = ViewerSink::new(server, Duration::from_secs(5), Format::Mjpeg).unwrap();
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
        let sink = ViewerSink::new(server, Duration::from_secs(5), Format::Mjpeg).unwrap();
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

    /// Fragments numbered 1.., keyframes at the given numbers.
    fn fragments(n: u32, keyframes: &[u32]) -> Vec<Frame> {
        let mut f = crate::media::fmp4::Fragmenter::new();
        (1..=n)
            .map(|i| Frame {
                jpeg: Arc::from(f.fragment(
                    u64::from(i) * 3000,
                    3000,
                    keyframes.contains(&i),
                    &[0; 8],
                )),
                seq: u64::from(i),
                received: Instant::now(),
            })
            .collect()
    }

    #[test]
    fn an_mp4_viewer_that_misses_a_frame_skips_to_the_next_keyframe() {
        let (mut client, server) = pair();
        let sink =
            ViewerSink::new(server, Duration::from_secs(5), Format::Mp4(Gate::default())).unwrap();
        let f = fragments(8, &[2, 6]);
        let sent: Vec<Sent> = [0, 1, 2, 4, 5, 6, 7, 7]
            .iter()
            .map(|&i| sink.try_send(&f[i]))
            .collect();
        // Fragment 1 is no keyframe; 2 (one) and 3 go; 4 is missed, so 5
        // cannot go; 6 (a keyframe), 7 and 8 go; 8 again is nothing new.
        use Sent::{Nothing, Whole};
        assert_eq!(
            sent,
            [Nothing, Whole, Whole, Nothing, Whole, Whole, Whole, Whole]
        );
        sink.close().unwrap();
        drop(sink);
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        let want: Vec<u8> = [1, 2, 5, 6, 7]
            .iter()
            .flat_map(|&i| f[i].jpeg.to_vec())
            .collect();
        assert_eq!(got, want, "no MJPEG delimiter either");
    }

    #[test]
    fn an_mp4_viewer_starts_after_the_group_it_was_sent() {
        let (_client, server) = pair();
        let sink =
            ViewerSink::new(server, Duration::from_secs(5), Format::Mp4(Gate::default())).unwrap();
        let f = fragments(4, &[1]);
        let group: Vec<Arc<[u8]>> = f[..2].iter().map(|x| x.jpeg.clone()).collect();
        sink.write_first(b"init", &group).unwrap();
        // 2 came live as well as in the group: not sent twice; 3 follows.
        assert_eq!(sink.lock().format.admit(&f[1]), Admit::Already);
        assert_eq!(sink.lock().format.admit(&f[2]), Admit::Send);
        assert_eq!(sink.lock().format.admit(&f[3]), Admit::Skip);
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
