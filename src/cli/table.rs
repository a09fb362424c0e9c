//! How printers are shown: the list table, `show` and the JSON listing.

use crate::camera::RtspClient;
use crate::cameras::CameraKind;
use crate::orientation::Rotation;
use crate::redact;
use crate::registry::Printer;

/// Control characters (terminal escapes in a name) shown harmlessly.
pub(super) fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Where the printer's camera is: the external URL (password hidden) when it
/// is used, else the printer's address.
fn address(p: &Printer) -> String {
    match (CameraKind::of(p), &p.camera_url, &p.ip) {
        (CameraKind::External(_), Some(url), _) => redact::url_passwords(url),
        (_, _, Some(ip)) => match p.camera_port {
            Some(port) => crate::sources::label(ip, port),
            None if ip.contains(':') => format!("[{ip}]"),
            None => ip.clone(),
        },
        _ => "-".to_string(),
    }
}

pub(super) fn list_table(printers: &[Printer]) -> String {
    let mut rows = vec![["ID", "NAME", "CAMERA", "ADDRESS"].map(String::from)];
    rows.extend(printers.iter().map(|p| {
        [
            p.id.to_string(),
            p.name.clone(),
            CameraKind::of(p).as_str().to_string(),
            address(p),
        ]
        .map(|s| printable(&s))
    }));
    let width = |col: usize| rows.iter().map(|r| r[col].chars().count()).max();
    let widths: Vec<usize> = (0..3).map(|c| width(c).unwrap_or(0)).collect();
    let mut text = String::new();
    for row in &rows {
        for (cell, w) in row.iter().zip(&widths) {
            text.push_str(&format!("{cell:<w$}  "));
        }
        text.push_str(&row[3]);
        text.push('\n');
    }
    text
}

fn or_dash(v: &Option<String>) -> String {
    v.as_deref().map_or("-".to_string(), printable)
}

/// One field a line; the access code only as set / not set.
pub(super) fn show(p: &Printer) -> String {
    let kind = CameraKind::of(p);
    let port = match (p.camera_port, &kind) {
        (Some(port), _) => port.to_string(),
        (None, CameraKind::BuiltIn(b)) => format!("{} (default)", b.default_port()),
        (None, CameraKind::Undetected) => "322 or 6000 (defaults)".to_string(),
        (None, _) => "-".to_string(),
    };
    let camera = match (&kind, crate::cameras::camera_detected(p)) {
        (_, true) => format!("{} (detected: the model is not known)", kind.as_str()),
        (CameraKind::Undetected, _) => {
            "undetected (the model is not known: both kinds are tried on first use)".to_string()
        }
        _ => kind.as_str().to_string(),
    };
    let lines = [
        ("id", p.id.to_string()),
        ("name", printable(&p.name)),
        ("camera", camera),
        ("ip", or_dash(&p.ip)),
        (
            "access code",
            set_or_not(p.access_code.is_some()).to_string(),
        ),
        ("model", or_dash(&p.model)),
        ("serial", or_dash(&p.serial)),
        ("camera port", port),
        (
            "camera url",
            or_dash(&p.camera_url.as_deref().map(redact::url_passwords)),
        ),
        (
            "camera type",
            or_dash(&p.camera_type.map(|t| t.to_string())),
        ),
        ("external camera", external_state(p).to_string()),
        ("camera rotation", rotation_line(p.camera_rotation)),
        ("camera flip", p.camera_flip.to_string()),
        ("rtsp client", rtsp_client_line(p)),
        ("certificate pin", or_dash(&p.cert_sha256)),
        ("certificate", p.cert_trust().unwrap_or("-").to_string()),
    ];
    lines
        .iter()
        .map(|(k, v)| format!("{:<17}{v}\n", format!("{k}:")))
        .collect()
}

fn rotation_line(r: Rotation) -> String {
    match r {
        Rotation::R0 => "0".to_string(),
        turned => format!("{turned} (degrees clockwise)"),
    }
}

/// The choice, and what it means for this camera.
fn rtsp_client_line(p: &Printer) -> String {
    let what = match p.rtsp_client {
        RtspClient::Auto => "auto (native, ffmpeg for streams it cannot read)",
        RtspClient::Native => "native (no fallback to ffmpeg)",
        RtspClient::Ffmpeg => "ffmpeg (for MJPEG and snapshots)",
    };
    match crate::cameras::reads_rtsp(p) {
        Some(false) => format!("{} (no effect: the camera is not RTSP)", p.rtsp_client),
        _ => what.to_string(),
    }
}

/// Whether the external camera is the one served.
fn external_state(p: &Printer) -> &'static str {
    match (&p.camera_url, p.camera_enabled) {
        (None, _) => "-",
        (Some(_), true) => "enabled",
        (Some(_), false) => "disabled (the built-in camera is used)",
    }
}

fn set_or_not(b: bool) -> &'static str {
    if b {
        "set"
    } else {
        "not set"
    }
}

/// The printers as the API lists them (no access code, URL passwords masked).
pub(super) fn list_json(printers: &[Printer]) -> String {
    let all = printers
        .iter()
        .map(crate::http::printers::to_json)
        .collect();
    format!("{}\n", crate::json::Value::Array(all))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::CameraType;

    #[test]
    fn show_says_which_camera_is_served() {
        let builtin = Printer {
            id: 1,
            name: "p1s".into(),
            ip: Some("10.0.0.5".into()),
            access_code: Some("12345678".into()),
            ..Printer::default()
        };
        assert!(
            show(&builtin).contains("external camera: -"),
            "{}",
            show(&builtin)
        );
        let off = Printer {
            camera_url: Some("http://10.0.0.6/s".into()),
            camera_type: Some(CameraType::Mjpeg),
            ..builtin.clone()
        };
        assert!(show(&off).contains("disabled (the built-in camera is used)"));
    }

    #[test]
    fn output_is_escaped() {
        assert_eq!(printable("x\u{1b}[31my"), "x?[31my");
        let p = Printer {
            id: 4,
            name: "Door".into(),
            camera_url: Some("rtsp://u:SECRETPW@10.0.0.9/s".into()),
            camera_type: Some(CameraType::Rtsp),
            camera_enabled: true,
            ..Printer::default()
        };
        for text in [
            list_table(std::slice::from_ref(&p)),
            list_json(std::slice::from_ref(&p)),
            show(&p),
        ] {
            assert!(!text.contains("SECRETPW"), "{text}");
            assert!(text.contains("rtsp://u:****@10.0.0.9/s"), "{text}");
        }
        assert_eq!(list_json(&[]), "[]\n");
    }

    #[test]
    fn ipv6_printer_addresses_are_shown_in_brackets() {
        let p = Printer {
            id: 1,
            name: "v6".into(),
            ip: Some("fd00::50".into()),
            access_code: Some("12345678".into()),
            model: Some("P1S".into()),
            ..Printer::default()
        };
        assert_eq!(address(&p), "[fd00::50]");
        let on_port = Printer {
            camera_port: Some(6000),
            ..p.clone()
        };
        assert_eq!(address(&on_port), "[fd00::50]:6000");
        assert!(list_table(&[on_port]).contains(" [fd00::50]:6000\n"));
        let v4 = Printer {
            ip: Some("192.168.1.50".into()),
            camera_port: Some(322),
            ..p
        };
        assert_eq!(address(&v4), "192.168.1.50:322");
    }

    #[test]
    fn show_says_how_the_camera_kind_is_known() {
        let line = |p: &Printer| {
            show(p)
                .lines()
                .find(|l| l.starts_with("camera:"))
                .unwrap()
                .to_string()
        };
        let unknown = Printer {
            id: 1,
            name: "p".into(),
            ip: Some("192.168.1.9".into()),
            access_code: Some("12345678".into()),
            ..Printer::default()
        };
        assert!(line(&unknown).contains("undetected"), "{}", line(&unknown));
        let detected = Printer {
            detected_camera: Some(crate::camera::BuiltIn::Rtsps),
            ..unknown.clone()
        };
        assert!(
            line(&detected).ends_with("rtsps (detected: the model is not known)"),
            "{}",
            line(&detected)
        );
        let known = Printer {
            model: Some("Bambu Lab P1S".into()),
            ..unknown
        };
        assert!(line(&known).ends_with(" chamber"), "{}", line(&known));
    }
}
