//! ffmpeg-fed cameras through `Cameras`: no ffmpeg outlives its use (grace
//! period, stop, a dying upstream, shutdown), a missing ffmpeg fails once
//! and clearly, and an X1C (RTSPS with Digest auth behind TLS) end to end
//! with the real ffmpeg, its certificate pinned on first use.

#[path = "fake-ffmpeg/support.rs"]
mod support;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use printcam::camera::CameraType;
use printcam::cameras::Cameras;
use printcam::config::Settings;
use printcam::error::Error;
use printcam::hub::RecvTimeoutError;
use printcam::registry::{Printer, Registry};
use printcam::tls::cert_sha256_hex;
use support::{child_pids, Fake, RtspServer, TlsFront};

const GRACE: Duration = Duration::from_millis(300);
/// Generous: the box may be busy building other crates.
const LONG: Duration = Duration::from_secs(20);

/// These tests count this process's children: run them one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// A fake ffmpeg printing JPEGs, stopping after `frames` (None: never).
fn fake(name: &str, frames: Option<u32>) -> Fake {
    let n = frames.map(|n| n.to_string());
    let env: Vec<(&str, &str)> = n
        .iter()
        .map(|n| ("FAKE_FFMPEG_FRAMES", n.as_str()))
        .collect();
    Fake::new(name, "jpegs.sh", &env)
}

fn cameras(ffmpeg: &Path, snapshot_timeout: Duration) -> Arc<Cameras> {
    let registry = Arc::new(Registry::open_in_memory().unwrap());
    Cameras::new(
        registry,
        Settings {
            allow_loopback: true,
            grace: GRACE,
            snapshot_timeout,
            ffmpeg: Some(ffmpeg.to_path_buf()),
            ..Settings::default()
        },
    )
}

/// An external RTSP camera read by ffmpeg's own RTSP client (the path these
/// tests follow); the fake ffmpeg ignores the URL.
fn add_rtsp_camera(cameras: &Cameras) -> i64 {
    cameras
        .add_printer(&Printer {
            name: "garage".into(),
            camera_url: Some("rtsp://127.0.0.1:8554/live".into()),
            camera_type: Some(CameraType::Rtsp),
            camera_enabled: true,
            rtsp_client: printcam::camera::RtspClient::Ffmpeg,
            ..Printer::default()
        })
        .unwrap()
}

/// Polls `cond` until it holds; fails the test after `LONG`.
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + LONG;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn no_children_left() {
    wait_until("every ffmpeg to be reaped", || child_pids().is_empty());
}

#[test]
fn ffmpeg_ends_after_the_grace_period() {
    let _serial = serial();
    let fake = fake("grace", None);
    let cameras = cameras(&fake.ffmpeg(), Duration::from_secs(10));
    let id = add_rtsp_camera(&cameras);
    let hub = cameras.hub(id).unwrap();
    let viewers: Vec<_> = (0..2).map(|_| hub.subscribe(10)).collect();
    for v in &viewers {
        for _ in 0..3 {
            v.recv(LONG).expect("no frame from the fake ffmpeg");
        }
    }
    let snapshot = cameras.snapshot(id).unwrap();
    assert!(printcam::jpeg::resolution(&snapshot.jpeg).is_some());
    assert_eq!(child_pids().len(), 1, "one ffmpeg for every consumer");
    drop(viewers);
    no_children_left();
    assert_eq!(hub.stats().connects, 1);
    cameras.shutdown();
}

#[test]
fn stop_ends_ffmpeg_and_the_streams() {
    let _serial = serial();
    let fake = fake("stop", None);
    let cameras = cameras(&fake.ffmpeg(), Duration::from_secs(10));
    let id = add_rtsp_camera(&cameras);
    let viewer = cameras.hub(id).unwrap().subscribe(10);
    viewer.recv(LONG).unwrap();
    assert_eq!(cameras.stop(id).unwrap(), 1);
    no_children_left();
    // Frames already queued may still come; then the stream ends.
    let deadline = Instant::now() + LONG;
    loop {
        match viewer.recv(Duration::from_millis(200)) {
            Err(RecvTimeoutError::Disconnected) => break,
            _ => assert!(Instant::now() < deadline, "the stream never ended"),
        }
    }
    cameras.shutdown();
}

#[test]
fn a_dying_ffmpeg_is_restarted_for_viewers_and_reaped() {
    let _serial = serial();
    // Exits after 3 frames each time.
    let fake = fake("dying", Some(3));
    let cameras = cameras(&fake.ffmpeg(), Duration::from_secs(10));
    let id = add_rtsp_camera(&cameras);
    let hub = cameras.hub(id).unwrap();
    let viewer = hub.subscribe(30);
    let deadline = Instant::now() + LONG;
    let mut most_children = 0;
    // Frames 4 and later come from a second ffmpeg.
    loop {
        most_children = most_children.max(child_pids().len());
        match viewer.recv(Duration::from_millis(200)) {
            Ok(d) if d.frame.seq >= 5 => break,
            Err(RecvTimeoutError::Disconnected) => panic!("the viewer was dropped"),
            _ => assert!(Instant::now() < deadline, "ffmpeg was not restarted"),
        }
    }
    assert!(most_children <= 1, "{most_children} ffmpegs at once");
    assert!(hub.stats().reconnects >= 1, "{:?}", hub.stats());
    drop(viewer);
    no_children_left();
    cameras.shutdown();
}

#[test]
fn shutdown_with_a_viewer_reaps_ffmpeg_promptly() {
    let _serial = serial();
    let fake = fake("shutdown", None);
    let cameras = cameras(&fake.ffmpeg(), Duration::from_secs(10));
    let id = add_rtsp_camera(&cameras);
    let viewer = cameras.hub(id).unwrap().subscribe(10);
    viewer.recv(LONG).unwrap();
    assert_eq!(child_pids().len(), 1);
    let t = Instant::now();
    cameras.shutdown();
    // ffmpeg exits on SIGTERM; SIGKILL would come after 2 s.
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "shutdown took {:?}",
        t.elapsed()
    );
    assert!(child_pids().is_empty(), "left: {:?}", child_pids());
    let deadline = Instant::now() + LONG;
    while viewer.recv(Duration::from_millis(100)).is_ok() {
        assert!(Instant::now() < deadline, "the stream never ended");
    }
}

#[test]
fn missing_ffmpeg_fails_once_with_the_reason() {
    let _serial = serial();
    let missing = Path::new("/nonexistent/ffmpeg");
    let cameras = cameras(missing, Duration::from_secs(10));
    let id = add_rtsp_camera(&cameras);
    // An explicit ffmpeg path that does not exist is named as such (the
    // "ffmpeg was not found" sentence is for a search of PATH, which finds
    // the real ffmpeg on this machine).
    let says_why = |m: &str| m.contains("/nonexistent/ffmpeg") && m.contains("does not exist");

    let test = cameras.test(id).unwrap();
    assert!(!test.success, "{test:?}");
    let error = test.error.unwrap();
    assert!(says_why(&error), "{error}");

    match cameras.snapshot(id) {
        // Unavailable is what the HTTP edge answers with 503.
        Err(e @ Error::Unavailable(_)) => assert!(says_why(e.message()), "{e}"),
        other => panic!("expected 503, got {:?}", other.map(|f| f.seq)),
    }

    let hub = cameras.hub(id).unwrap();
    let viewer = hub.subscribe(10);
    assert_eq!(
        viewer.recv(LONG).unwrap_err(),
        RecvTimeoutError::Disconnected
    );
    // Not retried in a loop while the (ended) subscription is still held.
    let connects = hub.stats().connects;
    assert!(connects <= 3, "{connects} attempts");
    thread::sleep(Duration::from_secs(1));
    assert_eq!(hub.stats().connects, connects);
    assert!(child_pids().is_empty());
    cameras.shutdown();
}

const X1C_CODE: &str = "31415926";
const RTSPS_CERT: &str = "tests/data/rtsps_test_cert.pem";

fn add_x1c(cameras: &Cameras, port: u16, code: &str) -> i64 {
    cameras
        .add_printer(&Printer {
            name: "X1C".into(),
            ip: Some("127.0.0.1".into()),
            access_code: Some(code.into()),
            model: Some("X1C".into()),
            camera_port: Some(port),
            ..Printer::default()
        })
        .unwrap()
}

fn pin_of(cameras: &Cameras, id: i64) -> Option<String> {
    cameras.registry().get(id).unwrap().unwrap().cert_sha256
}

/// An X1C: GStreamer's RTSP server with Digest auth behind a TLS front,
/// read by the real ffmpeg through printcam's proxy.
#[test]
fn x1c_through_cameras_with_the_certificate_pinned() {
    let _serial = serial();
    let Some(ffmpeg) = support::find("ffmpeg", "ffmpeg") else {
        return;
    };
    if !support::require_gst_rtsp() {
        return;
    }
    let server = RtspServer::start("bblp", X1C_CODE, 640, 360);
    let server_pid = server.child.pid();
    let ffmpegs = move || {
        child_pids()
            .into_iter()
            .filter(|p| *p != server_pid)
            .count()
    };
    let front = TlsFront::start(server.port);
    let port = front.port;
    let cameras = cameras(&ffmpeg, LONG);
    let id = add_x1c(&cameras, port, X1C_CODE);

    // A wrong access code: refused by Digest auth, and nothing is pinned.
    let wrong = add_x1c(&cameras, port, "27182818");
    let test = cameras.test(wrong).unwrap();
    assert!(!test.success, "{test:?}");
    assert!(!test.error.unwrap().contains("27182818"));
    assert_eq!(pin_of(&cameras, wrong), None);
    cameras.remove_printer(wrong).unwrap();

    let hub = cameras.hub(id).unwrap();
    let viewer = hub.subscribe(10);
    for _ in 0..3 {
        let frame = viewer.recv(LONG).expect("no frame from the X1C").frame;
        assert_eq!(printcam::jpeg::resolution(&frame.jpeg), Some((640, 360)));
    }
    let snapshot = cameras.snapshot(id).unwrap();
    assert_eq!(printcam::jpeg::resolution(&snapshot.jpeg), Some((640, 360)));
    let test = cameras.test(id).unwrap();
    assert!(test.success, "{test:?}");
    assert_eq!(test.resolution.as_deref(), Some("640x360"));
    let pin_a = cert_sha256_hex(&support::first_cert_der(RTSPS_CERT));
    assert_eq!(pin_of(&cameras, id), Some(pin_a.clone()));
    assert_eq!(ffmpegs(), 1);
    drop(viewer);
    wait_until("ffmpeg to be reaped after the grace period", || {
        ffmpegs() == 0
    });
    drop(front);

    // Another certificate at the printer's address.
    let impostor = TlsFront::start_on(
        port,
        server.port,
        support::server_config("tests/data/printer_b.crt", "tests/data/printer_b.key"),
    );
    let test = cameras.test(id).unwrap();
    assert!(!test.success, "{test:?}");
    let error = test.error.unwrap();
    assert!(error.contains("certificate changed"), "{error}");
    assert!(error.contains("forget-cert"), "{error}");
    assert_eq!(pin_of(&cameras, id), Some(pin_a));
    // Refused for good: no retry loop.
    let connects = hub.stats().connects;
    thread::sleep(Duration::from_secs(1));
    assert_eq!(hub.stats().connects, connects);

    cameras.forget_cert(id).unwrap();
    let test = cameras.test(id).unwrap();
    assert!(test.success, "{test:?}");
    assert_eq!(
        pin_of(&cameras, id),
        Some(cert_sha256_hex(&support::first_cert_der(
            "tests/data/printer_b.crt"
        )))
    );
    assert!(impostor.accepted.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    cameras.shutdown();
    assert_eq!(ffmpegs(), 0);
}

/// ffmpeg follows the fastest viewer: a cold snapshot starts it slow, a
/// viewer wanting more restarts it faster, one ffmpeg at a time.
#[test]
fn ffmpeg_is_restarted_for_a_faster_viewer() {
    let _serial = serial();
    let fake = fake("fps", None);
    let cameras = cameras(&fake.ffmpeg(), LONG);
    let id = add_rtsp_camera(&cameras);
    let hub = cameras.hub(id).unwrap();
    hub.snapshot(LONG).unwrap();
    let slow = fake.last_fps().unwrap();
    assert!(slow < 15, "started at {slow} fps for a snapshot");
    let viewer = hub.subscribe(15);
    wait_until("ffmpeg restarted at 15 fps", || {
        assert!(child_pids().len() <= 1, "two ffmpegs at once");
        fake.last_fps() == Some(15)
    });
    viewer.recv(LONG).unwrap();
    // A slower viewer changes nothing.
    let slower = hub.subscribe(5);
    viewer.recv(LONG).unwrap();
    assert_eq!(fake.last_fps(), Some(15));
    drop(viewer);
    drop(slower);
    cameras.shutdown();
    no_children_left();
}
