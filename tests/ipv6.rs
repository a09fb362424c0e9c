//! Printers at an IPv6 address (`--ip fd00::50` on a LAN; here the loopback
//! `::1`): both camera kinds, and detection, against doubles listening on
//! [::1] only.

mod support;

#[path = "support/chamber_double.rs"]
mod chamber_double;
#[path = "fake-ffmpeg/support.rs"]
mod doubles;

use chamber_double::{Double, Mode, Options, Stats};
use doubles::{RtspServer, TlsFront};
use printcam::jpeg::resolution;
use printcam::json::Value;
use support::{is_jpeg, TestServer};

const CODE: &str = "12345678";

fn add(ts: &TestServer, port: u16, model: &str) -> i64 {
    let body = format!(
        r#"{{"name":"v6","ip":"::1","access_code":"{CODE}","model":{model},"camera_port":{port}}}"#
    );
    let r = ts.send_json("POST", "/printers", &body);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json().get("ip").and_then(Value::as_str), Some("::1"));
    r.json().get("id").and_then(Value::as_i64).unwrap()
}

fn kind(v: &Value) -> &str {
    v.get("camera")
        .and_then(|c| c.get("kind"))
        .and_then(Value::as_str)
        .unwrap()
}

#[test]
fn a_chamber_camera_at_an_ipv6_address() {
    let double = Double::start_v6(Options::new(Mode::Endless));
    let ts = TestServer::start();
    let id = add(&ts, double.port(), r#""P1S""#);
    let snap = ts.get(&format!("/printers/{id}/camera/snapshot"));
    assert_eq!(snap.status, 200, "{}", snap.text());
    assert!(is_jpeg(&snap.body));
    assert_eq!(Stats::get(&double.stats.auth_ok), 1);
    let status = ts.get(&format!("/printers/{id}/camera/status")).json();
    assert!(
        status.get("last_error").is_none_or(Value::is_null),
        "{status}"
    );
}

#[test]
fn an_unknown_model_at_an_ipv6_address_is_detected() {
    let double = Double::start_v6(Options::new(Mode::Endless));
    let ts = TestServer::start();
    let id = add(&ts, double.port(), "null");
    let t = ts.get(&format!("/printers/{id}/camera/test")).json();
    assert_eq!(t.get("success").and_then(Value::as_bool), Some(true), "{t}");
    assert_eq!(kind(&t), "chamber", "{t}");
}

#[test]
fn an_rtsps_camera_at_an_ipv6_address() {
    if doubles::find("ffmpeg", "ffmpeg").is_none() || !doubles::require_gst_rtsp() {
        return;
    }
    let rtsp = RtspServer::start("bblp", CODE, 640, 360);
    let front = TlsFront::start_v6(rtsp.port);
    let ts = TestServer::start();
    let id = add(&ts, front.port, r#""Bambu Lab X1 Carbon""#);
    assert_eq!(kind(&ts.get(&format!("/printers/{id}")).json()), "rtsps");
    let snap = ts.get(&format!("/printers/{id}/camera/snapshot"));
    assert_eq!(snap.status, 200, "{}", snap.text());
    assert_eq!(resolution(&snap.body), Some((640, 360)));
}

#[test]
fn a_refused_ipv6_camera_is_named_in_brackets() {
    let port = {
        let l = std::net::TcpListener::bind("[::1]:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let ts = TestServer::start();
    let id = add(&ts, port, r#""P1S""#);
    let t = ts.get(&format!("/printers/{id}/camera/test")).json();
    let error = t.get("error").and_then(Value::as_str).unwrap();
    assert!(error.contains(&format!("[::1]:{port}")), "{error}");
}
