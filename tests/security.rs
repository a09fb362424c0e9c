//! Access control, CORS, viewer limits, stalled viewers and secrets in logs,
//! against a real server on loopback.

mod support;

#[path = "support/served.rs"]
mod served;

use printcam::config::Settings;
use printcam::http::Limits;
use served::Served;
use std::io::{BufReader, Read};
use std::net::IpAddr;
use std::thread;
use std::time::{Duration, Instant};
use support::{connect, read_head, request, test_settings, HttpResponse, MjpegReader, TestServer};

const TOKEN: &str = "tok-SECRET-4711";
const CAMERA: &str =
    r#"{"name":"door","camera_type":"mjpeg","camera_url":"http://127.0.0.1:9/stream"}"#;

fn server(settings: Settings) -> TestServer {
    TestServer::start_configured(settings, Limits::default())
}

fn with_token() -> Settings {
    Settings {
        token: Some(TOKEN.into()),
        ..test_settings()
    }
}

/// No address counts as local, so this test's 127.0.0.1 client is "remote".
fn everyone_remote(s: Settings) -> Settings {
    Settings {
        local_clients: Some(Vec::new()),
        ..s
    }
}

fn get(ts: &TestServer, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    request(ts.addr, "GET", path, headers, None)
}

fn send(ts: &TestServer, method: &str, path: &str, body: &str, auth: Option<&str>) -> HttpResponse {
    let bearer = auth.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(b) = &bearer {
        headers.push(("Authorization", b.as_str()));
    }
    request(ts.addr, method, path, &headers, Some(body.as_bytes()))
}

fn wait_until(what: &str, bound: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {bound:?}");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_token_is_required_everywhere_but_healthz() {
    let ts = server(with_token());
    for path in [
        "/printers",
        "/api/v1/printers/0/camera/snapshot",
        "/",
        "/nope",
    ] {
        let r = get(&ts, path, &[]);
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(r.header("WWW-Authenticate"), Some("Bearer"));
        assert!(r.detail().contains("token"), "{}", r.text());
    }
    let stream = MjpegReader::open(ts.addr, "/printers/0/camera/stream");
    assert_eq!(stream.status, 401);

    let wrong = get(&ts, "/printers?token=tok-SECRET-4712", &[]);
    assert_eq!(wrong.status, 401);
    assert!(!wrong.text().contains("4712"), "{}", wrong.text());
    let wrong = get(&ts, "/printers", &[("Authorization", "Bearer nope")]);
    assert_eq!(wrong.status, 401);
    let short = get(&ts, "/printers?token=tok", &[]);
    assert_eq!(short.status, 401);

    assert_eq!(
        get(&ts, &format!("/printers?token={TOKEN}"), &[]).status,
        200
    );
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        get(&ts, "/printers", &[("Authorization", &bearer)]).status,
        200
    );
    let snap = get(
        &ts,
        &format!("/printers/0/camera/snapshot?token={TOKEN}"),
        &[],
    );
    assert_eq!(snap.status, 200);
    let mut stream = MjpegReader::open(
        ts.addr,
        &format!("/printers/0/camera/stream?fps=5&token={TOKEN}"),
    );
    assert_eq!(stream.status, 200);
    assert!(support::is_jpeg(&stream.next_part().unwrap()));

    // The page's pictures and links carry the token it was opened with.
    let page = get(&ts, &format!("/?token={TOKEN}"), &[]);
    assert_eq!(page.status, 200);
    assert_eq!(page.header("Referrer-Policy"), Some("no-referrer"));
    let img = format!("/printers/0/camera/snapshot?token={TOKEN}");
    assert!(page.text().contains(&img), "{}", page.text());
    let view = get(&ts, &format!("/?camera=0&token={TOKEN}"), &[]);
    let stream = format!("/printers/0/camera/stream?fps=15&amp;token={TOKEN}");
    assert!(view.text().contains(&stream), "{}", view.text());
    // The page's script is static code and loads without the token.
    assert_eq!(get(&ts, "/page.js", &[]).status, 200);
    let plain = get(&ts, "/", &[("Authorization", &bearer)]);
    assert!(!plain.text().contains(TOKEN));

    let health = get(&ts, "/healthz", &[]);
    assert_eq!((health.status, health.text().contains("ok")), (200, true));
    assert_eq!(get(&ts, "/api/v1/healthz", &[]).status, 200);
}

#[test]
fn without_a_token_only_local_clients_may_change_things() {
    let ts = server(everyone_remote(test_settings()));
    let refused = [
        ("POST", "/printers", CAMERA),
        ("PATCH", "/printers/1", r#"{"name":"x"}"#),
        ("PUT", "/printers/1", r#"{"name":"x"}"#),
        ("DELETE", "/printers/1", ""),
        ("POST", "/printers/1/forget-cert", ""),
        ("POST", "/printers/0/camera/stop", ""),
        ("GET", "/api/v1/printers/0/camera/stop", ""),
    ];
    for (method, path, body) in refused {
        let r = send(&ts, method, path, body, None);
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
        let detail = r.detail();
        assert!(
            detail.contains("--token") && detail.contains("PRINTCAM_TOKEN"),
            "{detail}"
        );
    }
    // Reading stays open.
    assert_eq!(get(&ts, "/printers", &[]).status, 200);
    assert_eq!(get(&ts, "/printers/0/camera/snapshot", &[]).status, 200);
    assert_eq!(get(&ts, "/printers/0/camera/status", &[]).status, 200);
}

/// A page in a browser on this box, or a rebinding name pointing at
/// 127.0.0.1, must not change printers: without a token, a change needs a
/// Host that is this machine and no Origin of another page.
#[test]
fn without_a_token_changes_from_web_pages_are_refused() {
    let dashboard = "http://dash.lan:8123";
    let ts = server(Settings {
        cors_origin: Some(dashboard.into()),
        allowed_hosts: vec!["printcam.lan".into()],
        ..test_settings()
    });
    let own = ts.addr.to_string();
    let own_origin = format!("http://{own}");
    let change = |headers: &[(&str, &str)]| {
        let mut all = vec![("Content-Type", "application/json")];
        all.extend_from_slice(headers);
        request(ts.addr, "POST", "/printers", &all, Some(CAMERA.as_bytes())).status
    };
    let stop = |headers: &[(&str, &str)]| get(&ts, "/printers/0/camera/stop", headers).status;
    // Refused: a rebinding name, another page's origin, a cross-site <img>.
    assert_eq!(change(&[("Host", "rebind.attacker.example:8080")]), 403);
    assert_eq!(stop(&[("Host", "rebind.attacker.example")]), 403);
    assert_eq!(change(&[("Origin", "http://evil.example")]), 403);
    assert_eq!(change(&[("Origin", "null")]), 403);
    assert_eq!(stop(&[("Sec-Fetch-Site", "cross-site")]), 403);
    let r = request(
        ts.addr,
        "DELETE",
        "/printers/1",
        &[("Host", "evil.example")],
        None,
    );
    assert!(r.detail().contains("--allow-host"), "{}", r.text());
    // Accepted: this machine by address, localhost, an allowed name, the
    // page's own origin, the CORS origin, a typed-in URL.
    assert_eq!(change(&[]), 201);
    assert_eq!(change(&[("Host", "localhost:8080")]), 201);
    assert_eq!(change(&[("Host", "printcam.lan:8080")]), 201);
    assert_eq!(change(&[("Origin", own_origin.as_str())]), 201);
    assert_eq!(change(&[("Origin", dashboard)]), 201);
    assert_eq!(stop(&[("Sec-Fetch-Site", "none")]), 200);
    // Reads stay open to any page (a token is what protects them).
    assert_eq!(
        get(&ts, "/printers", &[("Host", "rebind.attacker.example")]).status,
        200
    );
}

#[test]
fn local_clients_may_change_things_without_a_token() {
    for local in [None, Some(vec![IpAddr::from([127, 0, 0, 1])])] {
        let ts = server(Settings {
            local_clients: local,
            ..test_settings()
        });
        let r = send(&ts, "POST", "/printers", CAMERA, None);
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(
            send(&ts, "PATCH", "/printers/1", r#"{"name":"y"}"#, None).status,
            200
        );
        assert_eq!(get(&ts, "/printers/0/camera/stop", &[]).status, 200);
        assert_eq!(send(&ts, "DELETE", "/printers/1", "", None).status, 200);
    }
}

#[test]
fn with_a_token_remote_clients_may_change_things() {
    let ts = server(everyone_remote(with_token()));
    assert_eq!(send(&ts, "POST", "/printers", CAMERA, None).status, 401);
    let r = send(&ts, "POST", "/printers", CAMERA, Some(TOKEN));
    assert_eq!(r.status, 201, "{}", r.text());
    let stop = send(
        &ts,
        "POST",
        &format!("/printers/0/camera/stop?token={TOKEN}"),
        "",
        None,
    );
    assert_eq!(stop.status, 200, "{}", stop.text());
    assert_eq!(
        send(&ts, "DELETE", "/printers/1", "", Some(TOKEN)).status,
        200
    );
}

#[test]
fn cors_header_only_when_configured() {
    let plain = server(test_settings());
    let r = get(&plain, "/printers", &[("Origin", "https://evil.example")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Access-Control-Allow-Origin"), None);
    let stream = MjpegReader::open(plain.addr, "/printers/0/camera/stream");
    assert_eq!(stream.header("Access-Control-Allow-Origin"), None);
    drop(stream);
    assert_eq!(
        request(plain.addr, "OPTIONS", "/printers", &[], None).status,
        405
    );

    let origin = "https://ha.lan:8123";
    let ts = server(Settings {
        cors_origin: Some(origin.into()),
        ..with_token()
    });
    let ok = get(&ts, &format!("/printers?token={TOKEN}"), &[]);
    assert_eq!(ok.header("Access-Control-Allow-Origin"), Some(origin));
    let denied = get(&ts, "/printers", &[]);
    assert_eq!(denied.status, 401);
    assert_eq!(denied.header("Access-Control-Allow-Origin"), Some(origin));
    let stream = MjpegReader::open(ts.addr, &format!("/printers/0/camera/stream?token={TOKEN}"));
    assert_eq!(stream.status, 200);
    assert_eq!(stream.header("Access-Control-Allow-Origin"), Some(origin));
    drop(stream);
    // A preflight carries no credentials and must still be answered.
    let pre = request(ts.addr, "OPTIONS", "/printers", &[("Origin", origin)], None);
    assert_eq!(pre.status, 204);
    assert_eq!(pre.header("Access-Control-Allow-Origin"), Some(origin));
    // Browsers refuse a doubled Allow-Origin; each header comes once.
    for name in ["Access-Control-Allow-Origin", "Vary"] {
        let n = pre
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .count();
        assert_eq!(n, 1, "{name} in {:?}", pre.headers);
    }
    assert!(pre
        .header("Access-Control-Allow-Headers")
        .is_some_and(|h| h.contains("Authorization")));
}

fn viewers_of(ts: &TestServer, id: i64) -> usize {
    ts.cameras.status(id).unwrap().map_or(0, |s| s.viewers)
}

#[test]
fn viewers_beyond_the_limits_get_503_until_one_leaves() {
    let ts = server(Settings {
        max_viewers: 2,
        max_viewers_per_camera: 1,
        ..test_settings()
    });
    assert_eq!(send(&ts, "POST", "/printers", CAMERA, None).status, 201);
    let path = "/printers/0/camera/stream?fps=10";
    let mut first = MjpegReader::open(ts.addr, path);
    assert_eq!(first.status, 200);
    assert!(support::is_jpeg(&first.next_part().unwrap()));

    let mut second = MjpegReader::open(ts.addr, path);
    assert_eq!(second.status, 503);
    let body = second.read_to_end().unwrap();
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("\"detail\"") && text.contains("viewers"),
        "{text}"
    );

    // The overall limit: camera 1 is admitted (it never connects: port 9),
    // and then nothing more anywhere.
    let other = MjpegReader::open(ts.addr, "/printers/1/camera/stream");
    assert_eq!(other.status, 200);
    let third = MjpegReader::open(ts.addr, "/printers/1/camera/stream");
    assert_eq!(third.status, 503);
    drop(other);

    drop(first);
    wait_until(
        "a place after the viewer left",
        Duration::from_secs(20),
        || {
            let mut again = MjpegReader::open(ts.addr, path);
            again.status == 200 && again.next_part().is_ok()
        },
    );
}

#[test]
fn a_viewer_that_never_reads_is_dropped_after_the_write_timeout() {
    let limits = Limits {
        write_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let ts = TestServer::start_configured(
        Settings {
            max_viewers_per_camera: 1,
            ..test_settings()
        },
        limits,
    );
    let mut stalled = connect(ts.addr);
    std::io::Write::write_all(
        &mut stalled,
        b"GET /printers/0/camera/stream?fps=30 HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    let mut head = BufReader::new(stalled.try_clone().unwrap());
    assert_eq!(read_head(&mut head).unwrap().0, 200);
    wait_until("the viewer is counted", Duration::from_secs(10), || {
        viewers_of(&ts, 0) == 1
    });
    // Never read again: the socket buffers fill, a write blocks past the
    // timeout and the server lets the viewer go. Loopback buffers hold a
    // few MB, ~10 s of demo frames at 30 fps; the bound is generous.
    wait_until(
        "the stalled viewer is dropped",
        Duration::from_secs(120),
        || viewers_of(&ts, 0) == 0,
    );
    let mut next = MjpegReader::open(ts.addr, "/printers/0/camera/stream");
    assert_eq!(
        next.status, 200,
        "the stalled viewer's place was not given back"
    );
    assert!(next.next_part().is_ok());
    drop(head);
    drop(stalled);
}

// ------------------------------------------------------------ secrets in logs

#[test]
fn trace_logs_never_show_the_token_or_an_access_code() {
    const CODE: &str = "ACC0DE77";
    let served = Served::start(
        &["--demo"],
        &[("PRINTCAM_TOKEN", TOKEN), ("RUST_LOG", "trace")],
    );
    let addr = served.addr;
    let bearer = format!("Bearer {TOKEN}");
    let auth = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    let body =
        format!(r#"{{"name":"p","ip":"192.168.1.50","access_code":"{CODE}","model":"P1S"}}"#);
    let created = request(addr, "POST", "/printers", &auth, Some(body.as_bytes()));
    assert_eq!(created.status, 201, "{}", created.text());
    assert!(!created.text().contains(CODE));
    let patch = format!(r#"{{"access_code":"{CODE}9"}}"#);
    assert_eq!(
        request(addr, "PATCH", "/printers/1", &auth, Some(patch.as_bytes())).status,
        200
    );
    let snap = request(
        addr,
        "GET",
        &format!("/printers/0/camera/snapshot?token={TOKEN}"),
        &[],
        None,
    );
    assert_eq!(snap.status, 200);
    let wrong = request(addr, "GET", &format!("/printers?token={TOKEN}x"), &[], None);
    assert_eq!(wrong.status, 401);
    let bad = request(
        addr,
        "GET",
        &format!("/printers/0/camera/stream?fps=zz&token={TOKEN}"),
        &[],
        None,
    );
    assert_eq!(bad.status, 400);
    assert!(!bad.text().contains(TOKEN));
    let mut stream = connect(addr);
    std::io::Write::write_all(
        &mut stream,
        format!("GET /printers/0/camera/stream?token={TOKEN} HTTP/1.1\r\nHost: t\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut first = [0u8; 64];
    assert!(stream.read(&mut first).unwrap() > 0);
    drop(stream);

    let log = served.stop();
    assert!(log.contains("GET /printers/0/camera/snapshot 200"), "{log}");
    assert!(!log.contains("SECRET"), "the token was logged:\n{log}");
    assert!(!log.contains(CODE), "an access code was logged:\n{log}");
}

// ------------------------------------------------------- addresses and URLs

fn strict() -> Settings {
    Settings {
        allow_loopback: false,
        ..test_settings()
    }
}

fn printer_body(ip: &str) -> String {
    let ip = printcam::json::Value::from(ip).to_json();
    format!(r#"{{"name":"p","ip":{ip},"access_code":"12345678"}}"#)
}

#[test]
fn printer_addresses_are_judged_as_camera_urls_are() {
    let ts = server(strict());
    for ip in [
        "localhost",
        "127.0.0.1",
        "2130706433",
        "::1",
        "169.254.169.254",
    ] {
        let r = send(&ts, "POST", "/printers", &printer_body(ip), None);
        assert_eq!(r.status, 400, "{ip}: {}", r.text());
        assert!(
            r.detail().contains("printer address refused"),
            "{}",
            r.text()
        );
    }
    // Spaces and control characters inside the address.
    for ip in [
        "cam lan",
        "cam\tlan",
        "192.168.1.5\u{7}",
        "192.168.1.5\u{0}x",
    ] {
        let r = send(&ts, "POST", "/printers", &printer_body(ip), None);
        assert_eq!(r.status, 400, "{ip:?}: {}", r.text());
        assert!(r.detail().contains("ip must be"), "{}", r.text());
    }
    let ok = send(
        &ts,
        "POST",
        "/printers",
        &printer_body("192.168.1.50"),
        None,
    );
    assert_eq!(ok.status, 201, "{}", ok.text());
    assert!(ok.json().get("warnings").is_none(), "{}", ok.text());
}

#[test]
fn a_name_that_does_not_resolve_is_saved_with_a_warning() {
    let ts = server(strict());
    // RFC 6761: .invalid never resolves, like a LAN name this box's
    // resolver does not know yet.
    let body = r#"{"name":"door","camera_type":"mjpeg","camera_url":"http://admin:s3cretpw@cam.invalid:8081/?action=stream"}"#;
    let r = send(&ts, "POST", "/printers", body, None);
    assert_eq!(r.status, 201, "{}", r.text());
    let warnings = r.json().get("warnings").cloned().expect("warnings");
    let text = warnings.to_json();
    assert!(text.contains("cam.invalid"), "{text}");
    assert!(!text.contains("s3cretpw"), "{text}");

    let r = send(
        &ts,
        "POST",
        "/printers",
        &printer_body("printer.invalid"),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(r.json().get("warnings").is_some(), "{}", r.text());
    let id = r.json().get("id").and_then(|v| v.as_i64()).unwrap();
    let patch = r#"{"ip":"printer2.invalid","access_code":"12345678"}"#;
    let r = send(&ts, "PATCH", &format!("/printers/{id}"), patch, None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json().get("warnings").is_some(), "{}", r.text());

    // A name that resolves to a forbidden address is still refused.
    let body = r#"{"name":"d","camera_type":"mjpeg","camera_url":"http://localhost:8081/"}"#;
    assert_eq!(send(&ts, "POST", "/printers", body, None).status, 400);
}

#[test]
fn moving_a_printer_needs_its_access_code_in_the_same_change() {
    let ts = server(test_settings());
    let r = send(
        &ts,
        "POST",
        "/printers",
        &printer_body("192.168.1.50"),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json().get("id").and_then(|v| v.as_i64()).unwrap();
    let path = format!("/printers/{id}");
    for patch in [r#"{"ip":"192.168.1.51"}"#, r#"{"camera_port":6001}"#] {
        let r = send(&ts, "PATCH", &path, patch, None);
        assert_eq!(r.status, 400, "{patch}: {}", r.text());
        assert!(r.detail().contains("access_code"), "{}", r.text());
    }
    let r = send(&ts, "GET", &path, "", None);
    assert_eq!(
        r.json().get("ip").and_then(|v| v.as_str()),
        Some("192.168.1.50")
    );
    let patch = r#"{"ip":"192.168.1.51","access_code":"87654321"}"#;
    let r = send(&ts, "PATCH", &path, patch, None);
    assert_eq!(r.status, 200, "{}", r.text());
    // Other fields change without it.
    assert_eq!(
        send(&ts, "PATCH", &path, r#"{"name":"q"}"#, None).status,
        200
    );
}

#[test]
fn secrets_in_camera_urls_are_masked_in_the_api() {
    let ts = server(test_settings());
    for (url, secret) in [
        (
            "http://10.0.0.9/video.cgi?user=admin&pwd=Hunter2pw",
            "Hunter2pw",
        ),
        ("http://APIKEY123456@10.0.0.9/stream", "APIKEY123456"),
        ("http://10.0.0.9/s?token=T0kenVal&x=1", "T0kenVal"),
        ("rtsp://10.0.0.9/live?sig=S1gnature", "S1gnature"),
    ] {
        let kind = if url.starts_with("rtsp") {
            "rtsp"
        } else {
            "mjpeg"
        };
        let body = format!(r#"{{"name":"c","camera_type":"{kind}","camera_url":"{url}"}}"#);
        let r = send(&ts, "POST", "/printers", &body, None);
        assert_eq!(r.status, 201, "{}", r.text());
        assert!(!r.text().contains(secret), "{}", r.text());
    }
    let list = get(&ts, "/printers", &[]);
    assert_eq!(list.status, 200);
    for secret in ["Hunter2pw", "APIKEY123456", "T0kenVal", "S1gnature"] {
        assert!(!list.text().contains(secret), "{}", list.text());
    }
    assert!(list.text().contains("pwd=****"), "{}", list.text());
}

#[test]
fn a_short_token_is_warned_about_at_start() {
    let short = Served::start(&["--demo"], &[("PRINTCAM_TOKEN", "short-tok")]);
    let log = short.stop();
    assert!(log.contains("shorter than 16 characters"), "{log}");
    assert!(!log.contains("short-tok"), "the token was logged:\n{log}");
    let long = Served::start(
        &["--demo"],
        &[("PRINTCAM_TOKEN", "a-long-enough-token-4711")],
    );
    let log = long.stop();
    assert!(!log.contains("shorter than"), "{log}");
}
