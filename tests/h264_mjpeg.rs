//! One RTSP session feeds everything: GStreamer's RTSP server (H.264, one
//! keyframe a second) as an external rtsp camera, watched at once as
//! `stream.mp4`, HLS, MJPEG and snapshots, counts one client. MJPEG and
//! snapshots come from an ffmpeg decoder fed the session's frames (never
//! an ffmpeg RTSP client), keyframes only for a 1 fps viewer and every
//! frame for a 15 fps one. Every kind of viewer resumes when the camera
//! comes back; a stream the native client cannot take (MJPEG over RTSP)
//! is read by ffmpeg's client instead, and `rtsp_client` picks either.

mod support;

#[path = "fake-ffmpeg/support.rs"]
mod doubles;

use doubles::{serial, Events, RtspServer};
use printcam::config::Settings;
use printcam::json::Value;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{is_jpeg, open_mp4_viewer, read_mp4_for, MjpegReader, TestServer};

const USER: &str = "viewer";
const PASSWORD: &str = "s3cret-pw";
const SIZE: (u32, u32) = (640, 360);

fn have_programs() -> bool {
    doubles::find("ffmpeg", "ffmpeg").is_some() && doubles::require_gst_rtsp()
}

fn add_camera(ts: &TestServer, port: u16, rtsp_client: &str) -> i64 {
    let body = doubles::rtsp_camera_json(USER, PASSWORD, port);
    let body = body.replacen('{', &format!(r#"{{"rtsp_client":"{rtsp_client}","#), 1);
    let r = ts.send_json("POST", "/printers", &body);
    assert_eq!(r.status, 201, "{}", r.text());
    r.json().get("id").and_then(|v| v.as_i64()).unwrap()
}

fn status(ts: &TestServer, id: i64) -> Value {
    ts.get(&format!("/printers/{id}/camera/status")).json()
}

/// What the MJPEG side's decoder decodes ("keyframes", "every frame").
fn decodes(ts: &TestServer, id: i64) -> Option<String> {
    let s = status(ts, id);
    let d = s.get("decoder")?.get("decodes")?.as_str()?;
    Some(d.to_string())
}

fn frames_decoded(ts: &TestServer, id: i64) -> i64 {
    let s = status(ts, id);
    let decoder = s
        .get("decoder")
        .and_then(|d| d.get("frames_decoded")?.as_i64());
    decoder.unwrap_or(0)
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The command lines of this test process's ffmpeg children.
fn ffmpeg_children() -> Vec<String> {
    ffmpeg_pids()
        .into_iter()
        .map(|(_, cmdline)| cmdline)
        .collect()
}

/// This test process's ffmpeg children, with their command lines.
fn ffmpeg_pids() -> Vec<(u32, String)> {
    doubles::children_of(std::process::id())
        .into_iter()
        .filter_map(|pid| Some((pid, std::fs::read(format!("/proc/{pid}/cmdline")).ok()?)))
        .map(|(pid, c)| (pid, String::from_utf8_lossy(&c).replace('\0', " ")))
        .filter(|(_, c)| c.contains("ffmpeg"))
        .collect()
}

fn is_rtsp_client(cmdline: &str) -> bool {
    cmdline.contains("-rtsp_transport")
}

fn jpeg_size(jpeg: &[u8]) -> Option<(u16, u16)> {
    printcam::jpeg::resolution(jpeg)
}

/// The RTSP double (watched, H.264 at 640x360) as an external camera read
/// with `rtsp_client`; one test at a time.
struct Camera {
    ts: TestServer,
    id: i64,
    events: Events,
    /// None while the test has the camera switched off.
    rtsp: Option<RtspServer>,
    port: u16,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Camera {
    fn start(rtsp_client: &str) -> Option<Camera> {
        Camera::sending("h264", rtsp_client, support::test_settings())
    }

    /// The double sending `codec`, read by a printcam with `settings`.
    fn sending(codec: &str, rtsp_client: &str, settings: Settings) -> Option<Camera> {
        if !have_programs() {
            return None;
        }
        let serial = serial();
        let (rtsp, events) = RtspServer::watched_on(USER, PASSWORD, 0, codec, SIZE);
        let ts = TestServer::start_configured(settings, printcam::http::Limits::default());
        let id = add_camera(&ts, rtsp.port, rtsp_client);
        Some(Camera {
            ts,
            id,
            events,
            port: rtsp.port,
            rtsp: Some(rtsp),
            _serial: serial,
        })
    }
}

/// A grace period of `secs`.
fn with_grace(secs: u64) -> Settings {
    Settings {
        grace: Duration::from_secs(secs),
        ..support::test_settings()
    }
}

fn sessions(events: &mut Events) -> usize {
    events.drain(Duration::from_millis(500));
    events.count("OPTIONS")
}

#[test]
fn video_hls_mjpeg_and_snapshots_share_one_session_and_one_decoder() {
    let Some(mut camera) = Camera::start("auto") else {
        return;
    };
    let (ts, id, events) = (&camera.ts, camera.id, &mut camera.events);

    // A 1 fps dashboard: keyframes (one a second) are all it needs.
    let mut slow = MjpegReader::open(ts.addr, &format!("/printers/{id}/camera/stream?fps=1"));
    assert_eq!(slow.status, 200);
    let first = slow.next_part().unwrap();
    assert!(is_jpeg(&first));
    assert_eq!(jpeg_size(&first), Some((640, 360)));
    wait_until("keyframes only", Duration::from_secs(10), || {
        decodes(ts, id).as_deref() == Some("keyframes")
    });
    // And only keyframes reach the decoder: one frame in 15.
    let (decoded, mp4_in) = (frames_decoded(ts, id), frames_in(ts, id).1);
    wait_until(
        "more frames from the camera",
        Duration::from_secs(10),
        || frames_in(ts, id).1 >= mp4_in + 45,
    );
    let (more_decoded, more_in) = (
        frames_decoded(ts, id) - decoded,
        frames_in(ts, id).1 - mp4_in,
    );
    assert!(
        more_decoded * 5 <= more_in,
        "{more_decoded} of {more_in} frames decoded"
    );
    let children = ffmpeg_children();
    assert_eq!(children.len(), 1, "{children:?}");
    assert!(!is_rtsp_client(&children[0]), "{children:?}");
    assert!(children[0].contains("pipe:0"), "{children:?}");

    // Video, HLS and snapshots join the same session.
    let mut video = open_mp4_viewer(ts.addr, &format!("/printers/{id}/camera/stream.mp4"));
    assert!(!read_mp4_for(&mut video, Duration::from_secs(2)).is_empty());
    let hls = ts.get(&format!("/printers/{id}/camera/stream.m3u8"));
    assert_eq!(hls.status, 200, "{}", hls.text());
    for _ in 0..3 {
        let snap = ts.get(&format!("/printers/{id}/camera/snapshot"));
        assert_eq!(snap.status, 200, "{}", snap.text());
        assert!(is_jpeg(&snap.body));
    }
    assert!(is_jpeg(&slow.next_part().unwrap()));

    // A 15 fps viewer makes the decoder take every frame, and it goes
    // back to keyframes when that viewer leaves.
    let before = status(ts, id);
    let mut fast = MjpegReader::open(ts.addr, &format!("/printers/{id}/camera/stream?fps=15"));
    for _ in 0..20 {
        assert!(is_jpeg(&fast.next_part().unwrap()));
    }
    assert_eq!(decodes(ts, id).as_deref(), Some("every frame"), "{before}");
    drop(fast);
    wait_until("keyframes again", Duration::from_secs(10), || {
        decodes(ts, id).as_deref() == Some("keyframes")
    });
    read_mp4_for(&mut video, Duration::from_millis(300));

    assert_eq!(sessions(events), 1, "{:?}", events.seen);
    let children = ffmpeg_children();
    assert_eq!(children.len(), 1, "one decoder for all: {children:?}");
    assert!(!ts
        .get(&format!("/printers/{id}/camera/status"))
        .text()
        .contains(PASSWORD));
}

#[test]
fn a_cold_snapshot_decodes_one_keyframe_and_the_decoder_leaves_with_it() {
    let Some(mut camera) = Camera::sending("h264", "auto", with_grace(1)) else {
        return;
    };
    let (ts, id, events) = (&camera.ts, camera.id, &mut camera.events);
    let snap = ts.get(&format!("/printers/{id}/camera/snapshot"));
    assert_eq!(snap.status, 200, "{}", snap.text());
    assert_eq!(jpeg_size(&snap.body), Some((640, 360)));
    let s = status(ts, id);
    let decoder = s.get("decoder").cloned().unwrap_or(Value::Null);
    assert_eq!(
        decoder.get("decodes").and_then(Value::as_str),
        Some("keyframes"),
        "{s}"
    );
    assert_eq!(sessions(events), 1, "{:?}", events.seen);
    // Nothing needs pictures any more: the decoder and the session end.
    wait_until("no ffmpeg", Duration::from_secs(15), || {
        ffmpeg_children().is_empty()
    });
    assert!(
        events.wait_for("TEARDOWN", Duration::from_secs(15)),
        "{:?}",
        events.seen
    );
}

#[test]
fn killing_and_restarting_the_camera_resumes_every_kind_of_viewer() {
    let Some(mut camera) = Camera::start("auto") else {
        return;
    };
    let (ts, id, port) = (&camera.ts, camera.id, camera.port);
    let mut mjpeg = MjpegReader::open(ts.addr, &format!("/printers/{id}/camera/stream?fps=5"));
    assert!(is_jpeg(&mjpeg.next_part().unwrap()));
    let video = open_mp4_viewer(ts.addr, &format!("/printers/{id}/camera/stream.mp4"));
    let (video_bytes, video_reader) = read_in_background(video);
    assert_eq!(
        ts.get(&format!("/printers/{id}/camera/stream.m3u8")).status,
        200
    );

    camera.rtsp = None;
    std::thread::sleep(Duration::from_secs(2));
    let (mjpeg_in, mp4_in) = frames_in(ts, id);
    let (_back, mut events) = RtspServer::watched_on(USER, PASSWORD, port, "h264", SIZE);
    let back = Instant::now();

    // Both sides take pictures again, and the viewers are still there.
    wait_until("frames after the restart", Duration::from_secs(45), || {
        let (m, v) = frames_in(ts, id);
        m >= mjpeg_in + 3 && v >= mp4_in + 15
    });
    let out_before = viewer_frames_out(ts, id);
    for _ in 0..3 {
        assert!(is_jpeg(&mjpeg.next_part().unwrap()));
    }
    wait_until(
        "pictures for the MJPEG viewer",
        Duration::from_secs(10),
        || viewer_frames_out(ts, id) >= out_before + 3,
    );
    wait_until("video after the restart", Duration::from_secs(10), || {
        bytes_since(&video_bytes, back) > 50_000
    });
    let snap = ts.get(&format!("/printers/{id}/camera/snapshot"));
    assert_eq!(snap.status, 200, "{}", snap.text());
    assert_eq!(
        ts.get(&format!("/printers/{id}/camera/stream.m3u8")).status,
        200
    );
    assert_eq!(sessions(&mut events), 1, "{:?}", events.seen);
    drop(camera);
    let _ = video_reader.join();
}

type Arrivals = Arc<Mutex<Vec<(Instant, usize)>>>;

/// Reads `r` until it ends (or 20 s pass without a byte), noting when
/// each read came.
fn read_in_background(
    mut r: std::io::BufReader<std::net::TcpStream>,
) -> (Arrivals, std::thread::JoinHandle<()>) {
    let arrivals = Arrivals::default();
    let noted = Arc::clone(&arrivals);
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = r.read(&mut buf) {
            noted.lock().unwrap().push((Instant::now(), n));
        }
    });
    (arrivals, reader)
}

fn bytes_since(arrivals: &Arrivals, t: Instant) -> usize {
    let got = arrivals.lock().unwrap();
    got.iter().filter(|(at, _)| *at > t).map(|(_, n)| n).sum()
}

/// Frames sent to the MJPEG side's first viewer.
fn viewer_frames_out(ts: &TestServer, id: i64) -> i64 {
    let s = status(ts, id);
    let first = s
        .get("viewer_list")
        .and_then(Value::as_array)
        .and_then(<[Value]>::first);
    first
        .and_then(|v| v.get("frames_out")?.as_i64())
        .unwrap_or(0)
}

/// `camera/stop` ends the MJPEG viewers, the decoder and the camera's
/// session at once, not a grace period later.
#[test]
fn stop_closes_the_session_at_once() {
    let Some(mut camera) = Camera::sending("h264", "auto", with_grace(60)) else {
        return;
    };
    let (ts, id, events) = (&camera.ts, camera.id, &mut camera.events);
    let mut mjpeg = MjpegReader::open(ts.addr, &format!("/printers/{id}/camera/stream?fps=5"));
    assert!(is_jpeg(&mjpeg.next_part().unwrap()));
    let r = ts.send_json("POST", &format!("/printers/{id}/camera/stop"), "{}");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json().get("stopped").and_then(Value::as_i64), Some(1));
    assert!(
        events.wait_for("TEARDOWN", Duration::from_secs(15)),
        "{:?}",
        events.seen
    );
    wait_until("no ffmpeg", Duration::from_secs(10), || {
        ffmpeg_children().is_empty()
    });
}

/// A camera that cannot be reached: MJPEG's snapshot and test say why.
#[test]
fn an_unreachable_camera_says_why_on_the_mjpeg_side() {
    if !have_programs() {
        return;
    }
    let _serial = serial();
    let ts = TestServer::start();
    let id = add_camera(&ts, doubles::programs::free_port(), "auto");
    let snap = ts.get(&format!("/printers/{id}/camera/snapshot"));
    assert_eq!(snap.status, 503, "{}", snap.text());
    assert!(snap.detail().contains("refused"), "{}", snap.detail());
    assert!(!snap.text().contains(PASSWORD));
    let test = ts.get(&format!("/printers/{id}/camera/test")).json();
    let why = test.get("error").and_then(Value::as_str).unwrap_or("");
    assert!(why.contains("refused"), "{test}");
}

/// A decoder that dies (killed, crashed) is reaped and replaced; the
/// `<video>` viewer and the camera's session go on untouched.
#[test]
fn a_killed_decoder_is_replaced_and_the_video_goes_on() {
    let Some(mut camera) = Camera::start("auto") else {
        return;
    };
    let (ts, id, events) = (&camera.ts, camera.id, &mut camera.events);
    let mut mjpeg = MjpegReader::open(ts.addr, &format!("/printers/{id}/camera/stream?fps=5"));
    assert!(is_jpeg(&mjpeg.next_part().unwrap()));
    let video = open_mp4_viewer(ts.addr, &format!("/printers/{id}/camera/stream.mp4"));
    let (video_bytes, video_reader) = read_in_background(video);
    let decoders = ffmpeg_pids();
    assert_eq!(decoders.len(), 1, "{decoders:?}");
    let killed = decoders[0].0;
    let pid = libc::pid_t::try_from(killed).unwrap();
    // SAFETY: a plain kill(2) of our own child, which is not reaped yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let at = Instant::now();
    wait_until("a new decoder", Duration::from_secs(20), || {
        let now = ffmpeg_pids();
        now.len() == 1 && now[0].0 != killed
    });
    let out_before = viewer_frames_out(ts, id);
    wait_until("pictures again", Duration::from_secs(20), || {
        viewer_frames_out(ts, id) >= out_before + 3
    });
    assert!(is_jpeg(&mjpeg.next_part().unwrap()));
    assert!(bytes_since(&video_bytes, at) > 50_000, "the video stopped");
    let s = status(ts, id);
    let why = s.get("last_error").and_then(Value::as_str).unwrap_or("");
    assert!(why.contains("decoder"), "{s}");
    assert!(
        !std::path::Path::new(&format!("/proc/{killed}")).exists(),
        "not reaped"
    );
    assert_eq!(sessions(events), 1, "{:?}", events.seen);
    drop(camera);
    let _ = video_reader.join();
}

/// A camera that comes back with another picture size: MJPEG viewers get
/// the new size (the decoder starts again for it).
#[test]
fn a_camera_back_with_another_size_reaches_mjpeg_viewers_at_that_size() {
    let Some(mut camera) = Camera::start("auto") else {
        return;
    };
    let (ts, id, port) = (&camera.ts, camera.id, camera.port);
    let mut mjpeg = MjpegReader::open(ts.addr, &format!("/printers/{id}/camera/stream?fps=5"));
    assert_eq!(jpeg_size(&mjpeg.next_part().unwrap()), Some((640, 360)));
    camera.rtsp = None;
    let (_back, _events) = RtspServer::watched_on(USER, PASSWORD, port, "h264", (320, 180));
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let part = mjpeg.next_part().unwrap();
        if jpeg_size(&part) == Some((320, 180)) {
            break;
        }
        assert_eq!(jpeg_size(&part), Some((640, 360)));
        assert!(Instant::now() < deadline, "the new size never came");
    }
    assert_eq!(
        status(ts, id).get("viewers").and_then(Value::as_i64),
        Some(1)
    );
}

/// Frames the MJPEG side and the MP4 side have taken in.
fn frames_in(ts: &TestServer, id: i64) -> (i64, i64) {
    let s = status(ts, id);
    let of = |v: Option<&Value>| v.and_then(|v| v.get("frames_in")).and_then(Value::as_i64);
    (of(Some(&s)).unwrap_or(0), of(s.get("mp4")).unwrap_or(0))
}

#[test]
fn mjpeg_over_rtsp_falls_back_to_ffmpegs_client_and_says_why() {
    if have_programs() {
        falls_back_to_ffmpegs_client("jpeg");
    }
}

#[test]
fn h265_falls_back_to_ffmpegs_client_and_says_why() {
    if have_programs() && doubles::require_gst_element("x265enc", "gstreamer1.0-plugins-bad") {
        falls_back_to_ffmpegs_client("h265");
    }
}

/// A camera sending `codec`, which the native client does not take: its
/// MJPEG comes from ffmpeg's client, and the reason is shown.
fn falls_back_to_ffmpegs_client(codec: &str) {
    let Some(mut camera) = Camera::sending(codec, "auto", support::test_settings()) else {
        return;
    };
    let (ts, id, events) = (&camera.ts, camera.id, &mut camera.events);
    let mut mjpeg = MjpegReader::open(ts.addr, &format!("/printers/{id}/camera/stream?fps=5"));
    assert_eq!(mjpeg.status, 200);
    let part = mjpeg.next_part().unwrap();
    assert_eq!(jpeg_size(&part), Some((640, 360)));
    let children = ffmpeg_children();
    assert!(
        children.iter().any(|c| is_rtsp_client(c)),
        "ffmpeg's client reads it: {children:?}"
    );
    let s = status(ts, id);
    let why = s.get("last_error").and_then(Value::as_str).unwrap_or("");
    assert!(why.contains("no H.264"), "{s}");
    assert!(why.contains("switching to ffmpeg"), "{s}");
    let mp4 = ts.get(&format!("/printers/{id}/camera/stream.mp4"));
    assert_eq!(mp4.status, 503, "{}", mp4.text());
    assert!(mp4.detail().contains("no H.264"), "{}", mp4.detail());
    assert!(!mp4.text().contains(PASSWORD));
    drop(mjpeg);

    // With the native client forced, there is no fallback: the reason is
    // the error.
    let r = ts.send_json(
        "PATCH",
        &format!("/printers/{id}"),
        r#"{"rtsp_client":"native"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let snap = ts.get(&format!("/printers/{id}/camera/snapshot"));
    assert_eq!(snap.status, 503, "{}", snap.text());
    assert!(snap.detail().contains("no H.264"), "{}", snap.detail());
    events.drain(Duration::from_millis(200));
}

#[test]
fn rtsp_client_ffmpeg_reads_an_h264_camera_the_old_way() {
    let Some(mut camera) = Camera::start("ffmpeg") else {
        return;
    };
    let (ts, id, events) = (&camera.ts, camera.id, &mut camera.events);
    let mut mjpeg = MjpegReader::open(ts.addr, &format!("/printers/{id}/camera/stream?fps=2"));
    assert!(is_jpeg(&mjpeg.next_part().unwrap()));
    let children = ffmpeg_children();
    assert_eq!(children.len(), 1, "{children:?}");
    assert!(is_rtsp_client(&children[0]), "{children:?}");
    assert!(status(ts, id).get("decoder").is_some_and(|d| d.is_null()));
    assert_eq!(sessions(events), 1, "{:?}", events.seen);
}
