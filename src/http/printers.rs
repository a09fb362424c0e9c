//! Printers as the API shows them and as clients send them. The access code
//! goes in, never out.

use crate::camera::{CameraType, RtspClient};
use crate::cameras::{camera_detected, CameraKind};
use crate::json::Value;
use crate::orientation::{Flip, Rotation};
use crate::registry::{Printer, PrinterPatch};

/// The fields a client may send, in the order error messages list them.
const FIELDS: &[&str] = &[
    "name",
    "ip",
    "access_code",
    "model",
    "serial",
    "camera_port",
    "camera_url",
    "camera_type",
    "camera_enabled",
    "camera_rotation",
    "camera_flip",
    "rtsp_client",
];

/// A printer as the API shows it.
pub fn to_json(p: &Printer) -> Value {
    let camera = Value::object([
        ("kind", Value::from(CameraKind::of(p).as_str())),
        ("detected", Value::from(camera_detected(p))),
        ("type", Value::from(p.camera_type.map(CameraType::as_str))),
        (
            "url",
            Value::from(p.camera_url.as_deref().map(crate::redact::url_passwords)),
        ),
        // Whether the camera endpoints serve a camera (the built-in one,
        // the demo or an enabled external one); `camera_enabled` below
        // is the external camera's own switch.
        (
            "enabled",
            Value::from(CameraKind::of(p) != CameraKind::None),
        ),
        ("external_enabled", Value::from(p.camera_enabled)),
        (
            "video",
            Value::from(CameraKind::of(p).video().map(crate::camera::Video::as_str)),
        ),
    ]);
    Value::object([
        ("id", Value::from(p.id)),
        ("name", Value::from(p.name.as_str())),
        ("ip", Value::from(p.ip.as_deref())),
        ("model", Value::from(p.model.as_deref())),
        ("serial", Value::from(p.serial.as_deref())),
        ("camera_port", Value::from(p.camera_port)),
        ("has_access_code", Value::from(p.access_code.is_some())),
        ("cert_pinned", Value::from(p.cert_sha256.is_some())),
        ("cert_trust", Value::from(p.cert_trust())),
        ("camera_rotation", Value::from(p.camera_rotation.degrees())),
        ("camera_flip", Value::from(p.camera_flip.as_str())),
        ("rtsp_client", Value::from(p.rtsp_client.as_str())),
        ("camera", camera),
    ])
}

/// A printer as the answer to a create or change shows it: `to_json`, plus
/// `warnings` (strings, secrets masked) when there are any.
pub fn saved_json(p: &Printer, warnings: &[String]) -> Value {
    let mut v = to_json(p);
    if let (Value::Object(members), false) = (&mut v, warnings.is_empty()) {
        let list = warnings
            .iter()
            .map(|w| Value::from(crate::redact::url_passwords(w)))
            .collect();
        members.push(("warnings".to_string(), Value::Array(list)));
    }
    v
}

/// A body's fields as a change: absent fields are `None`, JSON null (or an
/// empty string) clears an optional field. Refuses unknown or repeated
/// fields and wrong types, naming the field.
pub fn patch_from_json(body: &Value) -> Result<PrinterPatch, String> {
    let members = body
        .as_object()
        .ok_or_else(|| format!("the body must be a JSON object, not {}", body.kind()))?;
    let mut seen: Vec<&str> = Vec::new();
    let mut patch = PrinterPatch::default();
    for (key, v) in members {
        let Some(&field) = FIELDS.iter().find(|f| **f == key.as_str()) else {
            return Err(format!(
                "unknown field \"{}\"; known fields: {}",
                super::router::quote_safely(key),
                FIELDS.join(", ")
            ));
        };
        if seen.contains(&field) {
            return Err(format!("field \"{field}\" is given twice"));
        }
        seen.push(field);
        set_field(&mut patch, field, v)?;
    }
    Ok(patch)
}

fn set_field(patch: &mut PrinterPatch, field: &str, v: &Value) -> Result<(), String> {
    match field {
        "name" => {
            patch.name = Some(
                v.as_str()
                    .ok_or_else(|| wrong_type(field, "a string", v))?
                    .to_string(),
            )
        }
        "ip" => patch.ip = Some(optional_text(field, v)?),
        "access_code" => patch.access_code = Some(optional_text(field, v)?),
        "model" => patch.model = Some(optional_text(field, v)?),
        "serial" => patch.serial = Some(optional_text(field, v)?),
        "camera_url" => patch.camera_url = Some(optional_text(field, v)?),
        "camera_port" => patch.camera_port = Some(optional_port(v)?),
        "camera_type" => {
            patch.camera_type = Some(match optional_text(field, v)? {
                None => None,
                Some(t) => Some(t.parse::<CameraType>()?),
            })
        }
        "camera_enabled" => {
            patch.camera_enabled = Some(
                v.as_bool()
                    .ok_or_else(|| wrong_type(field, "true or false", v))?,
            )
        }
        "camera_rotation" => patch.camera_rotation = Some(rotation(v)?),
        "camera_flip" => patch.camera_flip = Some(flip(v)?),
        "rtsp_client" => patch.rtsp_client = Some(rtsp_client(v)?),
        _ => return Err(format!("unknown field \"{field}\"")),
    }
    Ok(())
}

fn wrong_type(field: &str, want: &str, got: &Value) -> String {
    format!("{field} must be {want}, not {}", got.kind())
}

/// A string, or None for null or a blank string.
fn optional_text(field: &str, v: &Value) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.trim().to_string())),
        other => Err(wrong_type(field, "a string or null", other)),
    }
}

fn optional_port(v: &Value) -> Result<Option<u16>, String> {
    if v.is_null() {
        return Ok(None);
    }
    v.as_i64()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| *n > 0)
        .map(Some)
        .ok_or_else(|| "camera_port must be a whole number from 1 to 65535, or null".to_string())
}

/// Degrees clockwise; null is no turn.
fn rotation(v: &Value) -> Result<Rotation, String> {
    if v.is_null() {
        return Ok(Rotation::R0);
    }
    if v.as_f64().is_none() {
        return Err(wrong_type("camera_rotation", "0, 90, 180, 270 or null", v));
    }
    v.as_i64()
        .and_then(Rotation::from_degrees)
        .ok_or_else(|| Rotation::refusal("camera_rotation", &v.to_json()))
}

/// A mirror's name; null is none.
fn flip(v: &Value) -> Result<Flip, String> {
    match v {
        Value::Null => Ok(Flip::None),
        Value::String(s) => Flip::parse(s).ok_or_else(|| {
            Flip::refusal(
                "camera_flip",
                &format!("\"{}\"", super::router::quote_safely(s)),
            )
        }),
        other => Err(wrong_type("camera_flip", "a string or null", other)),
    }
}

/// Which RTSP client reads the camera; null is auto.
fn rtsp_client(v: &Value) -> Result<RtspClient, String> {
    match v {
        Value::Null => Ok(RtspClient::Auto),
        Value::String(s) => s.parse::<RtspClient>().map_err(|_| {
            format!(
                "rtsp_client must be auto, native or ffmpeg, not \"{}\"",
                super::router::quote_safely(s)
            )
        }),
        other => Err(wrong_type("rtsp_client", "a string or null", other)),
    }
}

/// The external camera follows its URL unless the client says otherwise:
/// giving a URL turns it on, clearing the URL turns it off.
fn default_enabled(patch: &mut PrinterPatch) {
    if patch.camera_enabled.is_none() {
        patch.camera_enabled = patch.camera_url.as_ref().map(Option::is_some);
    }
}

/// A new printer from a create request's body.
pub fn new_from_json(body: &Value) -> Result<Printer, String> {
    let mut patch = patch_from_json(body)?;
    if patch.name.is_none() {
        return Err("name is required".into());
    }
    default_enabled(&mut patch);
    Ok(patch.apply(&Printer::default()))
}

/// A change from an update request's body.
pub fn update_from_json(body: &Value) -> Result<PrinterPatch, String> {
    let mut patch = patch_from_json(body)?;
    default_enabled(&mut patch);
    Ok(patch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    #[test]
    fn access_code_never_shown_and_passwords_hidden() {
        let p = Printer {
            id: 4,
            name: "P1S".into(),
            ip: Some("192.168.1.5".into()),
            access_code: Some("12345678".into()),
            camera_url: Some("http://u:secretpw@10.0.0.9/stream".into()),
            camera_type: Some(CameraType::Mjpeg),
            camera_enabled: true,
            ..Printer::default()
        };
        let text = to_json(&p).to_json();
        assert!(!text.contains("12345678"), "{text}");
        assert!(!text.contains("secretpw"), "{text}");
        let v = parse(&text).unwrap();
        assert_eq!(v.get("has_access_code"), Some(&Value::Bool(true)));
        assert_eq!(
            v.get("camera").unwrap().get("kind").unwrap().as_str(),
            Some("mjpeg")
        );
    }

    #[test]
    fn video_says_which_cameras_are_h264() {
        let video = |p: Printer| {
            let v = parse(&to_json(&p).to_json()).unwrap();
            v.get("camera")
                .and_then(|c| c.get("video"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let bambu = |model: Option<&str>| Printer {
            id: 2,
            name: "p".into(),
            ip: Some("10.0.0.2".into()),
            access_code: Some("12345678".into()),
            model: model.map(str::to_string),
            ..Printer::default()
        };
        let external = |kind| Printer {
            id: 3,
            name: "e".into(),
            camera_url: Some("rtsp://10.0.0.3/live".into()),
            camera_type: Some(kind),
            camera_enabled: true,
            ..Printer::default()
        };
        assert_eq!(video(bambu(Some("X1C"))).as_deref(), Some("h264"));
        assert_eq!(video(bambu(Some("P1S"))).as_deref(), Some("mjpeg"));
        // Being detected: shown as pictures until the kind is known.
        assert_eq!(video(bambu(None)).as_deref(), Some("mjpeg"));
        assert_eq!(video(external(CameraType::Rtsp)).as_deref(), Some("h264"));
        assert_eq!(video(external(CameraType::Usb)).as_deref(), Some("mjpeg"));
        assert_eq!(
            video(external(CameraType::Snapshot)).as_deref(),
            Some("mjpeg")
        );
        let bare = Printer {
            id: 5,
            name: "bare".into(),
            ..Printer::default()
        };
        assert_eq!(video(bare), None);
    }

    #[test]
    fn create_defaults_enabled_from_url() {
        let p = new_from_json(
            &parse(r#"{"name":"a","camera_url":"http://10.0.0.2/s","camera_type":"MJPEG"}"#)
                .unwrap(),
        )
        .unwrap();
        assert!(p.camera_enabled);
        assert_eq!(p.camera_type, Some(CameraType::Mjpeg));
        let p = new_from_json(
            &parse(r#"{"name":"a","camera_url":"x","camera_enabled":false}"#).unwrap(),
        )
        .unwrap();
        assert!(!p.camera_enabled);
        assert!(new_from_json(&parse(r#"{"ip":"1.2.3.4"}"#).unwrap()).is_err());
    }

    #[test]
    fn patch_nulls_clear_and_absent_keeps() {
        let patch = update_from_json(
            &parse(r#"{"model":null,"camera_port":322,"camera_url":null}"#).unwrap(),
        )
        .unwrap();
        assert_eq!(patch.model, Some(None));
        assert_eq!(patch.camera_port, Some(Some(322)));
        assert_eq!(patch.camera_enabled, Some(false));
        assert_eq!(patch.name, None);
        assert_eq!(patch.ip, None);
    }

    #[test]
    fn refusals_name_the_field() {
        let err = |s: &str| match update_from_json(&parse(s).unwrap()) {
            Ok(_) => panic!("{s} accepted"),
            Err(e) => e,
        };
        assert!(err(r#"{"nmae":"x"}"#).contains("\"nmae\""));
        assert!(err(r#"{"name":"x","name":"y"}"#).contains("twice"));
        assert!(err(r#"{"name":1}"#).contains("name"));
        assert!(err(r#"{"camera_port":70000}"#).contains("camera_port"));
        assert!(err(r#"{"camera_port":0}"#).contains("camera_port"));
        assert!(err(r#"{"camera_port":1.5}"#).contains("camera_port"));
        assert!(err(r#"{"camera_enabled":"yes"}"#).contains("camera_enabled"));
        assert!(err(r#"{"camera_type":"webcam"}"#).contains("webcam"));
        assert!(err(r#"[1]"#).contains("object"));
        assert!(err(r#"{"camera_rotation":45}"#).contains("camera_rotation must be 0, 90"));
        assert!(err(r#"{"camera_rotation":"90"}"#).contains("camera_rotation"));
        assert!(err(r#"{"camera_rotation":90.5}"#).contains("camera_rotation"));
        assert!(err(r#"{"camera_flip":"diagonal"}"#).contains("camera_flip"));
        assert!(err(r#"{"camera_flip":"diagonal"}"#).contains("\"diagonal\""));
        assert!(err(r#"{"camera_flip":true}"#).contains("camera_flip"));
        assert_eq!(
            err(r#"{"rtsp_client":"gstreamer"}"#),
            "rtsp_client must be auto, native or ffmpeg, not \"gstreamer\""
        );
        assert_eq!(
            err(r#"{"rtsp_client":1}"#),
            "rtsp_client must be a string or null, not a number"
        );
        assert!(err(r#"{"rtsp_client":""}"#).contains("rtsp_client"));
    }

    #[test]
    fn rotation_and_flip_in_and_out() {
        let p = new_from_json(
            &parse(r#"{"name":"a","camera_rotation":270,"camera_flip":"Horizontal"}"#).unwrap(),
        )
        .unwrap();
        assert_eq!(p.camera_rotation, Rotation::R270);
        assert_eq!(p.camera_flip, Flip::Horizontal);
        let v = parse(&to_json(&p).to_json()).unwrap();
        assert_eq!(v.get("camera_rotation").and_then(Value::as_i64), Some(270));
        assert_eq!(
            v.get("camera_flip").and_then(Value::as_str),
            Some("horizontal")
        );
        let reset =
            update_from_json(&parse(r#"{"camera_rotation":null,"camera_flip":null}"#).unwrap())
                .unwrap();
        assert_eq!(reset.camera_rotation, Some(Rotation::R0));
        assert_eq!(reset.camera_flip, Some(Flip::None));
        let untouched = update_from_json(&parse(r#"{"name":"b"}"#).unwrap()).unwrap();
        assert_eq!(
            (untouched.camera_rotation, untouched.camera_flip),
            (None, None)
        );
    }

    #[test]
    fn rtsp_client_in_and_out() {
        let p = new_from_json(&parse(r#"{"name":"a","rtsp_client":"Native"}"#).unwrap()).unwrap();
        assert_eq!(p.rtsp_client, RtspClient::Native);
        for c in RtspClient::ALL {
            let shown = to_json(&Printer {
                rtsp_client: c,
                ..p.clone()
            });
            assert_eq!(
                shown.get("rtsp_client").and_then(Value::as_str),
                Some(c.as_str())
            );
        }
        let defaulted = new_from_json(&parse(r#"{"name":"a"}"#).unwrap()).unwrap();
        assert_eq!(defaulted.rtsp_client, RtspClient::Auto);
        let set = update_from_json(&parse(r#"{"rtsp_client":"ffmpeg"}"#).unwrap()).unwrap();
        assert_eq!(set.rtsp_client, Some(RtspClient::Ffmpeg));
        let reset = update_from_json(&parse(r#"{"rtsp_client":null}"#).unwrap()).unwrap();
        assert_eq!(reset.rtsp_client, Some(RtspClient::Auto));
        let untouched = update_from_json(&parse(r#"{"name":"b"}"#).unwrap()).unwrap();
        assert_eq!(untouched.rtsp_client, None);
    }
}
