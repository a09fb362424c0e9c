//! Printers whose model printcam does not know (or that have none): the
//! camera kind is detected on first use against the port-6000 TLS double and
//! GStreamer's RTSP server behind TLS, stored, shown, used without probing
//! again, and forgotten when the model changes.

mod support;

#[path = "support/chamber_double.rs"]
mod chamber_double;
#[path = "fake-ffmpeg/support.rs"]
mod doubles;

use chamber_double::{Double, Mode, Options, Stats};
use doubles::{RtspServer, TlsFront};
use printcam::camera::BuiltIn;
use printcam::cameras::Cameras;
use printcam::json::Value;
use printcam::registry::{Printer, PrinterPatch, Registry};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use support::TestServer;

const CODE: &str = "12345678";

fn add(ts: &TestServer, ip: &str, port: u16, model: Option<&str>) -> i64 {
    let model = model.map_or("null".to_string(), |m| format!("{m:?}"));
    let body = format!(
        r#"{{"name":"p","ip":"{ip}","access_code":"{CODE}","model":{model},"camera_port":{port}}}"#
    );
    let r = ts.send_json("POST", "/printers", &body);
    assert_eq!(r.status, 201, "{}", r.text());
    r.json().get("id").and_then(Value::as_i64).unwrap()
}

/// `camera.kind` and `camera.detected` of a JSON object.
fn camera_of(v: &Value) -> (String, bool) {
    let camera = v
        .get("camera")
        .unwrap_or_else(|| panic!("no camera in {v}"));
    (
        camera
            .get("kind")
            .and_then(Value::as_str)
            .unwrap()
            .to_string(),
        camera.get("detected").and_then(Value::as_bool).unwrap(),
    )
}

fn shown(ts: &TestServer, id: i64) -> (String, bool) {
    camera_of(&ts.get(&format!("/printers/{id}")).json())
}

fn test(ts: &TestServer, id: i64) -> Value {
    ts.get(&format!("/printers/{id}/camera/test")).json()
}

fn count(c: &std::sync::atomic::AtomicUsize) -> usize {
    Stats::get(c)
}

#[test]
fn a_printer_without_a_model_finds_its_chamber_camera() {
    let double = Double::start(Options::new(Mode::Endless));
    let ts = TestServer::start();
    let id = add(&ts, "127.0.0.1", double.port(), None);
    assert_eq!(shown(&ts, id), ("undetected".to_string(), false));

    let t = test(&ts, id);
    assert_eq!(t.get("success").and_then(Value::as_bool), Some(true), "{t}");
    assert_eq!(camera_of(&t), ("chamber".to_string(), true), "{t}");
    assert_eq!(shown(&ts, id), ("chamber".to_string(), true));
    let stored = ts.cameras.printer(id).unwrap();
    assert_eq!(stored.detected_camera, Some(BuiltIn::Chamber));
    // The RTSPS probe, then the camera: never two at once.
    assert_eq!(count(&double.stats.max_concurrent), 1);
    assert_eq!(count(&double.stats.auth_ok), 1);

    // A model now: the detection is forgotten, the model decides.
    let r = ts.send_json("PATCH", &format!("/printers/{id}"), r#"{"model":"P1S"}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(camera_of(&r.json()), ("chamber".to_string(), false));
    assert_eq!(ts.cameras.printer(id).unwrap().detected_camera, None);
    let r = ts.send_json("PATCH", &format!("/printers/{id}"), r#"{"model":null}"#);
    assert_eq!(camera_of(&r.json()), ("undetected".to_string(), false));
}

#[test]
fn a_detected_camera_is_used_without_probing_again() {
    let double = Double::start(Options::new(Mode::Endless));
    let registry = Arc::new(Registry::open_in_memory().unwrap());
    let first = Cameras::new(Arc::clone(&registry), support::test_settings());
    // A model of next year: as unknown as none.
    let id = first
        .add_printer(&Printer {
            name: "p".into(),
            ip: Some("127.0.0.1".into()),
            access_code: Some(CODE.into()),
            model: Some("Bambu Lab Q9 Ultra".into()),
            camera_port: Some(double.port()),
            ..Printer::default()
        })
        .unwrap();
    let t = first.test(id).unwrap();
    first.shutdown();
    assert!(t.success, "{t:?}");
    assert_eq!((t.camera, t.detected), ("chamber", true));
    let probes = count(&double.stats.auth_bad);
    let connections = count(&double.stats.connections);
    assert_eq!(connections, probes + 1);

    // Another process on the same registry (a restart): straight to the
    // chamber camera.
    let again = Cameras::new(Arc::clone(&registry), support::test_settings());
    let t = again.test(id).unwrap();
    again.shutdown();
    assert!(t.success, "{t:?}");
    assert_eq!((t.camera, t.detected), ("chamber", true));
    assert_eq!(count(&double.stats.auth_bad), probes);
    assert_eq!(count(&double.stats.connections), connections + 1);

    // Another address forgets it.
    let patch = PrinterPatch {
        ip: Some(Some("localhost".into())),
        access_code: Some(Some(CODE.into())),
        ..PrinterPatch::default()
    };
    let moved = again.update_printer(id, &patch).unwrap();
    assert_eq!(moved.detected_camera, None);
    assert_eq!(registry.get(id).unwrap().unwrap().detected_camera, None);
}

#[test]
fn a_printer_without_a_model_finds_its_rtsps_camera() {
    if doubles::find("ffmpeg", "ffmpeg").is_none() || !doubles::require_gst_rtsp() {
        return;
    }
    let rtsp = RtspServer::start("bblp", CODE, 640, 360);
    let front = TlsFront::start(rtsp.port);
    let ts = TestServer::start();
    let id = add(&ts, "127.0.0.1", front.port, None);
    let t = test(&ts, id);
    assert_eq!(t.get("success").and_then(Value::as_bool), Some(true), "{t}");
    assert_eq!(t.get("resolution").and_then(Value::as_str), Some("640x360"));
    assert_eq!(camera_of(&t), ("rtsps".to_string(), true), "{t}");
    assert_eq!(shown(&ts, id), ("rtsps".to_string(), true));
    // The OPTIONS probe, then ffmpeg's connection (the front serves one at
    // a time, so they cannot have overlapped).
    assert_eq!(front.accepted.load(Ordering::SeqCst), 2);
}

#[test]
fn when_nothing_answers_the_error_says_what_was_tried() {
    let port = support_port();
    let ts = TestServer::start();
    let id = add(&ts, "127.0.0.1", port, None);
    let t = test(&ts, id);
    assert_eq!(
        t.get("success").and_then(Value::as_bool),
        Some(false),
        "{t}"
    );
    let error = t.get("error").and_then(Value::as_str).unwrap();
    for tried in [
        format!("the RTSPS camera on port {port}"),
        format!("the chamber camera on port {port}"),
        "refused".to_string(),
    ] {
        assert!(error.contains(&tried), "{tried}: {error}");
    }
    assert!(!error.contains(CODE), "{error}");
    assert_eq!(camera_of(&t), ("undetected".to_string(), false));
    assert_eq!(ts.cameras.printer(id).unwrap().detected_camera, None);
}

/// A loopback port nothing listens on.
fn support_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
