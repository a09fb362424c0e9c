//! The URLs other tools speak (mjpg-streamer's `?action=`, go2rtc's
//! `/api/…?src=`), `/metrics` read by a real Prometheus text parser, and
//! the README's recipes run with the clients that exist here.

mod support;

#[path = "fake-ffmpeg/support.rs"]
mod doubles;

/// The one rule for missing programs (tests/support/programs.rs).
use doubles::programs;

use printcam::config::Settings;
use printcam::http::Limits;
use printcam::json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use support::{is_jpeg, test_settings, MjpegReader, TestServer};

const TOKEN: &str = "integrations-token-0123456789";

fn server(settings: Settings) -> TestServer {
    TestServer::start_configured(settings, Limits::default())
}

/// A second printer with a name, so `src` can name it.
fn with_named_printer(ts: &TestServer) -> i64 {
    let body =
        r#"{"name":"Front Door","camera_type":"snapshot","camera_url":"http://127.0.0.1:9/x.jpg"}"#;
    let r = ts.send_json("POST", "/printers", body);
    assert_eq!(r.status, 201, "{}", r.text());
    r.json().get("id").and_then(Value::as_i64).expect("id")
}

#[test]
fn mjpg_streamer_urls_serve_stream_and_snapshot() {
    let ts = server(test_settings());
    // As Mainsail/Fluidd/OctoPrint paste them, with their cache busters.
    let mut stream = MjpegReader::open(ts.addr, "/printers/0/?action=stream&timestamp=1733");
    assert_eq!(stream.status, 200);
    assert!(is_jpeg(&stream.next_part().unwrap()));
    drop(stream);
    let snap = ts.get("/printers/0/?action=snapshot&bypassCache=99");
    assert_eq!(snap.status, 200);
    assert_eq!(snap.header("Content-Type"), Some("image/jpeg"));
    assert!(is_jpeg(&snap.body));
    assert_eq!(
        ts.get("/printers/77/?action=snapshot").detail(),
        "Printer not found"
    );
}

#[test]
fn every_part_carries_its_content_length() {
    let ts = server(test_settings());
    let mut s = support::connect(ts.addr);
    write!(
        s,
        "GET /printers/0/?action=stream HTTP/1.1\r\nHost: {}\r\n\r\n",
        ts.addr
    )
    .unwrap();
    let mut r = std::io::BufReader::new(s);
    let (status, _) = support::read_head(&mut r).unwrap();
    assert_eq!(status, 200);
    for _ in 0..3 {
        // --frame, then the part's own head: Content-Type and Content-Length.
        let mut line = String::new();
        while line.trim().is_empty() {
            line.clear();
            std::io::BufRead::read_line(&mut r, &mut line).unwrap();
        }
        assert_eq!(line.trim(), "--frame");
        let (_, headers) = read_part_head(&mut r);
        let len: usize = headers["content-length"].parse().unwrap();
        let mut jpeg = vec![0u8; len];
        std::io::Read::read_exact(&mut r, &mut jpeg).unwrap();
        assert!(is_jpeg(&jpeg));
    }
}

fn read_part_head(r: &mut impl std::io::BufRead) -> ((), HashMap<String, String>) {
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            return ((), headers);
        }
        let (k, v) = line.split_once(':').unwrap();
        headers.insert(k.to_ascii_lowercase(), v.trim().to_string());
    }
}

#[test]
fn go2rtc_urls_take_a_printer_id_or_name() {
    let ts = server(test_settings());
    let id = with_named_printer(&ts);
    let mut by_id = MjpegReader::open(ts.addr, "/api/stream.mjpeg?src=0");
    assert_eq!(by_id.status, 200);
    assert!(is_jpeg(&by_id.next_part().unwrap()));
    drop(by_id);
    let frame = ts.get("/api/frame.jpeg?src=0&width=640");
    assert_eq!(frame.status, 200);
    assert!(is_jpeg(&frame.body));
    // By name, exactly or in any case; the camera itself is unreachable
    // (port 9), which answers 503, not 404.
    for src in ["Front%20Door", "front+door"] {
        let r = ts.get(&format!("/api/frame.jpeg?src={src}"));
        assert_eq!(r.status, 503, "{src}: {}", r.text());
    }
    let r = ts.get(&format!("/api/frame.jpeg?src={id}"));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(
        ts.get("/api/frame.jpeg?src=nobody").detail(),
        "Printer not found"
    );
    assert_eq!(
        ts.get("/api/stream.mjpeg?src=42").detail(),
        "Printer not found"
    );
    assert_eq!(ts.get("/api/stream.mjpeg").status, 400);
}

#[test]
fn named_sources_need_the_token_like_everything_else() {
    let ts = server(Settings {
        token: Some(TOKEN.into()),
        ..test_settings()
    });
    assert_eq!(ts.get("/api/frame.jpeg?src=0").status, 401);
    assert_eq!(ts.get("/printers/0/?action=snapshot").status, 401);
    assert_eq!(ts.get("/metrics").status, 401);
    let ok = ts.get(&format!("/api/frame.jpeg?src=0&token={TOKEN}"));
    assert_eq!(ok.status, 200);
}

/// `/metrics` as parsed by the `prometheus_client` Python package's own
/// text parser: family name → [(labels, value)].
type Families = HashMap<String, Vec<(HashMap<String, String>, f64)>>;

fn parse_with_prometheus_client(text: &str) -> Families {
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out.setdefault(s.name, []).append([s.labels, s.value])
print(json.dumps(out))
"#;
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = printcam::json::parse_bytes(&out.stdout).expect("JSON from python");
    let mut families = Families::new();
    let Value::Object(map) = v else {
        panic!("not an object")
    };
    for (name, samples) in map {
        let Value::Array(samples) = samples else {
            panic!("not a list")
        };
        for s in samples {
            let Value::Array(pair) = s else {
                panic!("not a pair")
            };
            let Value::Object(labels) = &pair[0] else {
                panic!("no labels")
            };
            let labels = labels
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            let value = match &pair[1] {
                Value::Number(n) => *n,
                other => panic!("not a number: {other:?}"),
            };
            families
                .entry(name.clone())
                .or_default()
                .push((labels, value));
        }
    }
    families
}

fn value(f: &Families, name: &str, label: (&str, &str)) -> f64 {
    f.get(name)
        .unwrap_or_else(|| panic!("{name} missing: {:?}", f.keys()))
        .iter()
        .find(|(labels, _)| labels.get(label.0).map(String::as_str) == Some(label.1))
        .unwrap_or_else(|| panic!("{name} has no {label:?}"))
        .1
}

#[test]
fn metrics_are_read_by_a_real_prometheus_parser() {
    if !programs::require_python_module("prometheus_client", "python3-prometheus-client") {
        return;
    }
    let ts = server(test_settings());
    let id = with_named_printer(&ts);
    let mut viewer = MjpegReader::open(ts.addr, "/printers/0/camera/stream?fps=10");
    for _ in 0..3 {
        assert!(is_jpeg(&viewer.next_part().unwrap()));
    }
    // One refusal by reason: no token is set, so a change from another
    // site's page.
    let refused = support::request(
        ts.addr,
        "DELETE",
        &format!("/printers/{id}"),
        &[("Origin", "http://evil.example")],
        None,
    );
    assert_eq!(refused.status, 403);
    let r = ts.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.header("Content-Type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        r.header("Content-Type")
    );
    let f = parse_with_prometheus_client(&r.text());
    assert_eq!(value(&f, "printcam_camera_viewers", ("id", "0")), 1.0);
    assert_eq!(value(&f, "printcam_camera_upstream_up", ("id", "0")), 1.0);
    assert!(value(&f, "printcam_camera_frames_in_total", ("id", "0")) >= 3.0);
    assert!(value(&f, "printcam_camera_frames_out_total", ("id", "0")) >= 3.0);
    assert!(value(&f, "printcam_camera_connects_total", ("id", "0")) >= 1.0);
    assert!(value(&f, "printcam_camera_last_frame_age_seconds", ("id", "0")) < 60.0);
    // A camera nobody has watched has its series, at zero.
    assert_eq!(
        value(&f, "printcam_camera_viewers", ("name", "Front Door")),
        0.0
    );
    assert_eq!(
        value(&f, "printcam_camera_upstream_up", ("id", &id.to_string())),
        0.0
    );
    assert_eq!(
        value(&f, "printcam_http_refused_total", ("reason", "forbidden")),
        1.0
    );
    assert_eq!(
        value(&f, "printcam_http_refused_total", ("reason", "auth")),
        0.0
    );
    assert!(f.contains_key("printcam_http_open_connections"));
    for name in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_threads",
    ] {
        let v = f.get(name).unwrap_or_else(|| panic!("{name} missing"))[0].1;
        assert!(v > 0.0, "{name} = {v}");
    }
    drop(viewer);
}

/// `stream.mp4` viewers have series of their own beside the MJPEG ones,
/// which stay as they were: an external RTSP camera (GStreamer's server)
/// watched as MP4 only.
#[test]
fn metrics_count_mp4_viewers_in_their_own_series() {
    if !programs::require_python_module("prometheus_client", "python3-prometheus-client")
        || !programs::require_gst_rtsp()
    {
        return;
    }
    let rtsp = doubles::RtspServer::start("viewer", "pw", 640, 360);
    let ts = server(test_settings());
    let body = format!(
        r#"{{"name":"Bench","camera_type":"rtsp","camera_url":"rtsp://viewer:pw@127.0.0.1:{}/streaming/live/1"}}"#,
        rtsp.port
    );
    let r = ts.send_json("POST", "/printers", &body);
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json().get("id").and_then(Value::as_i64).expect("id");
    let path = format!("/printers/{id}/camera/stream.mp4");
    let mut first = support::open_mp4_viewer(ts.addr, &path);
    let mut second = support::open_mp4_viewer(ts.addr, &path);
    support::read_mp4_for(&mut first, std::time::Duration::from_millis(500));
    support::read_mp4_for(&mut second, std::time::Duration::from_millis(500));

    let f = parse_with_prometheus_client(&ts.get("/metrics").text());
    let at = ("id", id.to_string());
    let of = |name: &str| value(&f, name, (at.0, &at.1));
    assert_eq!(of("printcam_camera_mp4_viewers"), 2.0);
    assert_eq!(of("printcam_camera_mp4_upstream_up"), 1.0);
    assert_eq!(of("printcam_camera_mp4_connects_total"), 1.0);
    assert!(of("printcam_camera_mp4_frames_in_total") >= 1.0);
    assert!(of("printcam_camera_mp4_frames_out_total") >= 2.0);
    assert!(of("printcam_camera_mp4_last_frame_age_seconds") < 60.0);
    // The MJPEG series of the same camera: nobody watches it that way.
    assert_eq!(of("printcam_camera_viewers"), 0.0);
    assert_eq!(of("printcam_camera_upstream_up"), 0.0);
    // The demo camera has both, at zero on the MP4 side.
    assert_eq!(value(&f, "printcam_camera_mp4_viewers", ("id", "0")), 0.0);
}

/// The README's go2rtc/Frigate recipe: ffmpeg (what go2rtc runs for an
/// `ffmpeg:` source) reads printcam's go2rtc-style MJPEG URL.
#[test]
fn ffmpeg_reads_the_go2rtc_style_stream() {
    if !programs::have_ffmpeg() {
        return;
    }
    let ts = server(test_settings());
    let url = format!("http://{}/api/stream.mjpeg?src=0", ts.addr);
    let (text, stderr) = programs::probe_url(std::path::Path::new("ffprobe"), &url);
    assert!(text.starts_with("mjpeg,"), "ffprobe said {text:?} {stderr}");
}

/// The README's Home Assistant recipe ("MJPEG IP Camera": an MJPEG URL and
/// a still image URL carrying the token), read by a Python HTTP client as
/// Home Assistant's own is.
#[test]
fn home_assistant_recipe_urls_work_from_python() {
    if !programs::require("/usr/bin/python3", "-V", "python3") {
        return;
    }
    let ts = server(Settings {
        token: Some(TOKEN.into()),
        ..test_settings()
    });
    let base = format!("http://{}", ts.addr);
    let mjpeg_url = format!("{base}/printers/0/camera/stream?fps=5&token={TOKEN}");
    let still_url = format!("{base}/printers/0/camera/snapshot?token={TOKEN}");
    let script = r#"
import sys, urllib.request
mjpeg, still = sys.argv[1], sys.argv[2]
img = urllib.request.urlopen(still, timeout=20).read()
assert img[:2] == b"\xff\xd8", "still image is no JPEG"
r = urllib.request.urlopen(mjpeg, timeout=20)
ctype = r.headers["Content-Type"]
assert ctype.startswith("multipart/x-mixed-replace"), ctype
seen, buf = 0, b""
while seen < 2:
    buf += r.read(4096)
    while b"\xff\xd9" in buf and b"\xff\xd8" in buf:
        buf = buf[buf.index(b"\xff\xd9") + 2:]
        seen += 1
print("ok", len(img), seen)
"#;
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script, &mjpeg_url, &still_url])
        .stdin(Stdio::null())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("ok"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The README's timelapse loop, two rounds of it, with curl.
#[test]
fn timelapse_recipe_saves_jpegs_with_curl() {
    if !programs::require("curl", "--version", "curl") {
        return;
    }
    let ts = server(test_settings());
    let dir = std::env::temp_dir().join(format!("printcam-timelapse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("http://{}/printers/0/camera/snapshot", ts.addr);
    // The recipe's loop, with `seq 2` instead of forever and a counter in
    // the name so two shots in one second do not collide.
    let script = r#"for i in $(seq 2); do curl -sf -o "shot-$i-$(date +%Y%m%d-%H%M%S).jpg" "$URL" || exit 1; sleep 1; done"#;
    let status = Command::new("sh")
        .args(["-c", script])
        .env("URL", &url)
        .current_dir(&dir)
        .status()
        .expect("sh runs");
    assert!(status.success());
    let shots: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert_eq!(shots.len(), 2);
    for shot in shots {
        assert!(is_jpeg(&std::fs::read(shot.path()).unwrap()));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
