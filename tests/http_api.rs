//! The HTTP API end to end: a real server on loopback, a raw HTTP client.

mod support;

use printcam::http::Limits;
use printcam::json::Value;
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use support::{is_jpeg, MjpegReader, TestServer};

const PREFIXES: [&str; 2] = ["", "/api/v1"];
const CAMERA_ROUTES: [&str; 5] = ["stream", "snapshot", "test", "status", "stop"];
const SECRET: &str = "S3CRETAC";

fn create(srv: &TestServer, body: &str) -> Value {
    let r = srv.send_json("POST", "/printers", body);
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()
}

fn id_of(v: &Value) -> i64 {
    v.get("id").and_then(Value::as_i64).expect("id")
}

#[test]
fn unknown_printer_is_404_json_on_every_camera_route() {
    let srv = TestServer::start();
    for prefix in PREFIXES {
        for action in CAMERA_ROUTES {
            let r = srv.get(&format!("{prefix}/printers/4242/camera/{action}"));
            assert_eq!(r.status, 404, "{action}: {}", r.text());
            assert_eq!(r.detail(), "Printer not found");
        }
        let r = support::request(
            srv.addr,
            "POST",
            &format!("{prefix}/printers/4242/camera/stop"),
            &[],
            None,
        );
        assert_eq!(r.status, 404);
        assert_eq!(r.detail(), "Printer not found");
        assert_eq!(
            srv.get(&format!("{prefix}/printers/4242")).detail(),
            "Printer not found"
        );
    }
}

#[test]
fn printer_crud_round_trip_never_shows_the_access_code() {
    let srv = TestServer::start();
    let mut bodies = Vec::new();
    let body = format!(
        r#"{{"name":"Garage P1S","ip":"192.168.1.50","access_code":"{SECRET}","model":"P1S","serial":"01P00A000000001"}}"#
    );
    let r = srv.send_json("POST", "/api/v1/printers", &body);
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    let location = format!("/printers/{}", id_of(&created));
    assert_eq!(r.header("Location"), Some(location.as_str()));
    bodies.push(created.to_json());
    let id = id_of(&created);
    assert!(id >= 1);
    assert_eq!(created.get("has_access_code"), Some(&Value::Bool(true)));
    assert_eq!(created.get("cert_pinned"), Some(&Value::Bool(false)));
    let camera = created.get("camera").unwrap();
    assert_eq!(camera.get("kind").and_then(Value::as_str), Some("chamber"));
    // The built-in camera is served; there is no external one to switch on.
    assert_eq!(camera.get("enabled"), Some(&Value::Bool(true)));
    assert_eq!(camera.get("external_enabled"), Some(&Value::Bool(false)));

    for prefix in PREFIXES {
        let list = srv.get(&format!("{prefix}/printers"));
        assert_eq!(list.status, 200);
        bodies.push(list.text());
        let all = list.json();
        let ids: Vec<i64> = all.as_array().unwrap().iter().map(id_of).collect();
        assert_eq!(ids, vec![0, id], "the demo camera first, then ours");
        let one = srv.get(&format!("{prefix}/printers/{id}"));
        assert_eq!(one.status, 200);
        bodies.push(one.text());
        assert_eq!(one.json(), created);
    }

    let patched = srv.send_json(
        "PATCH",
        &format!("/printers/{id}"),
        r#"{"name":"Attic","model":null,"camera_url":"http://cam:pw9876@192.168.1.60/video","camera_type":"mjpeg"}"#,
    );
    assert_eq!(patched.status, 200, "{}", patched.text());
    bodies.push(patched.text());
    let p = patched.json();
    assert_eq!(p.get("name").and_then(Value::as_str), Some("Attic"));
    assert_eq!(p.get("model"), Some(&Value::Null));
    assert_eq!(
        p.get("serial").and_then(Value::as_str),
        Some("01P00A000000001")
    );
    let camera = p.get("camera").unwrap();
    assert_eq!(camera.get("kind").and_then(Value::as_str), Some("mjpeg"));
    assert_eq!(camera.get("enabled"), Some(&Value::Bool(true)));
    let url = camera.get("url").and_then(Value::as_str).unwrap();
    assert!(
        !url.contains("pw9876") && url.contains("192.168.1.60"),
        "{url}"
    );

    let put = srv.send_json(
        "PUT",
        &format!("/api/v1/printers/{id}"),
        r#"{"camera_enabled":false}"#,
    );
    assert_eq!(put.status, 200, "{}", put.text());
    bodies.push(put.text());
    let forget = support::request(
        srv.addr,
        "POST",
        &format!("/printers/{id}/forget-cert"),
        &[],
        None,
    );
    assert_eq!(forget.status, 200, "{}", forget.text());
    bodies.push(forget.text());

    let del = support::request(srv.addr, "DELETE", &format!("/printers/{id}"), &[], None);
    assert_eq!(del.status, 200);
    assert_eq!(del.json().get("deleted").and_then(Value::as_i64), Some(id));
    assert_eq!(srv.get(&format!("/printers/{id}")).status, 404);
    let again = support::request(srv.addr, "DELETE", &format!("/printers/{id}"), &[], None);
    assert_eq!(again.status, 404);

    for b in &bodies {
        assert!(!b.contains(SECRET), "access code leaked: {b}");
        assert!(!b.contains("pw9876"), "URL password leaked: {b}");
    }
}

/// Without the public CA certificates an https camera is refused when it is
/// saved, not only when it is first watched; with them it is accepted.
#[test]
fn https_cameras_are_refused_at_once_by_a_build_without_webpki_roots() {
    let srv = TestServer::start();
    let body = r#"{"name":"a","camera_url":"https://10.0.0.1/video","camera_type":"mjpeg"}"#;
    let r = srv.send_json("POST", "/printers", body);
    if cfg!(feature = "webpki-roots") {
        assert_eq!(r.status, 201, "{}", r.text());
    } else {
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(r.detail().contains("`webpki-roots`"), "{:?}", r.detail());
    }
}

#[test]
fn validation_errors_are_400_json_saying_what_is_wrong() {
    let srv = TestServer::start();
    let cases: &[(&str, &str, &str)] = &[
        ("POST", r#"{"ip":"192.168.1.5"}"#, "name"),
        ("POST", r#"{"name":"a","nmae":"b"}"#, "nmae"),
        (
            "POST",
            r#"{"name":"a","camera_type":"webcam","camera_url":"http://10.0.0.1/"}"#,
            "webcam",
        ),
        ("POST", r#"{"name":"a","ip":"192.168.1.5"}"#, "access code"),
        ("POST", r#"{"name":"a","camera_port":"322"}"#, "camera_port"),
        (
            "POST",
            r#"{"name":"a","camera_url":"ftp://10.0.0.1/x","camera_type":"mjpeg"}"#,
            "camera url",
        ),
        ("POST", r#"{"name":"a""#, "not valid JSON"),
        ("POST", r#"["name"]"#, "object"),
        ("POST", "", "empty"),
        ("PATCH", r#"{"name":"x"}"#, "demo"),
    ];
    for (method, body, want) in cases {
        let path = if *method == "POST" {
            "/printers"
        } else {
            "/printers/0"
        };
        let r = srv.send_json(method, path, body);
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        let detail = r.detail();
        assert!(
            detail.contains(want),
            "{body}: {detail:?} should mention {want:?}"
        );
    }
    let r = support::request(
        srv.addr,
        "POST",
        "/printers",
        &[("Content-Type", "text/plain")],
        Some(br#"{"name":"a"}"#),
    );
    assert_eq!(r.status, 400);
    assert!(r.detail().contains("application/json"), "{}", r.text());
    let r = support::request(srv.addr, "POST", "/printers", &[], Some(br#"{"name":"a"}"#));
    assert_eq!(r.status, 400);
    assert!(r.detail().contains("application/json"));
    let r = srv.send_json("PATCH", "/printers/77", r#"{"name":"x"}"#);
    assert_eq!(r.status, 404);
}

#[test]
fn the_rtsp_client_is_stored_shown_reset_and_checked() {
    let srv = TestServer::start();
    let client = |v: &Value| {
        v.get("rtsp_client")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let created = create(
        &srv,
        r#"{"name":"door","camera_url":"rtsp://10.0.0.9:8554/s","camera_type":"rtsp",
            "rtsp_client":"native"}"#,
    );
    let id = id_of(&created);
    assert_eq!(client(&created).as_deref(), Some("native"));
    assert!(created.get("warnings").is_none(), "{created:?}");
    let path = format!("/printers/{id}");
    let r = srv.send_json("PATCH", &path, r#"{"rtsp_client":"ffmpeg"}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(client(&srv.get(&path).json()).as_deref(), Some("ffmpeg"));
    let r = srv.send_json("PATCH", &path, r#"{"rtsp_client":"vlc"}"#);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.detail(),
        r#"rtsp_client must be auto, native or ffmpeg, not "vlc""#
    );
    let r = srv.send_json("PATCH", &path, r#"{"rtsp_client":null}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(client(&srv.get(&path).json()).as_deref(), Some("auto"));

    // Where no RTSP client reads the camera: saved, with a warning.
    let r = srv.send_json(
        "POST",
        "/printers",
        r#"{"name":"shelf","camera_url":"http://10.0.0.9/snap.jpg",
            "camera_type":"snapshot","rtsp_client":"ffmpeg"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    assert_eq!(client(&v).as_deref(), Some("ffmpeg"));
    let warnings = v.get("warnings").map(Value::to_json).unwrap_or_default();
    assert!(
        warnings.contains("rtsp_client ffmpeg has no effect on an external snapshot camera"),
        "{warnings}"
    );
}

#[test]
fn bad_ids_and_parameters_are_400_json() {
    let srv = TestServer::start();
    for path in [
        "/printers/abc",
        "/printers/1.5/camera/test",
        "/api/v1/printers/99999999999999999999/camera/stream",
        "/printers/0/camera/stream?fps=abc",
        "/printers/0/camera/stream?fps=1.5",
    ] {
        let r = srv.get(path);
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(!r.detail().is_empty());
    }
    // A whole number outside 1–30, negative too, is clamped, not refused;
    // a well-formed id of no printer is 404.
    let mut slow = MjpegReader::open(srv.addr, "/printers/0/camera/stream?fps=-1");
    assert_eq!(slow.status, 200);
    assert!(is_jpeg(&slow.next_part().unwrap()));
    assert_eq!(srv.get("/printers/-1").detail(), "Printer not found");
}

#[test]
fn unknown_routes_are_404_and_wrong_methods_405() {
    let srv = TestServer::start();
    for path in [
        "/nope",
        "/printers/1/camera/nope",
        "/api/v2/printers",
        "/printers/1/camera",
    ] {
        let r = srv.get(path);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.detail(), "Not found");
    }
    let r = support::request(srv.addr, "DELETE", "/printers", &[], None);
    assert_eq!(r.status, 405);
    assert!(r.header("Allow").unwrap().contains("POST"));
    assert!(r.detail().contains("GET"));
    let r = support::request(
        srv.addr,
        "POST",
        "/api/v1/printers/0/camera/snapshot",
        &[],
        None,
    );
    assert_eq!(r.status, 405);
    let r = support::request(srv.addr, "PATCH", "/healthz", &[], None);
    assert_eq!(r.status, 405);
}

#[test]
fn a_body_over_the_limit_is_413() {
    let srv = TestServer::start();
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(70 * 1024));
    let r = srv.send_json("POST", "/printers", &big);
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.detail().contains("larger"));
}

#[test]
fn unfit_requests_get_json_errors_before_routing() {
    let srv = TestServer::start();
    let chunked = support::request(
        srv.addr,
        "POST",
        "/printers",
        &[
            ("Content-Type", "application/json"),
            ("Transfer-Encoding", "chunked"),
        ],
        None,
    );
    assert_eq!(chunked.status, 411, "{}", chunked.text());
    assert!(chunked.detail().contains("Content-Length"));
    let long_target = format!("/printers?x={}", "a".repeat(9 * 1024));
    let r = srv.get(&long_target);
    assert_eq!((r.status, r.header("Connection")), (414, Some("close")));
    let big = "b".repeat(40 * 1024);
    let r = support::request(srv.addr, "GET", "/healthz", &[("X-Big", &big)], None);
    assert_eq!(r.status, 431);
    assert!(r.detail().contains("head"));
    assert_eq!(srv.get("/healthz").status, 200, "the server carries on");
}

#[test]
fn health_answers_ok() {
    let srv = TestServer::start();
    for path in ["/healthz", "/api/v1/healthz"] {
        let r = srv.get(path);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.json().get("status").and_then(Value::as_str), Some("ok"));
    }
}

#[test]
fn stop_without_viewers_stops_none_and_status_is_idle() {
    let srv = TestServer::start();
    let id = id_of(&create(&srv, r#"{"name":"No camera yet"}"#));
    for path in [
        "/printers/0/camera/stop".to_string(),
        format!("/api/v1/printers/{id}/camera/stop"),
    ] {
        let r = srv.get(&path);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json().get("stopped").and_then(Value::as_i64), Some(0));
        let r = support::request(srv.addr, "POST", &path, &[], None);
        assert_eq!(r.json().get("stopped").and_then(Value::as_i64), Some(0));
    }
    let status = srv.get(&format!("/printers/{id}/camera/status")).json();
    assert_eq!(status.get("state").and_then(Value::as_str), Some("idle"));
    assert_eq!(status.get("viewers").and_then(Value::as_i64), Some(0));
    assert_eq!(status.get("frames_in").and_then(Value::as_i64), Some(0));
    assert_eq!(status.get("last_frame_age_ms"), Some(&Value::Null));
    assert_eq!(
        status
            .get("viewer_list")
            .and_then(Value::as_array)
            .map(<[Value]>::len),
        Some(0)
    );
}

#[test]
fn a_printer_without_camera_answers_503_json_before_streaming() {
    let srv = TestServer::start();
    let id = id_of(&create(&srv, r#"{"name":"Bare"}"#));
    for action in ["stream", "snapshot"] {
        let r = srv.get(&format!("/printers/{id}/camera/{action}"));
        assert_eq!(r.status, 503, "{action}: {}", r.text());
        assert!(r.detail().contains("no camera"));
    }
    let r = srv.get(&format!("/printers/{id}/camera/test")).json();
    assert_eq!(r.get("success"), Some(&Value::Bool(false)));
    assert!(r.get("error").and_then(Value::as_str).is_some());
}

#[test]
fn the_page_escapes_printer_names() {
    let srv = TestServer::start();
    create(&srv, r#"{"name":"<script>alert(1)</script>"}"#);
    let r = srv.get("/");
    assert_eq!(r.status, 200);
    assert!(r.header("Content-Type").unwrap().starts_with("text/html"));
    let html = r.text();
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    // The wall shows snapshots; a tile opens the camera's full-rate view.
    assert!(html.contains("/printers/0/camera/snapshot"), "{html}");
    assert!(html.contains("href=\"/?camera=0\""), "{html}");
    let view = srv.get("/?camera=0").text();
    assert!(view.contains("/printers/0/camera/stream"), "{view}");
    assert_eq!(srv.get("/?camera=99").status, 404);
    assert_eq!(srv.get("/?camera=x").status, 400);
}

#[test]
fn saving_a_camera_host_name_fits_the_request_thread_stack() {
    // Resolving a name runs glibc's resolver inside the request thread.
    let srv = TestServer::start();
    let r = srv.send_json(
        "POST",
        "/printers",
        r#"{"name":"cam","camera_url":"http://localhost:9/video","camera_type":"mjpeg"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(srv.get("/healthz").status, 200, "the server survived");
}

#[test]
fn shutdown_returns_promptly_with_an_open_stream() {
    let srv = TestServer::start();
    let mut viewer = MjpegReader::open(srv.addr, "/printers/0/camera/stream?fps=2");
    let started = Instant::now();
    srv.server.shutdown();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "shutdown took {took:?}");
    if viewer.status == 200 {
        // The stream ends with the closing delimiter, then the connection closes.
        let rest = viewer
            .read_to_end()
            .expect("the stream ends after shutdown");
        assert!(
            rest.ends_with(b"--frame--\r\n"),
            "{:?}",
            String::from_utf8_lossy(&rest)
        );
    }
    // Both return at once now; shutdown is idempotent.
    srv.server.wait();
    srv.server.shutdown();
}

#[test]
fn too_many_requests_at_once_get_503() {
    let srv = TestServer::start_with(Limits {
        max_handlers: 0,
        ..Limits::default()
    });
    let r = srv.get("/healthz");
    assert_eq!(r.status, 503);
    assert!(r.detail().contains("too many"));
}

#[test]
fn camera_test_answers_200_with_a_verdict() {
    let srv = TestServer::start();
    let r = srv.get("/printers/0/camera/test");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    match v.get("success").and_then(Value::as_bool) {
        Some(true) => assert!(v.get("resolution").and_then(Value::as_str).is_some()),
        Some(false) => assert!(v.get("error").and_then(Value::as_str).is_some()),
        None => panic!("no verdict: {v}"),
    }
}

// The demo source lands in another branch; these need its frames.

#[test]
fn demo_stream_sends_jpeg_parts() {
    let srv = TestServer::start();
    for prefix in PREFIXES {
        let mut viewer = MjpegReader::open(
            srv.addr,
            &format!("{prefix}/printers/0/camera/stream?fps=30"),
        );
        assert_eq!(viewer.status, 200);
        assert_eq!(
            viewer.header("Content-Type"),
            Some(printcam::http::mjpeg::CONTENT_TYPE)
        );
        assert_eq!(
            viewer.header("Cache-Control"),
            Some("no-cache, no-store, must-revalidate")
        );
        assert_eq!(viewer.header("Pragma"), Some("no-cache"));
        for _ in 0..3 {
            let jpeg = viewer.next_part().expect("a part");
            assert!(is_jpeg(&jpeg));
        }
    }
    let status = srv.get("/printers/0/camera/status").json();
    assert!(status.get("frames_in").and_then(Value::as_i64).unwrap_or(0) > 0);
}

#[test]
fn demo_snapshot_is_a_jpeg_with_its_age() {
    let srv = TestServer::start();
    let r = srv.get("/printers/0/camera/snapshot");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("Content-Type"), Some("image/jpeg"));
    assert_eq!(
        r.header("Content-Disposition"),
        Some("inline; filename=\"snapshot_0.jpg\"")
    );
    assert!(r
        .header("X-Frame-Age-Ms")
        .and_then(|v| v.parse::<u64>().ok())
        .is_some());
    assert!(is_jpeg(&r.body));
}

#[test]
fn demo_test_reports_a_resolution() {
    let srv = TestServer::start();
    let v = srv.get("/printers/0/camera/test").json();
    assert_eq!(v.get("success"), Some(&Value::Bool(true)), "{v}");
    let res = v.get("resolution").and_then(Value::as_str).unwrap();
    assert!(res.contains('x'), "{res}");
}

#[test]
fn demo_stop_ends_a_stream() {
    let srv = TestServer::start();
    let mut viewer = MjpegReader::open(srv.addr, "/printers/0/camera/stream");
    viewer.next_part().expect("a first part");
    let r = srv.get("/printers/0/camera/stop").json();
    assert_eq!(r.get("stopped").and_then(Value::as_i64), Some(1));
    let rest = viewer.read_to_end().expect("the stream ends");
    assert!(rest.ends_with(b"--frame--\r\n"));
}

/// One request per connection: a client that would keep the connection
/// alive is told `Connection: close` and sees the connection end after the
/// response.
#[test]
fn a_keep_alive_client_gets_one_response_then_the_close() {
    let srv = TestServer::start();
    let s = support::connect(srv.addr);
    let mut w = s.try_clone().unwrap();
    let mut r = std::io::BufReader::new(s);
    write!(w, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (status, headers) = support::read_head(&mut r).unwrap();
    assert_eq!(status, 200);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("Connection"), Some("close"));
    let len: usize = header("Content-Length")
        .and_then(|v| v.parse().ok())
        .expect("a length");
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert_eq!(rest.len(), len, "nothing after the body");
    printcam::json::parse_bytes(&rest).expect("JSON");
}

#[test]
fn usb_cameras_are_listed_as_on_this_box() {
    let srv = TestServer::start();
    let present: Vec<String> = std::fs::read_dir("/dev")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| format!("/dev/{}", e.file_name().to_string_lossy()))
                .filter(|p| printcam::ffmpeg::usb_device_ok(p).is_ok())
                .collect()
        })
        .unwrap_or_default();
    for path in ["/usb-cameras", "/api/v1/usb-cameras"] {
        let r = srv.get(path);
        assert_eq!(r.status, 200);
        let listed: Vec<String> = r
            .json()
            .as_array()
            .expect("an array")
            .iter()
            .map(|c| c.get("device").and_then(Value::as_str).unwrap().to_string())
            .collect();
        let mut want = present.clone();
        want.sort_by_key(|p| p["/dev/video".len()..].parse::<u32>().unwrap_or(0));
        assert_eq!(listed, want);
    }
}

/// HEAD is answered as GET without the body (monitors check URLs so).
#[test]
fn head_is_get_without_a_body() {
    let srv = TestServer::start();
    let head = |path: &str| {
        let mut s = support::connect(srv.addr);
        write!(s, "HEAD {path} HTTP/1.1\r\nHost: {}\r\n\r\n", srv.addr).unwrap();
        let mut all = String::new();
        std::io::Read::read_to_string(&mut s, &mut all).unwrap();
        let (head, body) = all.split_once("\r\n\r\n").expect("a whole head");
        (head.to_string(), body.to_string())
    };
    let (h, body) = head("/healthz");
    assert!(h.starts_with("HTTP/1.1 200"), "{h}");
    assert!(h.contains("Content-Length: 15"), "{h}");
    assert!(body.is_empty(), "{body:?}");
    let (h, body) = head("/printers/0/camera/snapshot");
    assert!(
        h.starts_with("HTTP/1.1 200") && h.contains("Content-Type: image/jpeg"),
        "{h}"
    );
    assert!(body.is_empty());
    let (h, body) = head("/printers/0/camera/stream");
    assert!(h.contains("multipart/x-mixed-replace"), "{h}");
    assert!(body.is_empty());
    assert!(head("/printers/99/camera/stream")
        .0
        .starts_with("HTTP/1.1 404"));
    assert!(head("/nope").0.starts_with("HTTP/1.1 404"));
}
