//! An X1C's own RTSPS camera on `stream.mp4`: GStreamer's RTSP server
//! (H.264, Digest) behind a TLS front with the committed test certificate,
//! read by the native client as `rtsps://bblp:<code>@host:port/streaming/live/1`
//! with the printer's certificate check: pinned once a frame came, another
//! certificate refused for good.

mod support;

#[path = "fake-ffmpeg/support.rs"]
mod doubles;

use doubles::{RtspServer, TlsFront};
use printcam::tls::cert_sha256_hex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{open_mp4_viewer, read_mp4_for, refused_stream, TestServer};

const CODE: &str = "31415926";
const PRINTER_B: (&str, &str) = ("tests/data/printer_b.crt", "tests/data/printer_b.key");

/// The printer's camera (GStreamer behind the TLS front with the test
/// certificate) and a server to add it to; the tests count this process's
/// children, so one at a time.
struct X1c {
    ts: TestServer,
    front: Option<TlsFront>,
    port: u16,
    rtsp: RtspServer,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl X1c {
    fn start() -> X1c {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let serial = LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let rtsp = RtspServer::start("bblp", CODE, 640, 360);
        let front = TlsFront::start(rtsp.port);
        X1c {
            ts: TestServer::start(),
            port: front.port,
            front: Some(front),
            rtsp,
            _serial: serial,
        }
    }

    /// Another device, with another certificate, at the printer's address
    /// (the front it had is closed first, freeing the port); its count of
    /// connections accepted.
    fn impostor_answers(&mut self) -> Arc<AtomicU64> {
        self.front = None;
        let impostor = doubles::server_config(PRINTER_B.0, PRINTER_B.1);
        let front = TlsFront::start_on(self.port, self.rtsp.port, impostor);
        Arc::clone(&self.front.insert(front).accepted)
    }
}

fn add_x1c(ts: &TestServer, port: u16, code: &str) -> i64 {
    add_x1c_reading_with(ts, port, code, "auto")
}

/// An X1C whose MJPEG side is read by `rtsp_client`.
fn add_x1c_reading_with(ts: &TestServer, port: u16, code: &str, rtsp_client: &str) -> i64 {
    let body = format!(
        r#"{{"name":"X1C","ip":"127.0.0.1","access_code":"{code}","model":"X1C","camera_port":{port},"rtsp_client":"{rtsp_client}"}}"#
    );
    let r = ts.send_json("POST", "/printers", &body);
    assert_eq!(r.status, 201, "{}", r.text());
    r.json().get("id").and_then(|v| v.as_i64()).unwrap()
}

fn pin_of(ts: &TestServer, id: i64) -> Option<String> {
    ts.cameras.registry().get(id).unwrap().unwrap().cert_sha256
}

/// The refusal `stream.mp4` gives once the camera's hub has failed for
/// good; a stream served meanwhile fails the test.
fn refusal_for_good(ts: &TestServer, path: &str, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = refused_stream(ts.addr, path).unwrap_or_else(|| panic!("{path} was served"));
        let detail = r.detail();
        if detail.contains(what) {
            return detail;
        }
        assert!(Instant::now() < deadline, "still {}: {detail}", r.status);
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn x1c_stream_mp4_pins_the_certificate_and_refuses_another() {
    let Some(ffprobe) = doubles::find("ffprobe", "ffmpeg") else {
        return;
    };
    if !doubles::require_gst_rtsp() {
        return;
    }
    let mut x1c = X1c::start();
    let (ts, port) = (&x1c.ts, x1c.port);

    // A wrong access code: refused by Digest auth, nothing pinned.
    let wrong = add_x1c(ts, port, "27182818");
    let path = format!("/printers/{wrong}/camera/stream.mp4");
    let r = refused_stream(ts.addr, &path).expect("a wrong code is refused");
    assert!(!r.text().contains("27182818"), "{}", r.text());
    assert_eq!(pin_of(ts, wrong), None, "{}", r.text());
    let removed = support::request(ts.addr, "DELETE", &format!("/printers/{wrong}"), &[], None);
    assert!(removed.status < 300, "{}", removed.text());

    let id = add_x1c(ts, port, CODE);
    let path = format!("/printers/{id}/camera/stream.mp4");
    let mut viewer = open_mp4_viewer(ts.addr, &path);
    let data = read_mp4_for(&mut viewer, Duration::from_secs(3));
    let probed = doubles::probe_mp4(&ffprobe, &data, "x1c-mp4");
    let fields: Vec<&str> = probed.split(',').collect();
    assert_eq!(fields[..3], ["h264", "640", "360"], "{probed}");
    let pin_a = cert_sha256_hex(&doubles::first_cert_der("tests/data/rtsps_test_cert.pem"));
    assert_eq!(pin_of(ts, id), Some(pin_a.clone()));
    // No ffmpeg: the native client reads the printer.
    let others = doubles::child_pids_besides(x1c.rtsp.child.pid());
    assert!(others.is_empty(), "a child beside stream.mp4: {others:?}");
    // The MJPEG side decodes the same session: the printer sees one client.
    support::assert_snapshot_shares_the_mp4_session(ts, id, CODE);
    // Both sides show the session's TLS version.
    let status = ts.get(&format!("/printers/{id}/camera/status")).json();
    let tls = |v: Option<&printcam::json::Value>| {
        v.and_then(|v| v.get("tls_version")?.as_str().map(String::from))
    };
    assert_eq!(
        tls(status.get("mp4")).as_deref(),
        Some("TLS 1.3"),
        "{status}"
    );
    assert_eq!(tls(Some(&status)).as_deref(), Some("TLS 1.3"), "{status}");
    drop(viewer);

    let accepted = x1c.impostor_answers();
    let ts = &x1c.ts;
    let detail = refusal_for_good(ts, &path, "certificate changed");
    assert!(detail.contains("forget-cert"), "{detail}");
    assert!(!detail.contains(CODE), "{detail}");
    assert!(accepted.load(Ordering::SeqCst) >= 1);
    assert_eq!(pin_of(ts, id), Some(pin_a));
}

/// The MJPEG side read by ffmpeg's RTSP client (`rtsp_client` ffmpeg)
/// holds to the certificate `stream.mp4` pinned, also when its hub was
/// made before that pin: both sides of a printer share one trust.
#[test]
fn the_pin_stream_mp4_took_holds_for_the_mjpeg_side() {
    if doubles::find("ffmpeg", "ffmpeg").is_none() || !doubles::require_gst_rtsp() {
        return;
    }
    let mut x1c = X1c::start();
    let (ts, port) = (&x1c.ts, x1c.port);
    let id = add_x1c_reading_with(ts, port, CODE, "ffmpeg");
    // Made (not connected) while nothing is pinned yet.
    ts.cameras.hub(id).unwrap();
    let path = format!("/printers/{id}/camera/stream.mp4");
    let mut viewer = open_mp4_viewer(ts.addr, &path);
    read_mp4_for(&mut viewer, Duration::from_millis(500));
    assert!(pin_of(ts, id).is_some());
    drop(viewer);

    x1c.impostor_answers();
    let ts = &x1c.ts;
    let snapshot = format!("/printers/{id}/camera/snapshot");
    let deadline = Instant::now() + Duration::from_secs(30);
    let detail = loop {
        let r = ts.get(&snapshot);
        assert_ne!(r.status, 200, "the impostor's picture was served");
        let detail = r.detail();
        if !detail.contains("busy with its MP4 stream") {
            break detail;
        }
        assert!(Instant::now() < deadline, "{detail}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(detail.contains("certificate changed"), "{detail}");
}
