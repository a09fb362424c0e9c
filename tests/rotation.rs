//! Rotation and flip without re-encoding: the API fields, the frames a
//! turned camera is served with, and what Debian's headless Chromium makes
//! of them (the browser is the judge of the EXIF Orientation tag).

mod support;

#[path = "support/programs.rs"]
mod programs;

#[path = "support/browser.rs"]
mod browser;

#[path = "support/tiny_camera.rs"]
mod tiny_camera;

use browser::{have_chromium, Chromium, PageServer};
use printcam::config::Settings;
use printcam::http::Limits;
use printcam::jpeg::resolution;
use printcam::media::exif::{orientation_value, SEGMENT_LEN};
use printcam::orientation::Orientation;
use std::collections::BTreeMap;
use std::time::Duration;
use support::{test_settings, MjpegReader, TestServer};
use tiny_camera::TinyServer;

/// A 1280x720 picture (ffmpeg's testsrc) with a JFIF APP0 and no Exif.
const WIDE: &[u8] = include_bytes!("data/1280x720.jpg");

/// How long a page may take to report; generous, the machine is shared.
const REPORT_WAIT: Duration = Duration::from_secs(60);

/// A snapshot camera answering every request with `WIDE`.
fn wide_camera() -> TinyServer {
    TinyServer::start(
        |_| tiny_camera::response("200 OK", "image/jpeg", WIDE, true),
        false,
    )
}

/// Adds a printer with the camera and the orientation; its id.
fn add_turned(ts: &TestServer, camera: &TinyServer, o: Orientation) -> i64 {
    let body = format!(
        r#"{{"name":"{o:?}","camera_type":"snapshot","camera_url":"{}",
            "camera_rotation":{},"camera_flip":"{}"}}"#,
        camera.url("/snap.jpg"),
        o.rotation,
        o.flip
    );
    let r = ts.send_json("POST", "/printers", &body);
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()
        .get("id")
        .and_then(printcam::json::Value::as_i64)
        .expect("an id")
}

fn turned(degrees: i64, flip: &str) -> Orientation {
    Orientation {
        rotation: printcam::orientation::Rotation::from_degrees(degrees).unwrap(),
        flip: printcam::orientation::Flip::parse(flip).unwrap(),
    }
}

#[test]
fn the_api_shows_takes_and_refuses_rotation_and_flip_naming_the_field() {
    let ts = TestServer::start();
    let r = ts.send_json("POST", "/printers", r#"{"name":"a"}"#);
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    assert_eq!(v.get("camera_rotation").and_then(|v| v.as_i64()), Some(0));
    assert_eq!(v.get("camera_flip").and_then(|v| v.as_str()), Some("none"));
    let r = ts.send_json(
        "PATCH",
        "/printers/1",
        r#"{"camera_rotation":90,"camera_flip":"vertical"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = ts.get("/printers/1").json();
    assert_eq!(v.get("camera_rotation").and_then(|v| v.as_i64()), Some(90));
    assert_eq!(
        v.get("camera_flip").and_then(|v| v.as_str()),
        Some("vertical")
    );
    for (body, field) in [
        (r#"{"camera_rotation":45}"#, "camera_rotation"),
        (r#"{"camera_rotation":"90"}"#, "camera_rotation"),
        (r#"{"camera_flip":"diagonal"}"#, "camera_flip"),
    ] {
        for (method, path) in [("PATCH", "/printers/1"), ("POST", "/printers")] {
            let r = ts.send_json(method, path, body);
            assert_eq!(r.status, 400, "{method} {body}: {}", r.text());
            assert!(r.detail().contains(field), "{}", r.detail());
        }
    }
    // Nothing refused was stored.
    let p = ts.cameras.printer(1).unwrap();
    assert_eq!(p.orientation(), turned(90, "vertical"));
    assert_eq!(ts.cameras.printers().unwrap().len(), 2, "demo and one");
}

#[test]
fn turned_frames_carry_the_tag_and_unturned_ones_are_the_cameras_bytes() {
    let camera = wide_camera();
    let ts = TestServer::start();
    let plain = add_turned(&ts, &camera, Orientation::default());
    let side = add_turned(&ts, &camera, turned(90, "none"));
    let mirrored = add_turned(&ts, &camera, turned(270, "horizontal"));

    let snap = ts.get(&format!("/printers/{plain}/camera/snapshot"));
    assert_eq!(snap.status, 200);
    assert_eq!(snap.body, WIDE, "an unturned camera's frame as it came");

    let snap = ts.get(&format!("/printers/{side}/camera/snapshot"));
    assert_eq!(snap.status, 200);
    assert_eq!(snap.body.len(), WIDE.len() + SEGMENT_LEN);
    assert_eq!(orientation_value(&snap.body), Some(6));
    assert_eq!(
        resolution(&snap.body),
        Some((1280, 720)),
        "pixels as stored"
    );
    // After the JFIF APP0 (20 bytes), the rest as the camera sent it.
    assert_eq!(&snap.body[..20], &WIDE[..20]);
    assert_eq!(&snap.body[20 + SEGMENT_LEN..], &WIDE[20..]);

    let mut stream = MjpegReader::open(ts.addr, &format!("/printers/{side}/camera/stream?fps=5"));
    for _ in 0..2 {
        let part = stream.next_part().expect("a part");
        assert_eq!(part, snap.body, "stream parts are the snapshot's bytes");
    }
    drop(stream);

    let snap = ts.get(&format!("/printers/{mirrored}/camera/snapshot"));
    assert_eq!(orientation_value(&snap.body), Some(5));
}

#[test]
fn a_change_of_rotation_rebuilds_the_hub_and_nothing_else() {
    let camera = wide_camera();
    let ts = TestServer::start();
    let id = add_turned(&ts, &camera, turned(90, "none"));
    let snapshot = |ts: &TestServer| ts.get(&format!("/printers/{id}/camera/snapshot")).body;
    assert_eq!(orientation_value(&snapshot(&ts)), Some(6));
    let reg = ts.cameras.registry();
    let pin = "ab".repeat(32);
    assert!(reg.set_cert_pin(id, Some(&pin), false).unwrap());
    let mut viewer = MjpegReader::open(ts.addr, &format!("/printers/{id}/camera/stream?fps=5"));
    assert_eq!(orientation_value(&viewer.next_part().unwrap()), Some(6));

    let r = ts.send_json(
        "PATCH",
        &format!("/printers/{id}"),
        r#"{"camera_flip":"vertical"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // A new hub: the old one's viewer is ended, the next frames carry 5.
    let mut ended = false;
    for _ in 0..50 {
        match viewer.next_part() {
            Ok(part) => assert_eq!(orientation_value(&part), Some(6)),
            Err(_) => {
                ended = true;
                break;
            }
        }
    }
    assert!(ended, "the old hub's stream went on");
    assert_eq!(orientation_value(&snapshot(&ts)), Some(5));
    let p = ts.cameras.printer(id).unwrap();
    assert_eq!(p.cert_sha256.as_deref(), Some(pin.as_str()), "pin kept");

    // Back to no turn: the camera's bytes again.
    let r = ts.send_json(
        "PATCH",
        &format!("/printers/{id}"),
        r#"{"camera_rotation":0,"camera_flip":"none"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(snapshot(&ts), WIDE);
}

/// Loads every snapshot, and the streams, into `<img>` elements and
/// reports what the browser shows: the size, and whether sampled pixels sit
/// where the setting puts them (canvas reads of the unturned picture,
/// moved by flip-then-turn in the page's own arithmetic).
fn judge_page(api: &str, cases: &[(i64, Orientation)], plain: i64, streams: &[i64]) -> String {
    let cases: Vec<String> = cases
        .iter()
        .map(|(id, o)| format!("[{id},{},\"{}\"]", o.rotation.degrees(), o.flip.as_str()))
        .collect();
    let streams: Vec<String> = streams.iter().map(|s| s.to_string()).collect();
    format!(
        r#"<!doctype html><html><body><script>
const api = "{api}";
const cases = [{cases}];
const streams = [{streams}];
const report = (what) => fetch("/report?" + encodeURIComponent(what));
function load(src) {{
  return new Promise((ok, no) => {{
    const i = new Image();
    i.crossOrigin = "anonymous";
    i.onload = () => ok(i);
    i.onerror = () => no(new Error("failed " + src));
    i.src = src;
  }});
}}
function pixels(img) {{
  const c = document.createElement("canvas");
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext("2d");
  g.drawImage(img, 0, 0);
  return g.getImageData(0, 0, c.width, c.height);
}}
// Where the stored pixel (x, y) of a w x h picture is shown.
function place(x, y, w, h, rot, flip) {{
  if (flip === "horizontal") x = w - 1 - x;
  if (flip === "vertical") y = h - 1 - y;
  for (let t = 0; t < rot / 90; t++) {{ [x, y] = [h - 1 - y, x]; [w, h] = [h, w]; }}
  return [x, y];
}}
function at(d, x, y) {{ const i = 4 * (y * d.width + x); return [d.data[i], d.data[i+1], d.data[i+2]]; }}
async function snapshots() {{
  const base = pixels(await load(api + "/printers/{plain}/camera/snapshot"));
  const out = [];
  for (const [id, rot, flip] of cases) {{
    const img = await load(api + "/printers/" + id + "/camera/snapshot");
    const shown = pixels(img);
    let bad = 0, n = 0;
    for (let y = 37; y < base.height; y += 71) {{
      for (let x = 23; x < base.width; x += 97) {{
        const [sx, sy] = place(x, y, base.width, base.height, rot, flip);
        const a = at(base, x, y), b = at(shown, sx, sy);
        n++;
        if (a.some((v, k) => Math.abs(v - b[k]) > 12)) bad++;
      }}
    }}
    out.push(id + "=" + img.naturalWidth + "x" + img.naturalHeight + ":" + bad + "/" + n);
  }}
  return out.join(",");
}}
function stream(id) {{
  return new Promise((ok) => {{
    const img = document.createElement("img");
    img.src = api + "/printers/" + id + "/camera/stream?fps=2";
    document.body.appendChild(img);
    const started = Date.now();
    const poll = setInterval(() => {{
      if (img.naturalWidth > 0 || Date.now() - started > 30000) {{
        clearInterval(poll);
        ok("stream" + id + "=" + img.naturalWidth + "x" + img.naturalHeight);
      }}
    }}, 100);
  }});
}}
async function run() {{
  try {{ await report("snapshots:" + await snapshots()); }}
  catch (e) {{ await report("snapshots:failed " + e); }}
  const seen = await Promise.all(streams.map(stream));
  await report("streams:" + seen.join(","));
}}
run();
</script></body></html>"#,
        cases = cases.join(","),
        streams = streams.join(","),
    )
}

/// The report's `key=value` pairs after `prefix`.
fn pairs(report: &str, prefix: &str) -> BTreeMap<String, String> {
    let rest = report
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("expected {prefix}…, got {report}"));
    rest.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// All twelve settings as snapshots (size, and sampled pixels where the
/// setting puts them: this checks the EXIF table against the browser), and
/// a stream at 90 degrees beside an unturned one.
#[test]
fn chromium_shows_a_1280x720_camera_at_90_degrees_as_720x1280() {
    if !have_chromium() {
        return;
    }
    let camera = wide_camera();
    let pages = PageServer::start("127.0.0.2");
    let ts = TestServer::start_configured(
        Settings {
            cors_origin: Some(pages.origin()),
            ..test_settings()
        },
        Limits::default(),
    );
    let cases: Vec<(i64, Orientation)> = Orientation::all()
        .map(|o| (add_turned(&ts, &camera, o), o))
        .collect();
    let plain = cases[0].0;
    assert!(cases[0].1.is_identity());
    let side = cases
        .iter()
        .find(|(_, o)| *o == turned(90, "none"))
        .map(|(id, _)| *id)
        .unwrap();
    pages.set_page(judge_page(
        &format!("http://{}", ts.addr),
        &cases,
        plain,
        &[side, plain],
    ));
    let _chromium = Chromium::open(&format!("{}/", pages.origin()));

    let snaps = pages
        .next_report(REPORT_WAIT)
        .expect("the snapshots report");
    println!("{snaps}");
    let shown = pairs(&snaps, "snapshots:");
    assert_eq!(shown.len(), 12, "{snaps}");
    for (id, o) in &cases {
        let quarter = o.rotation.degrees() % 180 == 90;
        let size = if quarter { "720x1280" } else { "1280x720" };
        let seen = &shown[&id.to_string()];
        let (got_size, misplaced) = seen.split_once(':').unwrap();
        assert_eq!(got_size, size, "{o:?}: {snaps}");
        assert!(
            misplaced.starts_with("0/"),
            "{o:?}: pixels misplaced {misplaced}"
        );
    }

    let streams = pages.next_report(REPORT_WAIT).expect("the streams report");
    println!("{streams}");
    let seen = pairs(&streams, "streams:");
    assert_eq!(seen[&format!("stream{side}")], "720x1280", "{streams}");
    assert_eq!(seen[&format!("stream{plain}")], "1280x720", "{streams}");
}
