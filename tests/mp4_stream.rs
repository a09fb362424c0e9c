//! `camera/stream.mp4` end to end: GStreamer's RTSP server (H.264, Digest)
//! as an external rtsp camera, read by the native client without ffmpeg,
//! served as fragmented MP4 that ffprobe reads back and headless Chromium
//! and Firefox ESR play in a `<video>`; two viewers share one RTSP session.

mod support;

#[path = "fake-ffmpeg/support.rs"]
mod doubles;

/// For `browser`, which finds the rule for missing programs here.
use doubles::programs;

#[path = "support/browser.rs"]
mod browser;

use browser::{have_chromium, have_firefox, Chromium, Firefox, PageServer};
use doubles::{serial, RtspServer};
use printcam::http::Limits;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::{
    open_mp4_viewer, read_head, read_mp4_for, test_settings, MjpegReader, TestServer, IO_TIMEOUT,
};

const USER: &str = "viewer";
const PASSWORD: &str = "s3cret-pw";

/// A printer whose camera is the RTSP double; returns its id.
fn add_camera(ts: &TestServer, port: u16) -> i64 {
    let body = doubles::rtsp_camera_json(USER, PASSWORD, port);
    let r = ts.send_json("POST", "/printers", &body);
    assert_eq!(r.status, 201, "{}", r.text());
    r.json().get("id").and_then(|v| v.as_i64()).unwrap()
}

fn probe(ffprobe: &std::path::Path, data: &[u8]) -> String {
    doubles::probe_mp4(ffprobe, data, "stream-mp4")
}

fn mp4_figures(ts: &TestServer, id: i64) -> printcam::json::Value {
    let status = ts.get(&format!("/printers/{id}/camera/status")).json();
    status
        .get("mp4")
        .cloned()
        .unwrap_or(printcam::json::Value::Null)
}

fn mp4_viewers(ts: &TestServer, id: i64) -> Option<i64> {
    mp4_figures(ts, id).get("viewers").and_then(|v| v.as_i64())
}

#[test]
fn two_mp4_viewers_share_one_rtsp_session_without_ffmpeg() {
    let Some(ffprobe) = doubles::find("ffprobe", "ffmpeg") else {
        return;
    };
    if !doubles::require_gst_rtsp() {
        return;
    }
    let _serial = serial();
    let (rtsp, mut events) = RtspServer::watched(USER, PASSWORD, 60);
    let ts = TestServer::start();
    let id = add_camera(&ts, rtsp.port);
    let path = format!("/printers/{id}/camera/stream.mp4");

    let mut first = open_mp4_viewer(ts.addr, &path);
    let mut second = open_mp4_viewer(ts.addr, &path);
    let a = read_mp4_for(&mut first, Duration::from_secs(3));
    let b = read_mp4_for(&mut second, Duration::from_millis(500));
    let probed = probe(&ffprobe, &a);
    let fields: Vec<&str> = probed.split(',').collect();
    assert_eq!(fields[..3], ["h264", "640", "360"], "{probed}");
    let frames: u32 = fields[3].parse().unwrap();
    assert!(frames >= 15, "only {frames} frames in 3 s: {probed}");
    // The second viewer starts with a picture too: the group kept.
    assert!(probe(&ffprobe, &b).starts_with("h264,640,360"));

    events.drain(Duration::from_secs(1));
    assert_eq!(events.count("OPTIONS"), 1, "sessions: {:?}", events.seen);
    let others = doubles::child_pids_besides(rtsp.child.pid());
    assert!(
        others.is_empty(),
        "a child runs beside the mp4 viewers: {others:?}"
    );

    let figures = mp4_figures(&ts, id);
    assert_eq!(mp4_viewers(&ts, id), Some(2), "{figures}");
    let out = figures.get("frames_out").and_then(|v| v.as_i64()).unwrap();
    assert!(out > 0, "{figures}");

    // A snapshot (MJPEG side) must not open a second connection meanwhile.
    support::assert_snapshot_shares_the_mp4_session(&ts, id, PASSWORD);

    // A viewer who hangs up frees its place at once, while the camera
    // keeps sending.
    drop(second);
    let deadline = Instant::now() + Duration::from_secs(5);
    while mp4_viewers(&ts, id) != Some(1) {
        assert!(Instant::now() < deadline, "{}", mp4_figures(&ts, id));
        std::thread::sleep(Duration::from_millis(50));
    }
    read_mp4_for(&mut first, Duration::from_millis(300));
    events.drain(Duration::from_millis(300));
    assert_eq!(events.count("OPTIONS"), 1, "sessions: {:?}", events.seen);
    drop(first);
    drop(ts);
    // The session ends with the server: TEARDOWN was sent.
    assert!(
        events.wait_for("TEARDOWN", Duration::from_secs(10)),
        "{:?}",
        events.seen
    );
}

/// With `rtsp_client` ffmpeg the MJPEG side has a client of its own,
/// ffmpeg's: the MP4 stream waits for it rather than open a second one.
#[test]
fn while_ffmpeg_reads_for_mjpeg_the_mp4_stream_opens_no_second_connection() {
    if doubles::find("ffmpeg", "ffmpeg").is_none() || !doubles::require_gst_rtsp() {
        return;
    }
    let _serial = serial();
    let (rtsp, mut events) = RtspServer::watched(USER, PASSWORD, 60);
    let ts = TestServer::start();
    let id = add_camera(&ts, rtsp.port);
    let r = ts.send_json(
        "PATCH",
        &format!("/printers/{id}"),
        r#"{"rtsp_client":"ffmpeg"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let mut mjpeg = MjpegReader::open(ts.addr, &format!("/printers/{id}/camera/stream"));
    assert!(support::is_jpeg(&mjpeg.next_part().unwrap()));
    events.drain(Duration::from_millis(500));
    let sessions = events.count("OPTIONS");

    let r = ts.get(&format!("/printers/{id}/camera/stream.mp4"));
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.detail().contains("busy with its MJPEG stream"),
        "{}",
        r.detail()
    );
    assert!(!r.text().contains(PASSWORD));
    events.drain(Duration::from_millis(500));
    assert_eq!(events.count("OPTIONS"), sessions, "{:?}", events.seen);

    // Once the MJPEG viewer is gone (and the grace period over), it plays.
    drop(mjpeg);
    let path = format!("/printers/{id}/camera/stream.mp4");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let probe = TcpStream::connect(ts.addr).unwrap();
        probe.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut r = BufReader::new(probe);
        write!(r.get_mut(), "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        if read_head(&mut r).unwrap().0 == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "stream.mp4 never started");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_non_rtsp_camera_has_no_mp4_stream() {
    let ts = TestServer::start();
    let r = ts.get("/printers/0/camera/stream.mp4");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.detail().contains("rtsp"), "{}", r.detail());
}

/// A page whose `<video>` plays `src` and reports, 3 s after it first
/// plays, its size and how far its time went; or its error, or that it
/// showed nothing in 30 s.
fn video_page(src: &str) -> String {
    format!(
        r#"<!doctype html><video id="v" muted autoplay playsinline src="{src}"></video>
<script>
const v = document.getElementById("v");
const report = (what) => fetch("/report?" + encodeURIComponent(what));
v.addEventListener("error", () => report("error " + (v.error && v.error.code) + " " + (v.error && v.error.message)));
v.addEventListener("playing", () => {{
  const t0 = v.currentTime;
  setTimeout(() => report("played " + v.videoWidth + "x" + v.videoHeight +
                          " from " + t0.toFixed(2) + " to " + v.currentTime.toFixed(2)), 3000);
}}, {{once: true}});
setTimeout(() => report("nothing after 30 s: readyState " + v.readyState + ", networkState " +
                        v.networkState + ", " + v.videoWidth + "x" + v.videoHeight), 30000);
</script>"#
    )
}

/// The RTSP double's `stream.mp4` in a `<video>` on a page of another
/// loopback origin (127.0.0.2) that the browser `open` shows: what the
/// page reported (None if nothing in 60 s), and the browser, still running.
fn stream_mp4_in_a_browser<B>(open: impl FnOnce(&str) -> B) -> (Option<String>, B) {
    let _serial = serial();
    let rtsp = RtspServer::start(USER, PASSWORD, 640, 360);
    let pages = PageServer::start("127.0.0.2");
    let settings = printcam::config::Settings {
        cors_origin: Some(pages.origin()),
        ..test_settings()
    };
    let ts = TestServer::start_configured(settings, Limits::default());
    let id = add_camera(&ts, rtsp.port);
    let src = format!("http://{}/printers/{id}/camera/stream.mp4", ts.addr);
    pages.set_page(video_page(&src));
    let browser = open(&format!("{}/", pages.origin()));
    let seen = pages.next_report(Duration::from_secs(60));
    drop((ts, rtsp));
    (seen, browser)
}

/// A report of a video of the double's size whose time went on.
fn assert_played(seen: Option<&str>) {
    let seen = seen.expect("the page's report");
    println!("{seen}");
    let words: Vec<&str> = seen.split(' ').collect();
    assert_eq!(words[..2], ["played", "640x360"], "{seen}");
    let from: f64 = words[3].parse().unwrap();
    let to: f64 = words[5].parse().unwrap();
    assert!(to > from + 1.0, "currentTime did not advance: {seen}");
}

#[test]
fn chromium_plays_stream_mp4_in_a_video_element() {
    if !doubles::require_gst_rtsp() || !have_chromium() {
        return;
    }
    let (seen, _chromium) = stream_mp4_in_a_browser(Chromium::open);
    assert_played(seen.as_deref());
}

/// Debian's Firefox ESR, headless, from a fresh profile: it decodes H.264
/// with ffmpeg's libavcodec, which it loads at run time (libavcodec59
/// comes with Debian's ffmpeg).
#[test]
fn firefox_plays_stream_mp4_in_a_video_element_from_another_origin() {
    if !doubles::require_gst_rtsp() || !have_firefox() {
        return;
    }
    let (seen, firefox) = stream_mp4_in_a_browser(Firefox::open);
    let helpers = descendants(firefox.pid());
    let decoders: Vec<u32> = helpers
        .iter()
        .copied()
        .filter(|p| maps_libavcodec(*p))
        .collect();
    println!(
        "firefox-esr: {} processes under it, libavcodec loaded in {decoders:?}",
        helpers.len()
    );
    drop(firefox);
    let left = still_running(&helpers, Duration::from_secs(10));
    assert!(left.is_empty(), "firefox's processes {left:?} outlived it");
    assert_played(seen.as_deref());
}

/// Every process under `pid` (Firefox's fork server starts the content and
/// decoder processes: they are its children, not Firefox's).
fn descendants(pid: u32) -> Vec<u32> {
    let mut all = Vec::new();
    let mut next = vec![pid];
    while let Some(p) = next.pop() {
        let children = doubles::children_of(p);
        next.extend(&children);
        all.extend(children);
    }
    all
}

/// Whether process `pid` has ffmpeg's libavcodec mapped.
fn maps_libavcodec(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/maps")).is_ok_and(|m| m.contains("libavcodec"))
}

/// Those of `pids` still running (not gone, not a zombie) after up to
/// `limit`: Firefox's content processes end when their parent is killed.
fn still_running(pids: &[u32], limit: Duration) -> Vec<u32> {
    let running = |pid: &&u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let state = stat
                    .rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .next()?
                    .to_string();
                Some(state != "Z")
            })
            .unwrap_or(false)
    };
    let deadline = Instant::now() + limit;
    loop {
        let left: Vec<u32> = pids.iter().filter(running).copied().collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// go2rtc's form of the MP4 stream, and a turned camera: the init
/// segment's display matrix says 90° (players turn the picture; no pixel
/// is decoded), and ffprobe reads the rotation back.
#[test]
fn the_go2rtc_url_serves_mp4_and_a_turned_camera_carries_its_display_matrix() {
    let Some(ffprobe) = doubles::find("ffprobe", "ffmpeg") else {
        return;
    };
    if !doubles::require_gst_rtsp() {
        return;
    }
    let _serial = serial();
    let rtsp = RtspServer::start(USER, PASSWORD, 640, 360);
    let ts = TestServer::start();
    let id = add_camera(&ts, rtsp.port);
    let turned = ts.send_json(
        "PATCH",
        &format!("/printers/{id}"),
        r#"{"camera_rotation":90}"#,
    );
    assert_eq!(turned.status, 200, "{}", turned.text());
    let mut viewer = open_mp4_viewer(ts.addr, &format!("/api/stream.mp4?src={id}"));
    let data = read_mp4_for(&mut viewer, Duration::from_secs(2));
    let tkhd = printcam::media::fmp4::find_box(&data, &[b"moov", b"trak", b"tkhd"])
        .expect("an init segment with a track header");
    // The matrix's a, b (16.16) at 90° clockwise: a = 0, b = 1.0.
    let at = tkhd.len() - 44;
    let word = |i: usize| i32::from_be_bytes(tkhd[at + 4 * i..at + 4 * i + 4].try_into().unwrap());
    assert_eq!(
        (word(0), word(1)),
        (0, 0x0001_0000),
        "tkhd matrix {:?}",
        &tkhd[at..at + 36]
    );
    let file = std::env::temp_dir().join(format!("printcam-turned-{}.mp4", std::process::id()));
    std::fs::write(&file, &data).unwrap();
    let rotation = std::process::Command::new(&ffprobe)
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream_side_data=rotation",
        ])
        .args(["-of", "csv=p=0"])
        .arg(&file)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    let said = String::from_utf8_lossy(&rotation.stdout);
    assert!(
        said.contains("-90") || said.contains("90"),
        "ffprobe said {said:?}"
    );
}
