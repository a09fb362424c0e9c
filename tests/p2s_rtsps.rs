//! A P2S-like printer (GStreamer RTSP server behind TLS whose timestamps run
//! slower than real time) read by the real ffmpeg through `Rtsp::bambu`.
//! Its own file: the child-process check at the end needs to be alone.

#[path = "fake-ffmpeg/support.rs"]
mod support;

use std::thread;
use std::time::{Duration, Instant};

use printcam::source::Source;
use printcam::sources::rtsp::Rtsp;
use printcam::urlguard::Policy;
use support::{accept_any_client, child_pids, TestUp, TlsFront};

const LOOPBACK_OK: Policy = Policy {
    allow_loopback: true,
};

/// Frames `source` delivers at 5 fps before `limit` frames or `window`.
fn frames_within(source: Rtsp, limit: usize, window: Duration) -> (usize, Duration) {
    let up = std::sync::Arc::new(TestUp::new(limit, 5));
    let (runner, start) = (std::sync::Arc::clone(&up), Instant::now());
    let thread = thread::Builder::new()
        .name("p2s-run".into())
        .spawn(move || {
            let _ = source.run(runner.as_ref());
        })
        .unwrap();
    while up.frames.lock().unwrap().len() < limit && start.elapsed() < window {
        thread::sleep(Duration::from_millis(50));
    }
    up.cancel();
    thread.join().unwrap();
    let got = up.frames.lock().unwrap().len();
    (got, start.elapsed())
}

/// A P2S-like printer whose frames' timestamps run 50 times slower than
/// real time: read as-is, ffmpeg's `-r 5` keeps about one frame in ten
/// seconds; with the P2S quirk (wall-clock timestamps) frames keep flowing.
#[test]
fn p2s_slow_timestamps_keep_frames_flowing_with_the_quirk() {
    use printcam::cameras::quirks;
    use printcam::registry::Printer;
    let Some(ffmpeg) = support::find("ffmpeg", "ffmpeg") else {
        return;
    };
    if !support::require_gst_rtsp() {
        return;
    }
    {
        let server = support::RtspServer::start_slow("bblp", "31415926", 320, 180, 50);
        let front = TlsFront::start(server.port);
        let p2s = |model: &str| {
            Rtsp::bambu(
                "127.0.0.1".into(),
                front.port,
                "31415926".into(),
                accept_any_client(),
                Some(ffmpeg.clone()),
                LOOPBACK_OK,
            )
            .with_quirks(quirks(&Printer {
                model: Some(model.into()),
                ..Printer::default()
            }))
        };
        let (with_fix, took) = frames_within(p2s("Bambu Lab P2S"), 15, Duration::from_secs(40));
        assert_eq!(with_fix, 15, "frames stalled with the P2S quirk");
        // The double really has the quirk: the same stream read without
        // the fix, for at least as long, yields a fraction of that.
        let window = took.max(Duration::from_secs(6));
        let (without, _) = frames_within(p2s("X1C"), 15, window);
        eprintln!(
            "P2S double: 15 frames in {took:?} with the quirk, {without} in {window:?} without"
        );
        assert!(
            without <= 5,
            "{without} frames without the fix in {window:?}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !child_pids().is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert!(child_pids().is_empty(), "children left: {:?}", child_pids());
}
