//! `camera/stream.m3u8` end to end: GStreamer's RTSP server (H.264, one
//! keyframe a second) as an external rtsp camera, read by the native
//! client, served as HLS with fMP4 segments that ffmpeg and ffprobe play
//! from the playlist URL; old segments leave the ring, a token travels in
//! the playlist's URIs, and polling players keep one RTSP session.

mod support;

#[path = "fake-ffmpeg/support.rs"]
mod doubles;

use doubles::programs::Reaped;
use doubles::{serial, RtspServer};
use printcam::http::Limits;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{test_settings, HttpResponse, TestServer};

const USER: &str = "viewer";
const PASSWORD: &str = "s3cret-pw";

/// A grace period longer than a player's poll (one segment, 1 s), as the
/// default 5 s is.
fn hls_settings() -> printcam::config::Settings {
    printcam::config::Settings {
        grace: Duration::from_secs(3),
        ..test_settings()
    }
}

fn add_camera(ts: &TestServer, port: u16, query: &str) -> i64 {
    let body = doubles::rtsp_camera_json(USER, PASSWORD, port);
    let r = ts.send_json("POST", &format!("/printers{query}"), &body);
    assert_eq!(r.status, 201, "{}", r.text());
    r.json().get("id").and_then(|v| v.as_i64()).unwrap()
}

/// The playlist's URIs (init first, then the segments), and the sequence
/// numbers of its segments.
struct Playlist {
    text: String,
    init: String,
    segments: Vec<(u64, String)>,
}

fn playlist(ts: &TestServer, id: i64, query: &str) -> Playlist {
    let r = ts.get(&format!("/printers/{id}/camera/stream.m3u8{query}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert!(r.header("cache-control").unwrap().contains("no-cache"));
    parse(&r.text())
}

fn parse(text: &str) -> Playlist {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..2], ["#EXTM3U", "#EXT-X-VERSION:7"], "{text}");
    let value = |tag: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(tag))
            .unwrap_or_else(|| panic!("no {tag} in {text}"))
    };
    let target: u64 = value("#EXT-X-TARGETDURATION:").parse().unwrap();
    let first: u64 = value("#EXT-X-MEDIA-SEQUENCE:").parse().unwrap();
    let init = value("#EXT-X-MAP:URI=").trim_matches('"').to_string();
    let mut segments = Vec::new();
    for pair in lines.windows(2) {
        let Some(extinf) = pair[0].strip_prefix("#EXTINF:") else {
            continue;
        };
        let seconds: f64 = extinf.trim_end_matches(',').parse().unwrap();
        // x264's keyframe every 15 frames at 15 fps: segments of 1 s.
        assert!((0.5..=2.5).contains(&seconds), "{text}");
        assert!(seconds.round() as u64 <= target, "{text}");
        let sequence = first + segments.len() as u64;
        let uri = pair[1].to_string();
        assert!(uri.starts_with(&format!("hls/{sequence}.m4s")), "{text}");
        segments.push((sequence, uri));
    }
    assert!(!segments.is_empty(), "{text}");
    Playlist {
        text: text.to_string(),
        init,
        segments,
    }
}

/// What a relative URI of printer `id`'s playlist names.
fn fetch(ts: &TestServer, id: i64, uri: &str) -> HttpResponse {
    ts.get(&format!("/printers/{id}/camera/{uri}"))
}

/// Runs a program for at most `limit`; its stdout, or a panic with its
/// stderr if it failed or had to be killed.
fn run(program: &Path, args: &[&str], limit: Duration) -> String {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut child = Reaped(child);
    // Both pipes are read only after the exit: the programs write little.
    let exited = child.exits_within(limit);
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.0.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.0.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(exited, "{} ran past {limit:?}: {err}", program.display());
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{}: {err}", program.display());
    out
}

#[test]
fn ffmpeg_plays_the_playlist_from_one_rtsp_session() {
    let Some(ffmpeg) = doubles::find("ffmpeg", "ffmpeg") else {
        return;
    };
    let Some(ffprobe) = doubles::find("ffprobe", "ffmpeg") else {
        return;
    };
    if !doubles::require_gst_rtsp() {
        return;
    }
    let _serial = serial();
    let (rtsp, mut events) = RtspServer::watched(USER, PASSWORD, 60);
    let ts = TestServer::start_configured(hls_settings(), Limits::default());
    let id = add_camera(&ts, rtsp.port, "");
    let listed = playlist(&ts, id, "");
    println!("{}", listed.text);
    assert!(
        listed.init.starts_with("hls/init.mp4?v="),
        "{}",
        listed.text
    );
    let init = fetch(&ts, id, &listed.init);
    assert_eq!(init.status, 200);
    assert_eq!(init.header("content-type"), Some("video/mp4"));

    let url = format!("http://{}/printers/{id}/camera/stream.m3u8", ts.addr);
    // ffprobe takes go2rtc's form, which sends it on to the playlist.
    let go2rtc = format!("http://{}/api/stream.m3u8?src={id}", ts.addr);
    let probed = run(
        &ffprobe,
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
            &go2rtc,
        ],
        Duration::from_secs(30),
    );
    // The HLS demuxer names the stream under its program too.
    let streams: Vec<&str> = probed.lines().filter(|l| !l.is_empty()).collect();
    assert!(!streams.is_empty(), "{probed}");
    assert!(streams.iter().all(|s| *s == "h264,640,360"), "{probed}");
    let progress = run(
        &ffmpeg,
        &[
            "-nostdin",
            "-v",
            "error",
            "-nostats",
            "-i",
            &url,
            "-t",
            "3",
            "-progress",
            "pipe:1",
            "-f",
            "null",
            "-",
        ],
        Duration::from_secs(40),
    );
    let frames: u64 = progress
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix("frame="))
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no frame count in {progress}"));
    assert!(frames >= 40, "{frames} frames in 3 s of 15 fps");

    events.drain(Duration::from_millis(500));
    assert_eq!(events.count("OPTIONS"), 1, "sessions: {:?}", events.seen);
    let status = ts.get(&format!("/printers/{id}/camera/status")).json();
    let mp4 = status.get("mp4").cloned().unwrap();
    assert_eq!(
        mp4.get("viewers").and_then(|v| v.as_i64()),
        Some(0),
        "{mp4}"
    );
}

#[test]
fn a_segment_that_left_the_ring_is_404_and_a_kept_one_plays() {
    let Some(ffprobe) = doubles::find("ffprobe", "ffmpeg") else {
        return;
    };
    if !doubles::require_gst_rtsp() {
        return;
    }
    let _serial = serial();
    let rtsp = RtspServer::start(USER, PASSWORD, 640, 360);
    let ts = TestServer::start_configured(hls_settings(), Limits::default());
    let id = add_camera(&ts, rtsp.port, "");
    let first = playlist(&ts, id, "");
    let (old, old_uri) = first.segments[0].clone();
    let kept = fetch(&ts, id, &old_uri);
    assert_eq!(kept.status, 200, "{}", kept.text());
    assert_eq!(kept.header("content-type"), Some("video/iso.segment"));

    // Four segments of 1 s are kept: within 15 s the first has gone.
    let deadline = Instant::now() + Duration::from_secs(15);
    let now = loop {
        let now = playlist(&ts, id, "");
        if now.segments[0].0 > old {
            break now;
        }
        assert!(Instant::now() < deadline, "still listed: {}", now.text);
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(now.segments.len() <= 4, "{}", now.text);
    let stale = fetch(&ts, id, &old_uri);
    assert_eq!(stale.status, 404, "{}", stale.text());
    assert!(stale.detail().contains("playlist"), "{}", stale.detail());

    // The init segment and a kept segment make a playable MP4.
    let (_, last_uri) = now.segments.last().unwrap();
    let mut mp4 = fetch(&ts, id, &now.init).body;
    let segment = fetch(&ts, id, last_uri);
    assert_eq!(segment.status, 200);
    mp4.extend_from_slice(&segment.body);
    let probed = doubles::probe_mp4(&ffprobe, &mp4, "hls-segment");
    let fields: Vec<&str> = probed.split(',').collect();
    assert_eq!(fields[..3], ["h264", "640", "360"], "{probed}");
    let frames: u32 = fields[3].parse().unwrap();
    assert!((10..=30).contains(&frames), "a 1 s segment: {probed}");
}

#[test]
fn with_a_token_the_playlists_uris_carry_it() {
    if !doubles::require_gst_rtsp() {
        return;
    }
    let _serial = serial();
    let rtsp = RtspServer::start(USER, PASSWORD, 640, 360);
    let token = "t&k=1 2";
    let settings = printcam::config::Settings {
        token: Some(token.into()),
        ..hls_settings()
    };
    let ts = TestServer::start_configured(settings, Limits::default());
    let query = "?token=t%26k%3D1+2";
    let id = add_camera(&ts, rtsp.port, query);
    let refused = ts.get(&format!("/printers/{id}/camera/stream.m3u8"));
    assert_eq!(refused.status, 401, "{}", refused.text());
    let listed = playlist(&ts, id, query);
    let escaped = "token=t%26k%3D1+2";
    assert!(
        listed.init.ends_with(&format!("&{escaped}")),
        "{}",
        listed.text
    );
    let init = fetch(&ts, id, &listed.init);
    assert_eq!(init.status, 200, "{}", init.text());
    for (_, uri) in &listed.segments {
        assert!(uri.ends_with(&format!(".m4s?{escaped}")), "{}", listed.text);
    }
    let segment = fetch(&ts, id, &listed.segments[0].1);
    assert_eq!(segment.status, 200, "{}", segment.text());
    let bare = listed.segments[0].1.split('?').next().unwrap().to_string();
    assert_eq!(fetch(&ts, id, &bare).status, 401);
    // go2rtc's form is sent on to the playlist, the token with it.
    let moved = ts.get(&format!("/api/stream.m3u8?src={id}&{escaped}"));
    assert_eq!(moved.status, 302, "{}", moved.text());
    assert_eq!(
        moved.header("location"),
        Some(format!("../printers/{id}/camera/stream.m3u8?{escaped}").as_str())
    );
}

/// A player polls the playlist about once a segment; the camera stays
/// open between polls for longer than one grace period, on one session.
#[test]
fn polling_the_playlist_keeps_one_rtsp_session() {
    if !doubles::require_gst_rtsp() {
        return;
    }
    let _serial = serial();
    let (rtsp, mut events) = RtspServer::watched(USER, PASSWORD, 60);
    let settings = printcam::config::Settings {
        grace: Duration::from_secs(1),
        ..test_settings()
    };
    let ts = TestServer::start_configured(settings, Limits::default());
    let id = add_camera(&ts, rtsp.port, "");
    let first = playlist(&ts, id, "").segments[0].0;
    let start = Instant::now();
    let mut last = first;
    while start.elapsed() < Duration::from_secs(4) {
        std::thread::sleep(Duration::from_millis(300));
        last = playlist(&ts, id, "").segments.last().unwrap().0;
    }
    assert!(last >= first + 2, "segments {first}..{last} in 4 s");
    events.drain(Duration::from_millis(300));
    assert_eq!(events.count("OPTIONS"), 1, "sessions: {:?}", events.seen);
}

#[test]
fn a_non_rtsp_camera_has_no_playlist() {
    let ts = TestServer::start();
    let r = ts.get("/printers/0/camera/stream.m3u8");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.detail().contains("rtsp"), "{}", r.detail());
    assert_eq!(ts.get("/printers/0/camera/hls/0.m4s").status, 400);
}
