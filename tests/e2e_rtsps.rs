//! An X1C-style printer end to end through the HTTP server: GStreamer's RTSP
//! server (H.264, Digest auth) behind TLS, read by the real ffmpeg through
//! printcam's TLS proxy, served as MJPEG that ffprobe must recognise.

mod support;

#[path = "fake-ffmpeg/support.rs"]
mod doubles;

use doubles::{RtspServer, TlsFront};
use printcam::jpeg::resolution;
use support::{is_jpeg, TestServer};

const CODE: &str = "31415926";

#[test]
fn x1c_stream_snapshot_and_test_through_the_server() {
    let Some(ffprobe) = doubles::find("ffprobe", "ffmpeg") else {
        return;
    };
    if doubles::find("ffmpeg", "ffmpeg").is_none() || !doubles::require_gst_rtsp() {
        return;
    }
    let rtsp = RtspServer::start("bblp", CODE, 640, 360);
    let front = TlsFront::start(rtsp.port);
    let ts = TestServer::start();
    let body = format!(
        r#"{{"name":"X1C","ip":"127.0.0.1","access_code":"{CODE}","model":"X1C","camera_port":{}}}"#,
        front.port
    );
    let r = ts.send_json("POST", "/printers", &body);
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json().get("id").and_then(|v| v.as_i64()).unwrap();
    assert!(!r.text().contains(CODE));

    let test = ts.get(&format!("/printers/{id}/camera/test")).json();
    assert_eq!(
        test.get("success").and_then(|v| v.as_bool()),
        Some(true),
        "{test}"
    );
    assert_eq!(
        test.get("resolution").and_then(|v| v.as_str()),
        Some("640x360")
    );

    let snap = ts.get(&format!("/printers/{id}/camera/snapshot"));
    assert_eq!(snap.status, 200, "{}", snap.text());
    assert!(is_jpeg(&snap.body));
    assert_eq!(resolution(&snap.body), Some((640, 360)));

    // A client that knows nothing of printcam reads the stream as MJPEG.
    let url = format!("http://{}/printers/{id}/camera/stream?fps=10", ts.addr);
    let (out, stderr) = doubles::programs::probe_url(&ffprobe, &url);
    assert_eq!(out, "mjpeg,640,360", "{stderr}");

    let status = ts.get(&format!("/printers/{id}/camera/status")).json();
    assert_eq!(
        status.get("connects").and_then(|v| v.as_i64()),
        Some(1),
        "{status}"
    );
    // Shutting the server down reaps its ffmpeg: only the RTSP server, our
    // own child, is left.
    drop(ts);
    let rtsp_pid = rtsp.child.pid();
    let others: Vec<u32> = doubles::child_pids()
        .into_iter()
        .filter(|p| *p != rtsp_pid)
        .collect();
    assert!(others.is_empty(), "children left: {others:?}");
}
