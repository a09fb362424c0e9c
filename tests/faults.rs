//! Upstream faults seen through the HTTP server: a P1S whose camera goes
//! away and comes back five times while viewers watch. Every viewer keeps
//! its one HTTP connection, and the printer never sees two connections
//! from printcam at once.

mod support;

#[path = "support/chamber_double.rs"]
mod chamber_double;

use chamber_double::{Double, Mode, Options, Stats};
use std::thread;
use std::time::{Duration, Instant};
use support::{is_jpeg, MjpegReader, TestServer};

/// Adds a P1S whose camera is the double on `port`, through the API.
fn add_p1s(ts: &TestServer, port: u16) -> i64 {
    let body = format!(
        r#"{{"name":"P1S","ip":"127.0.0.1","access_code":"12345678","model":"P1S","camera_port":{port}}}"#
    );
    let r = ts.send_json("POST", "/printers", &body);
    assert_eq!(r.status, 201, "{}", r.text());
    r.json().get("id").and_then(|v| v.as_i64()).unwrap()
}

fn endless() -> Options {
    Options::new(Mode::Endless)
}

#[test]
fn viewers_ride_out_five_camera_restarts_on_one_connection_each() {
    let mut double = Double::start(endless());
    let port = double.port();
    let ts = TestServer::start();
    let id = add_p1s(&ts, port);
    let path = format!("/printers/{id}/camera/stream?fps=30");
    let mut viewers: Vec<MjpegReader> = (0..3).map(|_| MjpegReader::open(ts.addr, &path)).collect();
    for restart in 0..=5 {
        for v in viewers.iter_mut() {
            for _ in 0..3 {
                let frame = v.next_part().unwrap_or_else(|e| {
                    panic!("viewer lost its stream after {restart} restarts: {e}")
                });
                assert!(is_jpeg(&frame));
            }
        }
        assert_eq!(Stats::get(&double.stats.max_concurrent), 1);
        if restart < 5 {
            drop(double);
            double = Double::start_on(port, endless());
        }
    }
    let status = ts.get(&format!("/printers/{id}/camera/status")).json();
    assert!(
        status.get("reconnects").and_then(|v| v.as_i64()) >= Some(5),
        "{status}"
    );
    assert_eq!(status.get("viewers").and_then(|v| v.as_i64()), Some(3));
}

/// A viewer who closes the page while the camera is silent must not stay
/// counted (holding a thread, a viewer slot and the hub's retries) until a
/// frame that may never come.
#[test]
fn a_viewer_leaving_a_silent_camera_is_let_go() {
    let double = Double::start(Options::new(Mode::Silent));
    let ts = TestServer::start();
    let id = add_p1s(&ts, double.port());
    let viewers = || ts.cameras.status(id).unwrap().map_or(0, |s| s.viewers);
    let viewer = MjpegReader::open(ts.addr, &format!("/printers/{id}/camera/stream"));
    assert_eq!(viewers(), 1);
    drop(viewer);
    let deadline = Instant::now() + Duration::from_secs(10);
    while viewers() != 0 {
        assert!(Instant::now() < deadline, "the viewer is still counted");
        thread::sleep(Duration::from_millis(50));
    }
}

/// A camera that takes the login and sends nothing: the snapshot's error
/// says how far the connection got, not only "no frame".
#[test]
fn a_silent_camera_is_told_apart_from_an_unreachable_one() {
    let double = Double::start(Options::new(Mode::Silent));
    let settings = printcam::config::Settings {
        snapshot_timeout: Duration::from_secs(2),
        ..support::test_settings()
    };
    let ts = TestServer::start_configured(settings, printcam::http::Limits::default());
    let id = add_p1s(&ts, double.port());
    let r = ts.get(&format!("/printers/{id}/camera/snapshot"));
    assert_eq!(r.status, 503);
    let detail = r.detail();
    let reached = format!(
        "TLS handshake with 127.0.0.1:{} done and the access code sent, then nothing",
        double.port()
    );
    assert!(detail.contains(&reached), "{detail}");
    assert!(!detail.contains("12345678"), "{detail}");
}
