//! What a real browser makes of printcam: Debian's headless Chromium on a
//! page from another loopback origin (a dashboard), talking to a server on
//! 127.0.0.1.

mod support;

#[path = "fake-ffmpeg/support.rs"]
mod doubles;

/// For `browser`, which finds the rule for missing programs here.
use doubles::programs;

#[path = "support/browser.rs"]
mod browser;

use browser::{have_chromium, Chromium, PageServer};
use printcam::config::Settings;
use printcam::http::Limits;
use std::time::Duration;
use support::{test_settings, MjpegReader, TestServer};

const TOKEN: &str = "browser-token-0123456789";

/// How long a page may take to report; generous, the machine is shared.
const REPORT_WAIT: Duration = Duration::from_secs(60);

/// A dashboard's script: a Bearer GET and a JSON POST, both needing a
/// preflight, each reported as `name=status` or `name=failed:why`.
fn dashboard_page(api: &str) -> String {
    format!(
        r#"<!doctype html><html><body><script>
const api = "{api}";
const report = (what) => fetch("/report?" + encodeURIComponent(what));
async function run() {{
  try {{
    const r = await fetch(api + "/printers", {{headers: {{"Authorization": "Bearer {TOKEN}"}}}});
    await report("get=" + r.status);
  }} catch (e) {{ await report("get=failed:" + e); }}
  try {{
    const r = await fetch(api + "/printers", {{
      method: "POST",
      headers: {{"Authorization": "Bearer {TOKEN}", "Content-Type": "application/json"}},
      body: JSON.stringify({{name: "from the dashboard", camera_type: "snapshot",
                            camera_url: "http://127.0.0.1:9/snap.jpg"}})
    }});
    await report("post=" + r.status);
  }} catch (e) {{ await report("post=failed:" + e); }}
}}
run();
</script></body></html>"#
    )
}

#[test]
fn a_dashboard_on_another_origin_uses_the_api_with_a_bearer_token() {
    if !have_chromium() {
        return;
    }
    let pages = PageServer::start("127.0.0.2");
    let ts = TestServer::start_configured(
        Settings {
            token: Some(TOKEN.into()),
            cors_origin: Some(pages.origin()),
            ..test_settings()
        },
        Limits::default(),
    );
    pages.set_page(dashboard_page(&format!("http://{}", ts.addr)));
    let _chromium = Chromium::open(&format!("{}/", pages.origin()));
    let get = pages
        .next_report(REPORT_WAIT)
        .expect("the page reported its GET");
    let post = pages
        .next_report(REPORT_WAIT)
        .expect("the page reported its POST");
    assert_eq!(get, "get=200");
    assert_eq!(post, "post=201");
    let names: Vec<String> = ts
        .cameras
        .printers()
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert!(
        names.contains(&"from the dashboard".to_string()),
        "{names:?}"
    );
}

/// What a page of another site can make a browser send without asking:
/// an `<img>` at `camera/stop` (GET, no Origin) and `no-cors` POSTs.
fn hostile_page(api: &str) -> String {
    format!(
        r#"<!doctype html><html><body><script>
const api = "{api}";
const report = (what) => fetch("/report?" + encodeURIComponent(what));
async function run() {{
  await new Promise((done) => {{
    const img = new Image();
    img.onload = img.onerror = done;
    img.src = api + "/printers/0/camera/stop";
  }});
  await fetch(api + "/printers/1/forget-cert", {{method: "POST", mode: "no-cors"}}).catch(() => null);
  await fetch(api + "/printers", {{method: "POST", mode: "no-cors",
    headers: {{"Content-Type": "text/plain"}},
    body: JSON.stringify({{name: "planted", camera_type: "snapshot",
                          camera_url: "http://127.0.0.1:9/x.jpg"}})}}).catch(() => null);
  await report("done");
}}
run();
</script></body></html>"#
    )
}

#[test]
fn a_page_of_another_site_cannot_stop_streams_or_change_printers() {
    if !have_chromium() {
        return;
    }
    let pages = PageServer::start("127.0.0.2");
    let ts = TestServer::start_configured(test_settings(), Limits::default());
    let added = ts
        .send_json(
            "POST",
            "/printers",
            r#"{"name":"pinned","camera_type":"snapshot","camera_url":"http://127.0.0.1:9/x.jpg"}"#,
        )
        .status;
    assert_eq!(added, 201);
    ts.cameras
        .registry()
        .set_cert_pin(1, Some(&"ab".repeat(32)), false)
        .unwrap();
    let mut viewer = MjpegReader::open(ts.addr, "/printers/0/camera/stream?fps=5");
    assert_eq!(viewer.status, 200);
    assert!(support::is_jpeg(&viewer.next_part().unwrap()));
    pages.set_page(hostile_page(&format!("http://{}", ts.addr)));
    let _chromium = Chromium::open(&format!("{}/", pages.origin()));
    assert_eq!(
        pages.next_report(REPORT_WAIT).as_deref(),
        Some("done"),
        "the page did not finish"
    );
    // The stream goes on, the pin is kept, nothing was planted.
    for _ in 0..3 {
        assert!(support::is_jpeg(
            &viewer.next_part().expect("stream still on")
        ));
    }
    let watching = ts.cameras.status(0).unwrap().map_or(0, |s| s.viewers);
    assert_eq!(watching, 1, "the viewer was cut");
    let pinned = ts.cameras.registry().get(1).unwrap().unwrap();
    assert!(pinned.cert_sha256.is_some(), "the pin was forgotten");
    let names: Vec<String> = ts
        .cameras
        .printers()
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert!(!names.contains(&"planted".to_string()), "{names:?}");
}

#[path = "support/tiny_camera.rs"]
mod tiny_camera;

/// Ten cameras on the wall: a browser opens at most six connections to a
/// host, so ten live streams would leave four tiles blank; snapshot tiles
/// all show a picture.
#[test]
fn the_wall_shows_every_one_of_ten_cameras() {
    if !have_chromium() {
        return;
    }
    let jpeg: &'static [u8] = include_bytes!("data/f1.jpg");
    let camera = tiny_camera::TinyServer::start(
        move |_| tiny_camera::response("200 OK", "image/jpeg", jpeg, true),
        false,
    );
    let ts = token_server();
    for i in 1..10 {
        let body = format!(
            r#"{{"name":"Printer {i}","camera_type":"snapshot","camera_url":"{}"}}"#,
            camera.url("/snap.jpg")
        );
        add_printer(&ts, &body);
    }
    let url = format!("http://{}/?token={TOKEN}", ts.addr);
    let dom = browser::dump_dom(&url, Duration::from_secs(8));
    let shown = dom.matches("data-shown=\"").count();
    let sized = dom.matches("data-shown=\"0x0\"").count();
    println!("the wall of 10 cameras: {shown} tiles showed a picture");
    assert_eq!((shown, sized), (10, 0), "{dom}");
    assert_eq!(dom.matches("class=\"state live\"").count(), 10, "{dom}");
    // For a person to look at: BROWSER_SHOTS=dir keeps a screenshot.
    if let Some(dir) = std::env::var_os("BROWSER_SHOTS") {
        for (w, h, name) in [(1280, 900, "wall.png"), (390, 844, "wall-phone.png")] {
            let png = browser::screenshot(&url, w, h, Duration::from_secs(8));
            std::fs::write(std::path::Path::new(&dir).join(name), png).unwrap();
        }
    }
}

/// Each tile of the wall in `chromium` as the page shows it now: its label,
/// then `video WxH currentTime` or `img WxH` (natural size, 0x0 before a
/// picture came).
fn tiles_shown(devtools: &mut browser::Devtools) -> Vec<(String, String)> {
    let lines = devtools.eval(
        r#"[...document.querySelectorAll(".tile")].map((t) => {
  const v = t.querySelector("video"), i = t.querySelector("img"), how = t.querySelector(".how");
  const shown = v ? "video " + v.videoWidth + "x" + v.videoHeight + " " + v.currentTime.toFixed(2)
                  : i ? "img " + i.naturalWidth + "x" + i.naturalHeight : "none";
  return (how ? how.textContent : "") + "|" + shown;
}).join("\n")"#,
    );
    lines
        .lines()
        .map(|l| {
            let (how, shown) = l.split_once('|').unwrap_or((l, ""));
            (how.to_string(), shown.to_string())
        })
        .collect()
}

/// Polls the wall (up to 60 s) until `done` says yes of its tiles.
fn wait_for_tiles(
    devtools: &mut browser::Devtools,
    done: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let deadline = std::time::Instant::now() + REPORT_WAIT;
    loop {
        let tiles = tiles_shown(devtools);
        if done(&tiles) || std::time::Instant::now() > deadline {
            return tiles;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The numbers of `video WxH T` or `img WxH`: the size and the time.
fn size_and_time(shown: &str) -> (String, f64) {
    let words: Vec<&str> = shown.split(' ').collect();
    let time = words.get(2).and_then(|t| t.parse().ok()).unwrap_or(-1.0);
    (words.get(1).unwrap_or(&"").to_string(), time)
}

const RTSP_USER: &str = "viewer";
const RTSP_PASSWORD: &str = "s3cret-pw";

/// A printer whose camera is the RTSP double on `port`; its id.
fn add_rtsp_camera(ts: &TestServer, port: u16) -> i64 {
    add_printer(
        ts,
        &doubles::rtsp_camera_json(RTSP_USER, RTSP_PASSWORD, port),
    )
}

/// Adds the printer `body` describes, with the token; its id.
fn add_printer(ts: &TestServer, body: &str) -> i64 {
    let r = support::request(
        ts.addr,
        "POST",
        "/printers",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &format!("Bearer {TOKEN}")),
        ],
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.json().get("id").and_then(|v| v.as_i64()).unwrap()
}

/// With the programs it needs: a server with a token, the demo camera and
/// an RTSP camera (the double, 640x360); the camera's id.
fn rtsp_camera_server() -> Option<(
    std::sync::MutexGuard<'static, ()>,
    doubles::RtspServer,
    TestServer,
    i64,
)> {
    if !doubles::require_gst_rtsp() || !have_chromium() {
        return None;
    }
    let serial = doubles::serial();
    let rtsp = doubles::RtspServer::start(RTSP_USER, RTSP_PASSWORD, 640, 360);
    let ts = token_server();
    let id = add_rtsp_camera(&ts, rtsp.port);
    Some((serial, rtsp, ts, id))
}

fn token_server() -> TestServer {
    TestServer::start_configured(
        Settings {
            token: Some(TOKEN.into()),
            ..test_settings()
        },
        Limits::default(),
    )
}

/// The wall plays an H.264 camera (the RTSP double) in a `<video>` and
/// keeps the demo camera an `<img>`, each labelled; the token rides along
/// in the video's URL. By itself the page plays HLS where the browser says
/// it can (Debian's Chromium 156 does), else `stream.mp4`; `video=mp4`
/// makes it `stream.mp4`.
#[test]
fn the_wall_plays_an_h264_camera_as_video_and_the_demo_as_pictures() {
    let Some((_serial, _rtsp, ts, id)) = rtsp_camera_server() else {
        return;
    };
    for asked in ["", "&video=mp4"] {
        let chromium = Chromium::open(&format!("http://{}/?token={TOKEN}{asked}", ts.addr));
        let mut devtools = chromium.devtools();
        let hls = asked.is_empty()
            && !devtools
                .eval(
                    "document.createElement('video').canPlayType('application/vnd.apple.mpegurl')",
                )
                .is_empty();
        let (label, path) = if hls {
            ("H.264 · HLS", "stream.m3u8")
        } else {
            ("H.264 · MP4", "stream.mp4")
        };
        let tiles = wall_playing(&mut devtools);
        assert_eq!(tiles[0].0, "MJPEG", "{tiles:?}");
        assert_eq!(tiles[1].0, label, "{tiles:?}");
        let src = devtools.eval("document.querySelector('video').currentSrc");
        let want = format!(
            "http://{}/printers/{id}/camera/{path}?token={TOKEN}",
            ts.addr
        );
        assert_eq!(src, want);
        if !hls {
            let mp4 = ts.cameras.mp4_status(id).unwrap().map(|s| s.viewers);
            assert_eq!(mp4, Some(1), "the video is not the MP4 stream's viewer");
        }
        // For a person to look at: BROWSER_SHOTS=dir keeps screenshots.
        if let Some(dir) = std::env::var_os("BROWSER_SHOTS") {
            for (w, h, mobile, name) in [(1280, 900, false, "desktop"), (390, 844, true, "phone")] {
                std::thread::sleep(Duration::from_millis(1500));
                let png = devtools.screenshot(w, h, mobile);
                let file = format!("wall-{}-{name}.png", if hls { "hls" } else { "mp4" });
                std::fs::write(std::path::Path::new(&dir).join(file), png).unwrap();
            }
        }
    }
}

/// The one-camera view of an H.264 camera plays its video too, labelled.
#[test]
fn the_view_of_an_h264_camera_plays_its_video() {
    let Some((_serial, _rtsp, ts, id)) = rtsp_camera_server() else {
        return;
    };
    let url = format!("http://{}/?camera={id}&token={TOKEN}&video=mp4", ts.addr);
    let chromium = Chromium::open(&url);
    let mut devtools = chromium.devtools();
    let seen = || {
        r#"(() => { const v = document.querySelector("video.view");
  return (v ? v.videoWidth + "x" + v.videoHeight + " " + v.currentTime.toFixed(2) : "no video") +
    " | " + (document.querySelector(".how") || {}).textContent; })()"#
    };
    let deadline = std::time::Instant::now() + REPORT_WAIT;
    let mut shown = devtools.eval(seen());
    let playing = |s: &str| s.starts_with("640x360 ") && s.ends_with(" | H.264 · MP4");
    while !playing(&shown) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        shown = devtools.eval(seen());
    }
    println!("the view: {shown}");
    assert!(shown.starts_with("640x360 "), "{shown}");
    assert!(shown.ends_with(" | H.264 · MP4"), "{shown}");
}

/// Waits for the wall of the demo camera and an H.264 one to show both,
/// checks the demo's picture and that the video's time goes on at the
/// camera's size, and returns the tiles.
fn wall_playing(devtools: &mut browser::Devtools) -> Vec<(String, String)> {
    let playing = |tiles: &[(String, String)]| {
        tiles.len() == 2
            && tiles[0].1.starts_with("img ")
            && tiles[0].1 != "img 0x0"
            && size_and_time(&tiles[1].1).1 > 0.5
    };
    let first = wait_for_tiles(devtools, playing);
    std::thread::sleep(Duration::from_millis(3000));
    let later = tiles_shown(devtools);
    println!("the wall: {first:?} then {later:?}");
    assert!(playing(&first), "{first:?}");
    assert!(first[1].1.starts_with("video "), "{first:?}");
    let (size, from) = size_and_time(&first[1].1);
    let (size_later, to) = size_and_time(&later[1].1);
    assert_eq!((size.as_str(), size_later.as_str()), ("640x360", "640x360"));
    assert!(
        to > from + 1.0,
        "currentTime did not advance: {from} → {to}"
    );
    first
}

/// An H.264 camera whose video cannot start (here: nothing listens where
/// its RTSP URL points, so `stream.mp4` and the playlist answer 503) gives
/// way to JPEG pictures, and its label says so and why, as HLS and as MP4.
#[test]
fn a_video_that_cannot_start_falls_back_to_pictures_and_says_why() {
    if !have_chromium() {
        return;
    }
    let ts = token_server();
    let id = add_rtsp_camera(&ts, programs::free_port());
    for asked in ["&video=hls", "&video=mp4"] {
        let chromium = Chromium::open(&format!("http://{}/?token={TOKEN}{asked}", ts.addr));
        let mut devtools = chromium.devtools();
        let fell_back = |tiles: &[(String, String)]| {
            tiles.len() == 2 && tiles[1].1.starts_with("img ") && tiles[1].0.contains("failed")
        };
        let tiles = wait_for_tiles(&mut devtools, fell_back);
        println!("the wall ({asked}): {tiles:?}");
        assert!(fell_back(&tiles), "{tiles:?}");
        assert!(
            tiles[1].0.starts_with("MJPEG · H.264 video failed ("),
            "{tiles:?}"
        );
        assert!(tiles[1].0.contains("Connection refused"), "{tiles:?}");
        assert!(!tiles[1].0.contains(RTSP_PASSWORD), "{tiles:?}");
        // The tile now renews its snapshot as JPEG tiles do.
        let asks =
            devtools.eval("document.querySelectorAll('.tile')[1].querySelector('img').dataset.id");
        assert_eq!(asks, id.to_string());
    }
}
