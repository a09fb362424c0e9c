//! What a real browser makes of printcam: Debian's headless Chromium on a
//! page from another loopback origin (a dashboard), talking to a server on
//! 127.0.0.1.

mod support;

#[path = "support/programs.rs"]
mod programs;

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
    let ts = TestServer::start_configured(
        Settings {
            token: Some(TOKEN.into()),
            ..test_settings()
        },
        Limits::default(),
    );
    for i in 1..10 {
        let body = format!(
            r#"{{"name":"Printer {i}","camera_type":"snapshot","camera_url":"{}"}}"#,
            camera.url("/snap.jpg")
        );
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
