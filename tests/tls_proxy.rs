//! The plain→TLS RTSP proxy: rewriting, forwarding both ways, closing, and
//! an X1C emulation (GStreamer RTSP server with Digest auth behind TLS)
//! reached by the real ffmpeg through `Rtsp::bambu`.

#[path = "fake-ffmpeg/support.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use printcam::source::Source;
use printcam::sources::rtsp::tls_proxy::TlsProxy;
use printcam::sources::rtsp::Rtsp;
use printcam::urlguard::{self, Policy};
use rustls::pki_types::ServerName;
use support::{accept_any_client, child_pids, TestUp, TlsFront};

const TIMEOUT: Duration = Duration::from_secs(10);

/// The tests' cameras listen on loopback, as `--allow-loopback` allows.
const LOOPBACK_OK: Policy = Policy {
    allow_loopback: true,
};

fn start_proxy(port: u16) -> TlsProxy {
    TlsProxy::start(
        urlguard::check_host("127.0.0.1", port, LOOPBACK_OK).unwrap(),
        accept_any_client(),
        ServerName::try_from("127.0.0.1".to_string()).unwrap(),
    )
    .unwrap()
}

/// A plain backend behind the test TLS front: records everything it gets
/// until EOF and answers `reply` once it has `expect` bytes.
fn recording_backend(expect: usize, reply: &'static [u8]) -> (u16, mpsc::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("test-backend".into())
        .spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            let mut replied = false;
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                if !replied && got.len() >= expect {
                    s.write_all(reply).unwrap();
                    replied = true;
                }
            }
            let _ = tx.send(got);
        })
        .unwrap();
    (port, rx)
}

fn read_exactly(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    s.read_exact(&mut v).unwrap();
    v
}

#[test]
fn requests_are_rewritten_and_both_directions_flow() {
    const REPLY: &[u8] = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n$\x00\x00\x03abc";
    let frame: &[u8] = b"$\x01\x00\x05hello";
    let (backend_port, got) = recording_backend(1, REPLY);
    let front = TlsFront::start(backend_port);
    let mut proxy = start_proxy(front.port);
    let pp = proxy.local_port();
    let auth = format!(
        "Authorization: Digest username=\"bblp\", uri=\"rtsp://127.0.0.1:{pp}/streaming/live/1\"\r\n"
    );
    let request = format!(
        "DESCRIBE rtsp://127.0.0.1:{pp}/streaming/live/1 RTSP/1.0\r\nCSeq: 1\r\n{auth}\r\n"
    );
    let mut expected = Vec::new();
    expected.extend_from_slice(
        format!(
            "DESCRIBE rtsps://127.0.0.1:{}/streaming/live/1 RTSP/1.0\r\nCSeq: 1\r\n{auth}\r\n",
            front.port
        )
        .as_bytes(),
    );
    expected.extend_from_slice(frame);

    let mut client = TcpStream::connect(("127.0.0.1", pp)).unwrap();
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    // Split awkwardly: inside the URL and inside the interleaved header.
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(frame);
    for part in [
        &bytes[..12],
        &bytes[12..bytes.len() - 7],
        &bytes[bytes.len() - 7..],
    ] {
        client.write_all(part).unwrap();
        thread::sleep(Duration::from_millis(30));
    }
    assert_eq!(read_exactly(&mut client, REPLY.len()), REPLY);
    drop(client);
    let received = got.recv_timeout(TIMEOUT * 2).expect("backend saw no EOF");
    assert_eq!(
        String::from_utf8_lossy(&received),
        String::from_utf8_lossy(&expected)
    );
    assert_eq!(proxy.connections(), 1);
    assert_eq!(proxy.last_error(), None);
    let t = Instant::now();
    proxy.stop();
    assert!(t.elapsed() < TIMEOUT);
}

#[test]
fn refused_camera_is_reported_and_the_client_closed() {
    let closed_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let proxy = start_proxy(closed_port);
    let mut client = TcpStream::connect(("127.0.0.1", proxy.local_port())).unwrap();
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut b = [0u8; 1];
    assert_eq!(client.read(&mut b).unwrap_or(0), 0);
    assert!(proxy.refused());
    let e = proxy.last_error().unwrap();
    assert!(e.contains("cannot connect"), "{e}");
}

#[test]
fn stop_closes_a_live_connection() {
    let (backend_port, _got) = recording_backend(usize::MAX, b"");
    let front = TlsFront::start(backend_port);
    let mut proxy = start_proxy(front.port);
    let mut client = TcpStream::connect(("127.0.0.1", proxy.local_port())).unwrap();
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    client
        .write_all(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while front.accepted.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline);
        thread::sleep(Duration::from_millis(20));
    }
    let t = Instant::now();
    proxy.stop();
    assert!(t.elapsed() < TIMEOUT);
    let mut b = [0u8; 1];
    assert_eq!(client.read(&mut b).unwrap_or(0), 0);
    // The port is closed once stopped.
    let port = proxy.local_port();
    drop(proxy);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn oversized_request_head_closes_the_connection() {
    let (backend_port, got) = recording_backend(usize::MAX, b"");
    let front = TlsFront::start(backend_port);
    let proxy = start_proxy(front.port);
    let mut client = TcpStream::connect(("127.0.0.1", proxy.local_port())).unwrap();
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    client.set_write_timeout(Some(TIMEOUT)).unwrap();
    let junk = vec![b'A'; printcam::sources::rtsp::tls_proxy::MAX_HEAD + 100];
    let _ = client.write_all(&junk);
    let mut b = [0u8; 1];
    assert_eq!(client.read(&mut b).unwrap_or(0), 0);
    assert!(got.recv_timeout(TIMEOUT * 2).unwrap().is_empty());
}

/// An X1C-like printer: RTSP with Digest auth behind TLS, reached through
/// `Rtsp::bambu` (TLS proxy + real ffmpeg). Frames arriving proves the
/// rewrite left the Digest Authorization header intact.
#[test]
fn x1c_emulation_through_the_proxy() {
    let Some(ffmpeg) = support::find("ffmpeg", "ffmpeg") else {
        return;
    };
    if !support::require_gst_rtsp() {
        return;
    }
    {
        let server = support::RtspServer::start("bblp", "31415926", 640, 360);
        let front = TlsFront::start(server.port);
        let source = Rtsp::bambu(
            "127.0.0.1".into(),
            front.port,
            "31415926".into(),
            accept_any_client(),
            Some(ffmpeg.clone()),
            LOOPBACK_OK,
        );
        assert!(!source.describe().contains("31415926"));
        let up = TestUp::new(5, 10);
        source.run(&up).unwrap();
        let frames = up.frames.lock().unwrap();
        assert_eq!(frames.len(), 5);
        for f in frames.iter() {
            assert_eq!(printcam::jpeg::resolution(f), Some((640, 360)));
        }
        assert!(front.accepted.load(Ordering::SeqCst) >= 1);

        // A wrong access code is refused by Digest auth, and not repeated.
        let source = Rtsp::bambu(
            "127.0.0.1".into(),
            front.port,
            "27182818".into(),
            accept_any_client(),
            Some(ffmpeg),
            LOOPBACK_OK,
        );
        let err = source.run(&TestUp::new(1, 5)).unwrap_err();
        assert!(err.message.contains("401"), "{err}");
        assert!(!err.message.contains("27182818"), "{err}");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !child_pids().is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert!(child_pids().is_empty(), "children left: {:?}", child_pids());
}
