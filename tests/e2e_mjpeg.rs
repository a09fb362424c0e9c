//! printcam end to end against a real MJPEG network camera: ffmpeg serving
//! multipart JPEG over HTTP to exactly ONE client (`-listen 1`), so every
//! test here also proves that printcam opens a single upstream however many
//! viewers, snapshots and tests it serves.

mod support;

#[path = "support/programs.rs"]
mod programs;
#[path = "support/tiny_camera.rs"]
mod tiny_camera;

use printcam::http::Limits;
use printcam::jpeg::resolution;
use programs::{ffmpeg_camera, free_port, have_ffmpeg, Reaped, FFMPEG_MULTIPART};
use std::io::Write;
use std::net::TcpStream;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};
use support::{is_jpeg, test_settings, MjpegReader, TestServer};

/// The camera's frame rate, and what each viewer asks for.
const CAMERA_FPS: u32 = 15;
/// The window over which frame rates are counted.
const WINDOW: Duration = Duration::from_secs(5);
/// At least this share of the camera's frames must reach a viewer.
const MIN_SHARE: f64 = 0.8;

fn server(grace: Duration) -> TestServer {
    let settings = printcam::config::Settings {
        grace,
        ..test_settings()
    };
    TestServer::start_configured(settings, Limits::default())
}

fn add_camera(ts: &TestServer, kind: &str, url: &str) -> i64 {
    let body = format!(r#"{{"name":"cam","camera_type":"{kind}","camera_url":"{url}"}}"#);
    let r = ts.send_json("POST", "/api/v1/printers", &body);
    assert_eq!(r.status, 201, "{}", r.text());
    r.json().get("id").and_then(|v| v.as_i64()).expect("id")
}

/// Tests that count frames run one at a time: on a 2-core machine several
/// 720p encoders at once would measure the machine, not printcam.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

type Setup = (MutexGuard<'static, ()>, TestServer, Reaped, u16, i64);

/// An ffmpeg camera on a fresh port and a server with it registered.
fn setup(grace: Duration) -> Option<Setup> {
    let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !have_ffmpeg() {
        return None;
    }
    let port = free_port();
    let camera = ffmpeg_camera(port, Some(FFMPEG_MULTIPART));
    let ts = server(grace);
    let id = add_camera(&ts, "mjpeg", &format!("http://127.0.0.1:{port}/stream"));
    Some((turn, ts, camera, port, id))
}

fn stream_path(id: i64) -> String {
    format!("/printers/{id}/camera/stream?fps={CAMERA_FPS}")
}

/// Opens a viewer and waits for its first frame (the camera may still be
/// starting: the hub retries).
fn viewer(ts: &TestServer, id: i64) -> MjpegReader {
    let mut v = MjpegReader::open(ts.addr, &stream_path(id));
    assert_eq!(v.status, 200);
    let first = v.next_part().expect("first frame");
    assert!(is_jpeg(&first));
    v
}

/// Frames one viewer receives in `WINDOW`.
fn count_frames(v: &mut MjpegReader) -> usize {
    let end = Instant::now() + WINDOW;
    let mut n = 0;
    while Instant::now() < end {
        let f = v.next_part().expect("frame");
        assert!(is_jpeg(&f));
        n += 1;
    }
    n
}

fn min_frames() -> usize {
    (f64::from(CAMERA_FPS) * WINDOW.as_secs_f64() * MIN_SHARE) as usize
}

fn status_field(ts: &TestServer, id: i64, field: &str) -> i64 {
    let s = ts.get(&format!("/printers/{id}/camera/status")).json();
    s.get(field).and_then(|v| v.as_i64()).unwrap_or(-1)
}

fn state(ts: &TestServer, id: i64) -> String {
    let s = ts.get(&format!("/printers/{id}/camera/status")).json();
    s.get("state")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string()
}

#[test]
fn five_viewers_share_one_upstream_and_snapshots_are_instant() {
    let Some((_turn, ts, mut camera, _port, id)) = setup(Duration::from_secs(1)) else {
        return;
    };
    let counts: Vec<usize> = thread::scope(|s| {
        let handles: Vec<_> = (0..5)
            .map(|_| {
                let ts = &ts;
                s.spawn(move || count_frames(&mut viewer(ts, id)))
            })
            .collect();
        // While they watch: snapshots come from the live connection.
        thread::sleep(Duration::from_secs(2));
        for _ in 0..5 {
            let started = Instant::now();
            let r = ts.get(&format!("/printers/{id}/camera/snapshot"));
            let took = started.elapsed();
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(r.header("Content-Type"), Some("image/jpeg"));
            assert!(is_jpeg(&r.body));
            assert_eq!(resolution(&r.body), Some((1280, 720)));
            let age: u64 = r.header("X-Frame-Age-Ms").unwrap().parse().unwrap();
            assert!(age < 2000, "age {age} ms");
            // Generous: a cold capture would need a second connection,
            // which this camera refuses, so a slow answer means a miss.
            assert!(took < Duration::from_secs(1), "snapshot took {took:?}");
        }
        let test = ts.get(&format!("/printers/{id}/camera/test")).json();
        assert_eq!(test.get("success").and_then(|v| v.as_bool()), Some(true));
        assert_eq!(
            test.get("resolution").and_then(|v| v.as_str()),
            Some("1280x720")
        );
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for n in &counts {
        assert!(
            *n >= min_frames(),
            "a viewer got {n} frames in {WINDOW:?}: {counts:?}"
        );
    }
    assert_eq!(status_field(&ts, id, "connects"), 1);
    // The last viewer has left: after the grace period the upstream closes,
    // and the camera, having lost its one client, exits.
    assert!(
        camera.exits_within(Duration::from_secs(10)),
        "upstream still open"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while state(&ts, id) != "idle" {
        assert!(Instant::now() < deadline, "hub never went idle");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn stop_ends_the_streams_and_closes_the_upstream() {
    let Some((_turn, ts, mut camera, _port, id)) = setup(Duration::from_secs(60)) else {
        return;
    };
    let mut a = viewer(&ts, id);
    let mut b = viewer(&ts, id);
    let r = ts.send_json("POST", &format!("/printers/{id}/camera/stop"), "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json().get("stopped").and_then(|v| v.as_i64()), Some(2));
    for v in [&mut a, &mut b] {
        v.read_to_end().expect("the stream ends rather than hangs");
    }
    // Nobody else was watching: the upstream closes now, not after 60 s.
    assert!(
        camera.exits_within(Duration::from_secs(10)),
        "upstream still open"
    );
}

#[test]
fn a_viewer_resumes_when_the_camera_comes_back() {
    let Some((_turn, ts, camera, port, id)) = setup(Duration::from_secs(1)) else {
        return;
    };
    let mut v = viewer(&ts, id);
    for _ in 0..5 {
        v.next_part().expect("frame before the restart");
    }
    drop(camera);
    let _camera = ffmpeg_camera(port, Some(FFMPEG_MULTIPART));
    // Same connection, frames again after the hub reconnected.
    for _ in 0..20 {
        assert!(is_jpeg(&v.next_part().expect("frame after the restart")));
    }
    assert!(status_field(&ts, id, "reconnects") >= 1);
}

#[test]
fn a_viewer_that_reads_nothing_does_not_slow_the_others() {
    let Some((_turn, ts, _camera, _port, id)) = setup(Duration::from_secs(1)) else {
        return;
    };
    let mut stalled = TcpStream::connect(ts.addr).unwrap();
    write!(
        stalled,
        "GET {} HTTP/1.1\r\nHost: x\r\n\r\n",
        stream_path(id)
    )
    .unwrap();
    let _first = viewer(&ts, id);
    // Long enough for the stalled viewer's socket buffers to fill.
    thread::sleep(Duration::from_secs(4));
    let counts: Vec<usize> = thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let ts = &ts;
                s.spawn(move || count_frames(&mut viewer(ts, id)))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for n in &counts {
        assert!(*n >= min_frames(), "a viewer got {n} frames: {counts:?}");
    }
    let status = ts.get(&format!("/printers/{id}/camera/status")).json();
    let dropped = status
        .get("frames_dropped")
        .and_then(|v| v.as_i64())
        .unwrap();
    assert!(
        dropped > 0,
        "the stalled viewer should be skipping frames: {status}"
    );
    drop(stalled);
}

#[test]
fn a_camera_announcing_octet_stream_is_served_too() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !have_ffmpeg() {
        return;
    }
    let port = free_port();
    let _camera = ffmpeg_camera(port, None);
    let ts = server(Duration::from_millis(200));
    let id = add_camera(&ts, "mjpeg", &format!("http://127.0.0.1:{port}/stream"));
    let mut v = viewer(&ts, id);
    let f = v.next_part().unwrap();
    assert_eq!(resolution(&f), Some((1280, 720)));
}

#[test]
fn a_snapshot_camera_is_polled_and_served() {
    let jpeg: &'static [u8] = include_bytes!("data/f1.jpg");
    let camera = tiny_camera::TinyServer::start(
        move |_| tiny_camera::response("200 OK", "image/jpeg", jpeg, true),
        false,
    );
    let ts = server(Duration::from_millis(200));
    let id = add_camera(&ts, "snapshot", &camera.url("/snap.jpg"));
    let r = ts.get(&format!("/printers/{id}/camera/snapshot"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, jpeg);
    let mut v = MjpegReader::open(ts.addr, &format!("/printers/{id}/camera/stream?fps=5"));
    for _ in 0..3 {
        assert_eq!(v.next_part().unwrap(), jpeg);
    }
    // The camera's password never shows in the API.
    let listed = ts.get("/printers").text();
    assert!(!listed.contains("s3cr3t-pw"), "{listed}");
}

/// Renaming a printer is no reason to cut its viewers; moving its camera is.
#[test]
fn a_rename_keeps_the_viewers_and_a_new_camera_url_ends_them() {
    let jpeg: &'static [u8] = include_bytes!("data/f1.jpg");
    let camera = tiny_camera::TinyServer::start(
        move |_| tiny_camera::response("200 OK", "image/jpeg", jpeg, true),
        false,
    );
    let ts = server(Duration::from_millis(200));
    let id = add_camera(&ts, "snapshot", &camera.url("/snap.jpg"));
    let mut v = MjpegReader::open(ts.addr, &format!("/printers/{id}/camera/stream?fps=5"));
    assert_eq!(v.next_part().unwrap(), jpeg);
    let path = format!("/printers/{id}");
    let renamed = ts.send_json("PATCH", &path, r#"{"name":"front door"}"#);
    assert_eq!(renamed.status, 200, "{}", renamed.text());
    for _ in 0..3 {
        assert_eq!(v.next_part().expect("still streaming after a rename"), jpeg);
    }
    let status = ts
        .cameras
        .status(id)
        .unwrap()
        .expect("the hub is still there");
    assert_eq!((status.viewers, status.connects), (1, 1), "{status:?}");
    let moved = format!(r#"{{"camera_url":"{}"}}"#, camera.url("/other.jpg"));
    assert_eq!(ts.send_json("PATCH", &path, &moved).status, 200);
    let end = v.read_to_end();
    assert!(end.is_ok(), "the stream did not end: {end:?}");
}
