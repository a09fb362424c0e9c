//! The RTSP exchange against recorded requests and answers: the camera's
//! side is replayed from bytes, the client's is compared byte for byte.

use super::*;
use std::io::{Cursor, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A connection that reads a script and keeps what is written.
struct Replay {
    input: Cursor<Vec<u8>>,
    written: Arc<Mutex<Vec<u8>>>,
    shut: Arc<AtomicBool>,
}

impl Read for Replay {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Replay {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Conn for Replay {
    fn shutdown(&mut self) {
        self.shut.store(true, Ordering::SeqCst);
    }
}

/// What the client wrote, and whether it shut the connection.
struct Seen {
    written: Arc<Mutex<Vec<u8>>>,
    shut: Arc<AtomicBool>,
}

impl Seen {
    /// Takes what was written so far.
    fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.written.lock().unwrap())).unwrap()
    }
}

fn replay(script: Vec<u8>) -> (Box<dyn Conn>, Seen) {
    let (conn, seen) = replay_conn(script);
    (Box::new(conn), seen)
}

fn replay_conn(script: Vec<u8>) -> (Replay, Seen) {
    let written = Arc::new(Mutex::new(Vec::new()));
    let shut = Arc::new(AtomicBool::new(false));
    let conn = Replay {
        input: Cursor::new(script),
        written: Arc::clone(&written),
        shut: Arc::clone(&shut),
    };
    (conn, Seen { written, shut })
}

const USER_AGENT: &str = concat!("User-Agent: printcam/", env!("CARGO_PKG_VERSION"));

/// The recording's client messages and server answers, in order.
fn recording() -> (Vec<String>, Vec<String>) {
    let text = include_str!("../../../tests/data/rtsp/gstreamer_digest.txt")
        .replace("User-Agent: printcam/0.1.0", USER_AGENT);
    let (mut client, mut server) = (Vec::new(), Vec::new());
    let mut current: Option<(bool, String)> = None;
    for line in text.split_inclusive('\n') {
        let side = match line {
            ">>>C\n" => Some(true),
            "<<<S\n" => Some(false),
            _ => None,
        };
        match (side, current.as_mut()) {
            (Some(from_client), _) => {
                if let Some((c, msg)) = current.take() {
                    if c {
                        client.push(msg)
                    } else {
                        server.push(msg)
                    }
                }
                current = Some((from_client, String::new()));
            }
            (None, Some((_, msg))) => msg.push_str(line),
            (None, None) => {} // the comment at the top
        }
    }
    if let Some((c, msg)) = current {
        if c {
            client.push(msg)
        } else {
            server.push(msg)
        }
    }
    (client, server)
}

const URI: &str = "rtsp://127.0.0.1:47311/streaming/live/1";
const CODE: &str = "27182818";

fn authenticator() -> Authenticator {
    let creds = Credentials::new("bblp", CODE).unwrap();
    Authenticator::with_cnonce(Some(creds), Box::new(|| "0a4f113b".to_string()))
}

fn frame(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut out = vec![b'$', channel];
    out.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
    out.extend_from_slice(data);
    out
}

fn rtp(sequence: u16) -> Vec<u8> {
    crate::media::rtp::RtpPacket {
        marker: true,
        payload_type: 96,
        sequence,
        timestamp: 3000 * u32::from(sequence),
        ssrc: 0xFFD5_11C3,
        payload: &[0x65, 0x88, 0x84],
    }
    .to_bytes()
}

fn start(script: Vec<u8>) -> (Result<Session>, Seen) {
    let (conn, seen) = replay(script);
    let s = Session::start(
        conn,
        URI,
        authenticator(),
        Timeouts::default(),
        Instant::now(),
    );
    (s, seen)
}

fn open_recorded(after_play: &[u8]) -> (Session, Seen) {
    let (_, answers) = recording();
    let mut script = answers.concat().into_bytes();
    script.extend_from_slice(after_play);
    let (s, seen) = start(script);
    (s.unwrap(), seen)
}

#[test]
fn the_recorded_gstreamer_exchange_is_replayed_byte_for_byte() {
    let (requests, answers) = recording();
    assert_eq!((requests.len(), answers.len()), (6, 5));
    let mut after = frame(1, &[0x80, 200, 0, 6]); // an RTCP sender report first
    after.extend(frame(0, &rtp(7081)));
    after.extend_from_slice(b"RTSP/1.0 200 OK\r\nCSeq: 6\r\n\r\n");
    let (mut s, seen) = open_recorded(&after);
    assert_eq!(seen.take(), requests[..5].concat(), "OPTIONS to PLAY");
    let info = s.info().clone();
    assert_eq!(info.control, format!("{URI}/stream=0"));
    assert_eq!((info.payload_type, info.clock_rate), (96, 90_000));
    assert_eq!(info.first_sequence, Some(7081));
    assert_eq!(info.session_timeout, Duration::from_secs(60));
    assert_eq!(info.parameter_sets.len(), 2);
    assert_eq!(s.keepalive.method, "GET_PARAMETER", "GStreamer lists it");
    assert_eq!(s.keepalive.every, Duration::from_secs(30));
    assert_eq!(s.next_packet().unwrap(), rtp(7081), "RTCP skipped");
    s.close().unwrap();
    assert_eq!(seen.take(), requests[5], "TEARDOWN");
    assert!(seen.shut.load(Ordering::SeqCst));
}

/// The PLAY answer of a session with a 4 s timeout, on channels 2-3.
fn short_session(after_play: &[u8]) -> (Session, Seen) {
    let mut script = Vec::new();
    script.extend_from_slice(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER\r\n\r\n");
    let sdp = "v=0\r\nm=video 0 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\na=control:trackID=1\r\n";
    script.extend_from_slice(
        format!(
            "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )
        .as_bytes(),
    );
    script.extend_from_slice(b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: 4711;timeout=4\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3\r\n\r\n");
    script.extend_from_slice(b"RTSP/1.0 200 OK\r\nCSeq: 4\r\nSession: 4711;timeout=4\r\n\r\n");
    script.extend_from_slice(after_play);
    let (s, seen) = start(script);
    (s.unwrap(), seen)
}

#[test]
fn keep_alive_answers_arrive_between_frames() {
    let mut after = frame(2, &rtp(1));
    after.extend_from_slice(b"RTSP/1.0 200 OK\r\nCSeq: 5\r\nSession: 4711\r\n\r\n");
    after.extend(frame(0, b"not ours"));
    after.extend(frame(2, &rtp(2)));
    let (mut s, seen) = short_session(&after);
    let sent = seen.take();
    assert!(
        sent.contains(&format!("SETUP {URI}/trackID=1 RTSP/1.0")),
        "{sent}"
    );
    assert!(
        sent.contains("PLAY rtsp://127.0.0.1:47311/streaming/live/1 RTSP/1.0"),
        "{sent}"
    );
    assert_eq!(s.info().session_timeout, Duration::from_secs(4));
    assert_eq!(s.keepalive.every, Duration::from_secs(2));
    assert_eq!(s.info().first_sequence, None);

    s.keep_alive_at(Instant::now()).unwrap(); // not due yet
    assert_eq!(seen.take(), "");
    s.keep_alive_at(Instant::now() + Duration::from_secs(3))
        .unwrap();
    assert_eq!(
        seen.take(),
        format!("GET_PARAMETER {URI} RTSP/1.0\r\nCSeq: 5\r\n{USER_AGENT}\r\nSession: 4711\r\n\r\n")
    );
    assert_eq!(s.keepalive.pending, Some(5));
    assert_eq!(s.next_packet().unwrap(), rtp(1));
    assert_eq!(
        s.next_packet().unwrap(),
        rtp(2),
        "answer and channel 0 passed over"
    );
    assert_eq!(s.keepalive.pending, None);
    drop(s);
    assert!(seen
        .take()
        .starts_with(&format!("TEARDOWN {URI} RTSP/1.0\r\nCSeq: 6\r\n")));
}

#[test]
fn a_keep_alive_refused_falls_back_to_options_and_a_new_nonce_is_taken() {
    let mut after = b"RTSP/1.0 501 Not Implemented\r\nCSeq: 5\r\n\r\n".to_vec();
    after.extend(frame(2, &rtp(1)));
    after.extend_from_slice(b"RTSP/1.0 401 Unauthorized\r\nCSeq: 6\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"fresh\"\r\n\r\n");
    after.extend(frame(2, &rtp(2)));
    after.extend(frame(2, &rtp(3)));
    let (mut s, seen) = short_session(&after);
    seen.take();
    s.keep_alive_at(Instant::now() + Duration::from_secs(3))
        .unwrap();
    // The 501 arrives: the next keep-alive, OPTIONS, goes at once.
    assert_eq!(s.next_packet().unwrap(), rtp(1));
    let sent = seen.take();
    assert!(sent.starts_with("GET_PARAMETER"), "{sent}");
    assert!(
        sent.contains(&format!("OPTIONS {URI} RTSP/1.0\r\nCSeq: 6\r\n")),
        "{sent}"
    );
    assert!(!sent.contains("Authorization"), "no challenge yet: {sent}");
    // The 401 to it: sent again at once, with the new nonce.
    assert_eq!(s.next_packet().unwrap(), rtp(2));
    let again = seen.take();
    assert!(
        again.starts_with(&format!("OPTIONS {URI} RTSP/1.0\r\nCSeq: 7\r\n")),
        "{again}"
    );
    assert!(again.contains("nonce=\"fresh\""), "{again}");
    assert_eq!(s.next_packet().unwrap(), rtp(3));
    assert_eq!(seen.take(), "", "nothing more due");
}

#[test]
fn the_servers_own_requests_are_answered() {
    let mut after = b"GET_PARAMETER rtsp://x/ RTSP/1.0\r\nCSeq: 90\r\n\r\n".to_vec();
    after.extend_from_slice(
        b"ANNOUNCE rtsp://x/ RTSP/1.0\r\nCSeq: 91\r\nContent-Length: 3\r\n\r\nabc",
    );
    after.extend(frame(2, &rtp(1)));
    let (mut s, seen) = short_session(&after);
    seen.take();
    assert_eq!(s.next_packet().unwrap(), rtp(1));
    assert_eq!(
        seen.take(),
        "RTSP/1.0 200 OK\r\nCSeq: 90\r\n\r\nRTSP/1.0 501 Not Implemented\r\nCSeq: 91\r\n\r\n"
    );
}

const CHALLENGE: &[u8] =
    b"WWW-Authenticate: Digest realm=\"GStreamer RTSP Server\", nonce=\"04e8906a355f74de\"\r\n";

#[test]
fn a_second_401_is_a_wrong_password_without_the_password() {
    let mut script = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n".to_vec();
    for cseq in [2, 3] {
        script
            .extend_from_slice(format!("RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\n").as_bytes());
        script.extend_from_slice(CHALLENGE);
        script.extend_from_slice(b"\r\n");
    }
    let (s, seen) = start(script);
    let e = s.err().unwrap();
    assert_eq!(e.kind, ErrorKind::Unauthorized);
    assert!(e.message.contains("wrong user or password"), "{e}");
    assert!(!e.message.contains(CODE), "{e}");
    let sent = seen.take();
    assert_eq!(sent.matches("DESCRIBE ").count(), 2, "retried once: {sent}");
}

#[test]
fn without_credentials_a_401_asks_for_them() {
    let mut script = b"RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\n".to_vec();
    script.extend_from_slice(CHALLENGE);
    script.extend_from_slice(b"\r\n");
    let (conn, _seen) = replay(script);
    let auth = Authenticator::new(None);
    let e = Session::start(conn, URI, auth, Timeouts::default(), Instant::now())
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::Unauthorized);
    assert!(e.message.contains("asks for a user and password"), "{e}");
}

#[test]
fn basic_is_used_when_only_basic_is_offered() {
    let script =
        b"RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Basic realm=\"cam\"\r\n\r\n"
            .to_vec();
    let (s, seen) = start(script);
    assert_eq!(s.err().unwrap().kind, ErrorKind::Closed, "the script ends");
    let sent = seen.take();
    // base64("bblp:27182818")
    assert!(sent.contains("CSeq: 2\r\nUser-Agent"), "{sent}");
    assert!(
        sent.contains("Authorization: Basic YmJscDoyNzE4MjgxOA==\r\n"),
        "{sent}"
    );
}

#[test]
fn errors_are_sorted() {
    let not_found = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\nRTSP/1.0 404 Not Found\r\nCSeq: 2\r\n\r\n";
    let e = start(not_found.to_vec()).0.err().unwrap();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    assert!(e.message.contains(URI), "{e}");

    let h265 = "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\n";
    let mut script = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n".to_vec();
    script.extend_from_slice(
        format!(
            "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: {}\r\n\r\n{h265}",
            h265.len()
        )
        .as_bytes(),
    );
    assert_eq!(start(script).0.err().unwrap().kind, ErrorKind::Unsupported);

    let e = start(b"HTTP/1.1 200 OK\r\n\r\n".to_vec()).0.err().unwrap();
    assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
    let e = start(b"RTSP/1.0 200 OK\r\n\r\n".to_vec()).0.err().unwrap();
    assert!(e.message.contains("without a CSeq"), "{e}");
    let e = start(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n".to_vec())
        .0
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::Closed, "{e}");
}

#[test]
fn heads_bodies_and_the_setup_time_are_bounded() {
    let mut long = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nX: ".to_vec();
    long.resize(wire::MAX_HEAD + 10, b'a');
    let e = start(long).0.err().unwrap();
    assert_eq!(e.kind, ErrorKind::Protocol);
    assert!(e.message.contains("longer than"), "{e}");

    let big = format!(
        "RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: {}\r\n\r\n",
        wire::MAX_BODY + 1
    );
    let e = start(big.into_bytes()).0.err().unwrap();
    assert!(e.message.contains("more than"), "{e}");

    let (conn, _) = replay(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n".to_vec());
    let no_time = Timeouts {
        setup: Duration::ZERO,
        ..Timeouts::default()
    };
    let e = Session::start(conn, URI, authenticator(), no_time, Instant::now())
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
}

#[test]
fn a_frame_cut_off_ends_the_session() {
    let mut cut = frame(2, &rtp(1));
    cut.truncate(8);
    let (mut s, _) = short_session(&cut);
    assert_eq!(s.next_packet().err().unwrap().kind, ErrorKind::Closed);
}

#[test]
fn header_fields() {
    assert_eq!(
        session_header("VGDz7k7Ptm0qaNff"),
        ("VGDz7k7Ptm0qaNff".to_string(), None)
    );
    assert_eq!(
        session_header(" 4711 ; timeout=4"),
        ("4711".to_string(), Some(Duration::from_secs(4)))
    );
    assert_eq!(session_header("1;timeout=0").1, None);
    assert_eq!(
        keepalive_interval(Duration::from_secs(60)),
        Duration::from_secs(30)
    );
    assert_eq!(
        keepalive_interval(Duration::from_secs(1)),
        Duration::from_secs(1)
    );
    assert_eq!(
        interleaved_channel("RTP/AVP/TCP;unicast;interleaved=4-5"),
        Some(4)
    );
    assert_eq!(interleaved_channel("RTP/AVP/TCP;unicast"), None);
    let info = "url=rtsp://h/a/track1;seq=10;rtptime=1, url=rtsp://h/a/track2;seq=20";
    assert_eq!(rtp_info_seq(info, "rtsp://h/a/track2"), Some(20));
    assert_eq!(
        rtp_info_seq("url=stream=0;seq=7", "rtsp://other/stream=0"),
        Some(7)
    );
    assert_eq!(rtp_info_seq(info, "rtsp://h/a/track3"), None);
    assert!(check_uri("rtsp://h/a b").is_err());
    assert!(check_uri("rtsp://h/a\r\nX: y").is_err());
    assert!(check_header_value("a\r\nb").is_err());
}

#[test]
fn the_url_gives_the_request_uri_and_credentials() {
    let url = Url::parse("rtsps://bblp:p%40ss+w@10.0.0.5:322/streaming/live/1#x").unwrap();
    assert_eq!(request_uri(&url), "rtsps://10.0.0.5:322/streaming/live/1");
    let c = url_credentials(&url).unwrap().unwrap();
    assert_eq!((c.user(), c.password()), ("bblp", "p@ss+w"));
    assert_eq!(
        url_credentials(&Url::parse("rtsp://h/x").unwrap()),
        Ok(None)
    );
    let e = url_credentials(&Url::parse("rtsp://u:a%0Db@h/").unwrap())
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::Unauthorized);
}

/// Hands out at most `chunk` bytes a read, as TLS records and TCP segments
/// may.
struct Trickle {
    inner: Replay,
    chunk: usize,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.chunk);
        self.inner.read(&mut buf[..n])
    }
}

impl Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Conn for Trickle {}

/// Everything a wire reads until its first error (a frame with its bytes),
/// and that error.
fn read_all(conn: Box<dyn Conn>) -> (Vec<(Incoming, Vec<u8>)>, String) {
    let mut wire = Wire::new(conn);
    let mut got = Vec::new();
    loop {
        match wire.read() {
            Ok(i) => {
                let bytes = match i {
                    Incoming::Frame { .. } => wire.frame.clone(),
                    _ => Vec::new(),
                };
                got.push((i, bytes));
            }
            Err(e) => return (got, format!("{e:?}")),
        }
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn piece() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40))
                .prop_map(|(c, d)| frame(c, &d)),
            (1u32..99, 0usize..30).prop_map(|(cseq, len)| format!(
                "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Length: {len}\r\n\r\n{}",
                "v".repeat(len)
            )
            .into_bytes()),
            Just(b"GET_PARAMETER rtsp://h/ RTSP/1.0\r\nCSeq: 3\r\n\r\n".to_vec()),
            Just(b"\r\n".to_vec()),
        ]
    }

    proptest! {
        #[test]
        fn split_reads_read_the_same(
            pieces in proptest::collection::vec(piece(), 0..12),
            chunk in 1usize..9,
        ) {
            let script = pieces.concat();
            let (whole, _) = replay(script.clone());
            let (inner, _) = replay_conn(script);
            let trickle = Box::new(Trickle { inner, chunk });
            prop_assert_eq!(read_all(whole), read_all(trickle));
        }

        #[test]
        fn any_bytes_end_in_an_error_not_a_panic(
            data in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let (conn, _) = replay(data);
            let (got, _) = read_all(conn);
            for (i, bytes) in got {
                if let Incoming::Response(r) = i {
                    prop_assert!(r.body.len() <= wire::MAX_BODY);
                }
                prop_assert!(bytes.len() <= usize::from(u16::MAX));
            }
        }
    }
}
