//! The HTTP camera sources and the demo camera, driven through a test
//! `Upstream` against small HTTP servers on loopback and a real ffmpeg camera.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use printcam::jpeg::{looks_complete, resolution};
use printcam::source::{Source, SourceError, Upstream};
use printcam::sources::demo::{demo_frames, Demo};
use printcam::sources::mjpeg_http::MjpegHttp;
use printcam::sources::snapshot_http::SnapshotHttp;
use printcam::urlguard::Policy;

#[path = "support/programs.rs"]
mod programs;
use programs::{ffmpeg_camera, free_port, have_ffmpeg, FFMPEG_MULTIPART};

#[path = "support/tiny_camera.rs"]
mod tiny_camera;
use tiny_camera::{multipart, response, TinyServer};

const F1: &[u8] = include_bytes!("data/f1.jpg");
const F2: &[u8] = include_bytes!("data/f2.jpg");
const F3: &[u8] = include_bytes!("data/f3.jpg");

const LOOPBACK_OK: Policy = Policy {
    allow_loopback: true,
};

type Canceller = Box<dyn Fn() + Send + Sync>;

/// Collects frames until it has `want` of them or its time is up.
struct Collector {
    want: usize,
    fps: u32,
    deadline: Instant,
    frames: Mutex<Vec<Vec<u8>>>,
    stop: AtomicBool,
    cancel: Mutex<Option<Canceller>>,
}

impl Collector {
    fn new(want: usize, fps: u32) -> Arc<Self> {
        Arc::new(Collector {
            want,
            fps,
            deadline: Instant::now() + Duration::from_secs(30),
            frames: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            cancel: Mutex::new(None),
        })
    }

    fn frames(&self) -> Vec<Vec<u8>> {
        self.frames.lock().unwrap().clone()
    }

    /// What the hub does on stop: flag, then interrupt.
    fn close_from_outside(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(cancel) = self.cancel.lock().unwrap().as_ref() {
            cancel();
        }
    }
}

impl Upstream for Collector {
    fn emit(&self, jpeg: Vec<u8>) -> bool {
        let mut frames = self.frames.lock().unwrap();
        frames.push(jpeg);
        if frames.len() >= self.want {
            self.stop.store(true, Ordering::SeqCst);
        }
        !self.stopping()
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || Instant::now() > self.deadline
    }

    fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if self.stopping() {
                return false;
            }
            thread::sleep(Duration::from_millis(5).min(until - Instant::now()));
        }
        !self.stopping()
    }

    fn wanted_fps(&self) -> u32 {
        self.fps
    }

    fn on_cancel(&self, cancel: Canceller) {
        *self.cancel.lock().unwrap() = Some(cancel);
    }
}

fn run_source(source: &dyn Source, up: &Arc<Collector>) -> Result<(), SourceError> {
    source.run(up.as_ref())
}

fn assert_no_secret(e: &SourceError) {
    eprintln!("error shown to users: {}", e.message);
    assert!(
        !e.message.contains("s3cr3t-pw"),
        "secret leaked: {}",
        e.message
    );
}

#[test]
fn mjpeg_with_odd_boundary() {
    let boundary = "--my odd=boundary_42";
    let body = multipart(boundary, &[F1, F2, F3, F1, F2, F3]);
    let ct = format!("multipart/x-mixed-replace; boundary=\"{boundary}\"");
    let server = TinyServer::start(move |_| response("200 OK", &ct, &body, false), false);
    let source = MjpegHttp::new(server.url("/video"), LOOPBACK_OK);
    assert!(source.warmup_frame());
    assert!(!source.describe().contains("s3cr3t-pw"));

    let up = Collector::new(4, 15);
    assert_eq!(run_source(&source, &up), Ok(()));
    assert_eq!(
        up.frames(),
        vec![F1.to_vec(), F2.to_vec(), F3.to_vec(), F1.to_vec()]
    );
}

#[test]
fn mjpeg_as_octet_stream_then_end_of_stream() {
    let mut body = b"garbage before".to_vec();
    for f in [F1, F2, F3] {
        body.extend_from_slice(f);
        body.extend_from_slice(b"\xFF\x00junk");
    }
    let server = TinyServer::start(
        move |_| response("200 OK", "application/octet-stream", &body, false),
        false,
    );
    let source = MjpegHttp::new(server.url("/"), LOOPBACK_OK);
    let up = Collector::new(100, 15);
    let err = run_source(&source, &up).unwrap_err();
    assert!(err.retry);
    assert_eq!(err.message, "camera closed the stream");
    assert_eq!(up.frames(), vec![F1.to_vec(), F2.to_vec(), F3.to_vec()]);
}

#[test]
fn mjpeg_404_is_clear_and_secret_free() {
    let server = TinyServer::start(
        |_| response("404 Not Found", "text/html", b"nope", true),
        false,
    );
    let source = MjpegHttp::new(server.url("/wrong"), LOOPBACK_OK);
    let err = run_source(&source, &Collector::new(1, 15)).unwrap_err();
    assert!(err.message.contains("404"), "{}", err.message);
    assert!(!err.retry);
    assert_no_secret(&err);
}

#[test]
fn mjpeg_401_asks_for_credentials() {
    let server = TinyServer::start(
        |_| response("401 Unauthorized", "text/html", b"", true),
        false,
    );
    let source = MjpegHttp::new(server.url("/"), LOOPBACK_OK);
    let err = run_source(&source, &Collector::new(1, 15)).unwrap_err();
    assert!(err.message.contains("password"), "{}", err.message);
    assert_no_secret(&err);
}

#[test]
fn redirect_is_not_followed() {
    let server = TinyServer::start(
        |_| {
            b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_vec()
        },
        false,
    );
    let source = MjpegHttp::new(server.url("/"), LOOPBACK_OK);
    let err = run_source(&source, &Collector::new(1, 15)).unwrap_err();
    assert!(err.message.contains("302"), "{}", err.message);
    assert_no_secret(&err);
}

#[test]
fn loopback_refused_without_permission() {
    let server = TinyServer::start(|_| response("200 OK", "image/jpeg", F1, true), false);
    let source = SnapshotHttp::new(server.url("/snap.jpg"), Policy::default());
    let up = Collector::new(1, 15);
    let err = run_source(&source, &up).unwrap_err();
    assert!(!err.retry, "{}", err.message);
    assert_no_secret(&err);
    assert!(up.frames().is_empty());
}

#[test]
fn refused_connection_is_transient() {
    let port = free_port();
    let source = MjpegHttp::new(format!("http://u:s3cr3t-pw@127.0.0.1:{port}/"), LOOPBACK_OK);
    let err = run_source(&source, &Collector::new(1, 15)).unwrap_err();
    assert!(err.retry);
    assert!(err.message.contains(&port.to_string()), "{}", err.message);
    assert_no_secret(&err);
}

#[test]
fn stop_from_outside_interrupts_a_silent_camera() {
    // Headers, one frame, then silence with the connection open.
    let mut reply =
        b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=x\r\n\r\n".to_vec();
    reply.extend_from_slice(&multipart("x", &[F1]));
    let server = TinyServer::start(move |_| reply.clone(), true);
    let source = MjpegHttp::new(server.url("/"), LOOPBACK_OK);
    let up = Collector::new(100, 15);
    let stopper = {
        let up = Arc::clone(&up);
        thread::Builder::new()
            .name("test-stopper".into())
            .spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(20);
                while up.frames().is_empty() && Instant::now() < deadline {
                    thread::sleep(Duration::from_millis(10));
                }
                up.close_from_outside();
            })
            .unwrap()
    };
    let started = Instant::now();
    assert_eq!(run_source(&source, &up), Ok(()));
    // Well under the 10 s silence timeout: the cancel woke the read.
    assert!(started.elapsed() < Duration::from_secs(9));
    stopper.join().unwrap();
    assert_eq!(up.frames(), vec![F1.to_vec()]);
}

#[test]
fn silent_camera_is_noticed() {
    let reply =
        b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=x\r\n\r\n".to_vec();
    let server = TinyServer::start(move |_| reply.clone(), true);
    let source = MjpegHttp::new(server.url("/"), LOOPBACK_OK);
    let err = run_source(&source, &Collector::new(1, 15)).unwrap_err();
    assert!(err.retry);
    assert!(err.message.contains("10 s"), "{}", err.message);
    assert_no_secret(&err);
}

#[test]
fn snapshot_polls_at_the_wanted_rate() {
    let server = TinyServer::start(
        |n| response("200 OK", "image/jpeg", [F1, F2, F3][n % 3], true),
        false,
    );
    let source = SnapshotHttp::new(server.url("/snap.jpg"), LOOPBACK_OK);
    assert!(!source.describe().contains("s3cr3t-pw"));
    let up = Collector::new(4, 30);
    assert_eq!(run_source(&source, &up), Ok(()));
    assert_eq!(
        up.frames(),
        vec![F1.to_vec(), F2.to_vec(), F3.to_vec(), F1.to_vec()]
    );
}

#[test]
fn snapshot_of_html_is_an_error() {
    let server = TinyServer::start(
        |_| response("200 OK", "image/jpeg", b"<html>login</html>", true),
        false,
    );
    let source = SnapshotHttp::new(server.url("/snap.jpg"), LOOPBACK_OK);
    let err = run_source(&source, &Collector::new(1, 15)).unwrap_err();
    assert!(err.retry);
    assert!(
        err.message.contains("did not return a JPEG"),
        "{}",
        err.message
    );
    assert_no_secret(&err);
}

#[test]
fn snapshot_404() {
    let server = TinyServer::start(
        |_| response("404 Not Found", "text/plain", b"x", true),
        false,
    );
    let source = SnapshotHttp::new(server.url("/nope.jpg"), LOOPBACK_OK);
    let err = run_source(&source, &Collector::new(1, 15)).unwrap_err();
    assert!(err.message.contains("404"), "{}", err.message);
    assert_no_secret(&err);
}

#[test]
fn demo_cycles_its_frames() {
    let frames = demo_frames();
    let up = Collector::new(frames.len() + 2, 30);
    let result = run_source(&Demo::new(), &up);
    if cfg!(feature = "demo") {
        assert_eq!(result, Ok(()));
        let got = up.frames();
        assert_eq!(got.len(), frames.len() + 2);
        assert_eq!(got[frames.len()], frames[0]);
        for f in &got {
            assert!(looks_complete(f));
            assert_eq!(resolution(f), Some((640, 360)));
        }
    } else {
        assert!(!result.unwrap_err().retry);
    }
}

#[test]
fn real_ffmpeg_mjpeg_camera() {
    read_ffmpeg_camera(Some(FFMPEG_MULTIPART));
}

/// Without `-content_type` ffmpeg announces `application/octet-stream`, as
/// some cheap cameras do.
#[test]
fn real_ffmpeg_camera_as_octet_stream() {
    read_ffmpeg_camera(None);
}

fn read_ffmpeg_camera(content_type: Option<&str>) {
    if !have_ffmpeg() {
        return;
    }
    let port = free_port();
    let _ffmpeg = ffmpeg_camera(port, content_type);
    let source = MjpegHttp::new(format!("http://127.0.0.1:{port}/stream"), LOOPBACK_OK);
    let up = Collector::new(3, 15);
    // ffmpeg takes a moment to listen; it serves exactly one client, so the
    // source itself is the only thing that may connect.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match run_source(&source, &up) {
            Ok(()) => break,
            Err(e) if e.retry && up.frames().is_empty() && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("ffmpeg camera failed: {e}"),
        }
    }
    let frames = up.frames();
    assert_eq!(frames.len(), 3);
    for f in &frames {
        assert!(looks_complete(f));
        assert_eq!(resolution(f), Some((1280, 720)));
    }
}

/// An https camera with a self-signed certificate. With the `webpki-roots`
/// feature printcam reaches it over TLS (rustls with printcam's AES-GCM-only
/// provider) and refuses the certificate as issued by no known CA; without
/// the feature it refuses https before connecting, saying which feature is
/// missing.
#[test]
fn https_camera_needs_the_public_roots() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::net::TcpListener;

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let source = MjpegHttp::new(
        format!("https://u:s3cr3t-pw@127.0.0.1:{port}/video"),
        LOOPBACK_OK,
    );
    if !cfg!(feature = "webpki-roots") {
        let err = run_source(&source, &Collector::new(1, 15)).unwrap_err();
        assert!(!err.retry, "{}", err.message);
        assert!(err.message.contains("webpki-roots"), "{}", err.message);
        assert_no_secret(&err);
        listener.set_nonblocking(true).unwrap();
        assert!(listener.accept().is_err(), "printcam connected anyway");
        return;
    }
    let server = thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let cert =
            CertificateDer::from_pem_slice(include_bytes!("data/rtsps_test_cert.pem")).unwrap();
        let key = PrivateKeyDer::from_pem_slice(include_bytes!("data/rtsps_test_key.pem")).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
        let mut conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut sock) {
                return e.to_string();
            }
        }
        "handshake completed".to_string()
    });
    let err = run_source(&source, &Collector::new(1, 15)).unwrap_err();
    // The suites and key exchange were agreed: it got as far as the
    // certificate chain, which chains to no public CA.
    assert!(
        err.message.contains("invalid peer certificate"),
        "{}",
        err.message
    );
    assert_no_secret(&err);
    let seen = server.join().unwrap();
    assert_ne!(seen, "handshake completed");
}
