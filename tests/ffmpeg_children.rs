//! ffmpeg children: arguments, frames, stop and reap (with fake ffmpeg
//! scripts in tests/fake-ffmpeg/), and the rtsp source against a real RTSP
//! server with the real ffmpeg.

#[path = "fake-ffmpeg/support.rs"]
mod support;

use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use printcam::ffmpeg::{self, Child};
use printcam::source::Source;
use printcam::sources::rtsp::Rtsp;
use printcam::urlguard::Policy;
use support::{child_pids, manifest, Fake, TestUp};

/// These tests count this process's children: run them one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    done()
}

fn assert_no_children() {
    // The last child may still be between exit and our look at /proc.
    let gone = wait_until(Duration::from_secs(2), || child_pids().is_empty());
    assert!(gone, "children left behind: {:?}", child_pids());
}

fn local_rtsp(fake: &Fake) -> Rtsp {
    Rtsp::url(
        "rtsp://127.0.0.1:9/streaming/live/1".into(),
        Some(fake.ffmpeg()),
        Policy {
            allow_loopback: true,
        },
        None,
    )
}

#[test]
fn usb_arguments_and_frames() {
    let _g = serial();
    let fake = Fake::new("usb", "jpegs.sh", &[("FAKE_FFMPEG_FRAMES", "3")]);
    let mut child = Child::spawn(&fake.ffmpeg(), &ffmpeg::usb_args("/dev/video3", 7)).unwrap();
    let mut out = Vec::new();
    child.take_stdout().unwrap().read_to_end(&mut out).unwrap();
    assert!(child.stop().is_some_and(|s| s.success()));
    let frame = std::fs::read(manifest("tests/fake-ffmpeg/frame.jpg")).unwrap();
    assert_eq!(out.len(), 3 * frame.len());
    let recorded = std::fs::read_to_string(fake.args_file()).unwrap();
    let recorded: Vec<&str> = recorded.lines().collect();
    assert_eq!(
        recorded,
        [
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "v4l2",
            "-framerate",
            "7",
            "-i",
            "/dev/video3",
            "-an",
            "-f",
            "mjpeg",
            "-q:v",
            "5",
            "-r",
            "7",
            "-"
        ]
    );
    assert_no_children();
}

/// The USB source through the fake ffmpeg. Where this box has a
/// `/dev/videoN`, frames come through; where it has none (CI), the source
/// must refuse before starting ffmpeg. Either way something is checked:
/// this test used to return early, counted as passed, wherever there was no
/// device.
#[test]
fn usb_source_runs_with_a_device_and_refuses_without_one() {
    let _g = serial();
    let fake = Fake::new("usbsrc", "jpegs.sh", &[]);
    let up = TestUp::new(3, 4);
    let device = (0..100)
        .map(|n| format!("/dev/video{n}"))
        .find(|d| Path::new(d).exists());
    match device {
        Some(device) => {
            Rtsp::usb(device, Some(fake.ffmpeg())).run(&up).unwrap();
            assert_eq!(up.frames.lock().unwrap().len(), 3);
        }
        None => {
            let absent = String::from("/dev/video99");
            let err = Rtsp::usb(absent.clone(), Some(fake.ffmpeg()))
                .run(&up)
                .unwrap_err();
            assert!(!err.retry, "{err}");
            assert!(
                err.message.contains(&format!("{absent} does not exist")),
                "{err}"
            );
            assert!(!fake.args_file().exists(), "ffmpeg was started");
        }
    }
    assert_no_children();
}

#[test]
fn source_run_emits_frames_and_leaves_no_child() {
    let _g = serial();
    let fake = Fake::new("run", "jpegs.sh", &[]);
    let up = TestUp::new(4, 12);
    local_rtsp(&fake).run(&up).unwrap();
    let frames = up.frames.lock().unwrap();
    assert_eq!(frames.len(), 4);
    let frame = std::fs::read(manifest("tests/fake-ffmpeg/frame.jpg")).unwrap();
    assert!(frames.iter().all(|f| *f == frame));
    // The fake's probe answer lists only -timeout.
    let recorded = std::fs::read_to_string(fake.args_file()).unwrap();
    let recorded: Vec<&str> = recorded.lines().collect();
    let i = recorded.iter().position(|a| *a == "-timeout").unwrap();
    assert_eq!(recorded[i + 1], "10000000");
    assert!(recorded.windows(2).any(|w| w == ["-r", "12"]));
    assert!(recorded.contains(&"rtsp://127.0.0.1:9/streaming/live/1"));
    assert_no_children();
}

#[test]
fn stop_kills_a_child_that_ignores_sigterm() {
    let _g = serial();
    let fake = Fake::new("stubborn", "stubborn.sh", &[]);
    let mut child = Child::spawn(&fake.ffmpeg(), &["-i".to_string(), "x".to_string()]).unwrap();
    let pid = child.pid();
    // Let the script install its trap before it is signalled.
    let mut out = child.take_stdout().unwrap();
    let mut b = [0u8; 16];
    out.read_exact(&mut b).unwrap();
    let t = Instant::now();
    let status = child.stop();
    let took = t.elapsed();
    assert!(status.is_some());
    assert!(!status.unwrap().success());
    assert!(took < Duration::from_secs(10), "stop took {took:?}");
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "not reaped");
    child.stop(); // idempotent
    drop(child);
    assert_no_children();
}

#[test]
fn hub_cancel_ends_a_stubborn_ffmpeg() {
    let _g = serial();
    let fake = Fake::new("cancel", "stubborn.sh", &[]);
    let up = Arc::new(TestUp::new(1000, 5));
    let source = Arc::new(local_rtsp(&fake));
    let (u, s) = (Arc::clone(&up), Arc::clone(&source));
    let runner = thread::Builder::new()
        .name("test-run".into())
        .spawn(move || s.run(&*u))
        .unwrap();
    assert!(wait_until(Duration::from_secs(20), || up
        .frames
        .lock()
        .unwrap()
        .len()
        >= 2));
    up.cancel();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !runner.is_finished() {
        assert!(Instant::now() < deadline, "run did not return after cancel");
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(runner.join().unwrap(), Ok(()));
    assert_no_children();
}

#[test]
fn failing_ffmpeg_gives_a_redacted_transient_error() {
    let _g = serial();
    let fake = Fake::new("refused", "refused.sh", &[]);
    let source = Rtsp::url(
        "rtsp://admin:hunter2@127.0.0.1:9/live".into(),
        Some(fake.ffmpeg()),
        Policy {
            allow_loopback: true,
        },
        None,
    );
    let up = TestUp::new(1, 5);
    let err = source.run(&up).unwrap_err();
    assert!(err.retry);
    assert!(err.message.contains("Connection refused"), "{err}");
    assert!(!err.message.contains("hunter2"), "{err}");
    assert!(!source.describe().contains("hunter2"));
    assert_no_children();
}

#[test]
fn printer_refusing_port_322_says_enable_liveview() {
    let _g = serial();
    // A port with nothing listening: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let Some(real) = support::find("ffmpeg", "ffmpeg") else {
        return;
    };
    let source = Rtsp::bambu(
        "127.0.0.1".into(),
        port,
        "12345678".into(),
        support::accept_any_client(),
        Some(real),
        Policy {
            allow_loopback: true,
        },
    );
    let up = TestUp::new(1, 5);
    let err = source.run(&up).unwrap_err();
    assert!(err.retry);
    assert!(err.message.contains("LAN mode liveview"), "{err}");
    assert!(!err.message.contains("12345678"));
    assert_no_children();
}

#[test]
fn missing_ffmpeg_is_fatal() {
    let source = Rtsp::url(
        "rtsp://127.0.0.1:9/x".into(),
        Some("/nonexistent/ffmpeg".into()),
        Policy {
            allow_loopback: true,
        },
        None,
    );
    let err = source.run(&TestUp::new(1, 5)).unwrap_err();
    assert!(!err.retry);
    assert!(err.message.contains("PRINTCAM_FFMPEG"), "{err}");
}

#[test]
fn real_ffmpeg_reads_a_real_rtsp_server() {
    let _g = serial();
    let Some(real) = support::find("ffmpeg", "ffmpeg") else {
        return;
    };
    if !support::require_gst_rtsp() {
        return;
    }
    {
        let server = support::RtspServer::start("bblp", "secret-code", 320, 240);
        let url = format!(
            "rtsp://bblp:secret-code@127.0.0.1:{}/streaming/live/1",
            server.port
        );
        let source = Rtsp::url(
            url,
            Some(real.clone()),
            Policy {
                allow_loopback: true,
            },
            None,
        );
        let up = TestUp::new(5, 10);
        source.run(&up).unwrap();
        let frames = up.frames.lock().unwrap();
        assert_eq!(frames.len(), 5);
        for f in frames.iter() {
            assert_eq!(printcam::jpeg::resolution(f), Some((320, 240)));
        }

        // A wrong password: ffmpeg fails, the error is redacted.
        let url = format!(
            "rtsp://bblp:wrong-one@127.0.0.1:{}/streaming/live/1",
            server.port
        );
        let source = Rtsp::url(
            url,
            Some(real),
            Policy {
                allow_loopback: true,
            },
            None,
        );
        let err = source.run(&TestUp::new(1, 5)).unwrap_err();
        assert!(err.retry);
        assert!(err.message.contains("401"), "{err}");
        assert!(!err.message.contains("wrong-one"), "{err}");
    }
    assert_no_children();
}
