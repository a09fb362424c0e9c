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
use support::{test_settings, TestServer};

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
