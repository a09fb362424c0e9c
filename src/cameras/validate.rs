//! What a printer's settings may be, checked once before they are stored:
//! refusals are `Error::Invalid` naming the field, and what is accepted but
//! looks wrong comes back as warnings for the user.

use crate::camera::{BuiltIn, CameraKind, CameraType, RtspClient};
use crate::error::{Error, Result};
use crate::registry::Printer;
use crate::urlguard;

/// The longest access code the chamber protocol can carry.
const MAX_ACCESS_CODE: usize = 32;
const MAX_NAME: usize = 100;

/// Checks a printer's settings before they are stored; returns warnings
/// for the user (a host name that does not resolve yet).
pub fn validate(p: &Printer, policy: urlguard::Policy) -> Result<Vec<String>> {
    let name = p.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(Error::Invalid(format!(
            "name must be 1 to {MAX_NAME} characters"
        )));
    }
    let mut warnings = Vec::new();
    if let Some(ip) = &p.ip {
        warnings.extend(validate_printer_address(ip, policy)?);
        match &p.access_code {
            None => {
                return Err(Error::Invalid(
                    "a printer with an ip address needs its access code (shown on the printer's screen)".into(),
                ))
            }
            Some(code) => {
                validate_access_code(code)?;
                warnings.extend(unusual_access_code(code));
                warnings.extend(unknown_model(p.model.as_deref()));
            }
        }
    }
    if p.camera_port == Some(0) {
        return Err(Error::Invalid("camera port must be 1 to 65535".into()));
    }
    if p.camera_enabled || p.camera_url.is_some() || p.camera_type.is_some() {
        warnings.extend(validate_external(p, policy)?);
    }
    warnings.extend(idle_rtsp_client(p));
    Ok(warnings)
}

/// A forced RTSP client on a camera no RTSP client reads is kept (the
/// camera may change to one) but does nothing; the default says nothing.
fn idle_rtsp_client(p: &Printer) -> Option<String> {
    if p.rtsp_client == RtspClient::Auto || super::reads_rtsp(p) != Some(false) {
        return None;
    }
    let camera = match super::stored_camera(p).kind() {
        CameraKind::BuiltIn(BuiltIn::Chamber) => {
            "the chamber camera of P1 and A1 printers".to_string()
        }
        CameraKind::External(kind) => format!("an external {kind} camera"),
        other => format!("a {} camera", other.as_str()),
    };
    Some(format!(
        "rtsp_client {} has no effect on {camera}: only rtsp:// and rtsps:// cameras \
         (and the RTSPS camera of X1, H2 and P2 printers) are read by an RTSP client",
        p.rtsp_client
    ))
}

fn validate_access_code(code: &str) -> Result<()> {
    let printable = code.bytes().all(|b| b.is_ascii_graphic());
    if code.is_empty() || code.len() > MAX_ACCESS_CODE || !printable {
        return Err(Error::Invalid(format!(
            "access code must be 1 to {MAX_ACCESS_CODE} printable ASCII characters"
        )));
    }
    Ok(())
}

/// A model the table does not know works (its camera is detected on first
/// use), but may be a typo.
fn unknown_model(model: Option<&str>) -> Option<String> {
    let model = model.filter(|m| !m.trim().is_empty())?;
    crate::camera::camera_for_model(Some(model))
        .is_none()
        .then(|| {
            format!(
                "model {:?} is not one printcam knows: its camera will be detected on first use",
                model.trim()
            )
        })
}

/// Bambu printers show an 8-character code; another length is kept (a
/// future printer may differ) but is most likely a typo.
fn unusual_access_code(code: &str) -> Option<String> {
    (code.chars().count() != 8).then(|| {
        format!(
            "the access code has {} characters; Bambu Lab printers show 8 (check for a typo)",
            code.chars().count()
        )
    })
}

/// A printer address is a host name or an IP literal; the same destination
/// rules as camera URLs apply to it, on the text and on what it resolves to.
fn validate_printer_address(ip: &str, policy: urlguard::Policy) -> Result<Option<String>> {
    urlguard::check_host_at_save(ip, policy)
        .map(|warning| warning.map(|w| format!("printer address: {w}")))
        .map_err(|why| Error::Invalid(format!("printer address refused: {why}")))
}

fn validate_external(p: &Printer, policy: urlguard::Policy) -> Result<Option<String>> {
    let (Some(kind), Some(url)) = (p.camera_type, p.camera_url.as_deref()) else {
        return Err(Error::Invalid(
            "an external camera needs both a camera url and a camera type (mjpeg, snapshot, rtsp or usb)".into(),
        ));
    };
    match kind {
        CameraType::Usb => crate::ffmpeg::usb_device_ok(url)
            .map(|()| None)
            .map_err(Error::Invalid),
        CameraType::Mjpeg | CameraType::Snapshot | CameraType::Rtsp => {
            let (checked, warning) = urlguard::check_at_save(url, policy)
                .map_err(|why| Error::Invalid(format!("camera url refused: {why}")))?;
            let scheme = checked.scheme();
            let fits = match kind {
                CameraType::Rtsp => scheme == "rtsp" || scheme == "rtsps",
                _ => scheme == "http" || scheme == "https",
            };
            if !fits {
                return Err(Error::Invalid(format!(
                    "a {kind} camera needs an {} url, not {scheme}://",
                    if kind == CameraType::Rtsp {
                        "rtsp:// or rtsps://"
                    } else {
                        "http:// or https://"
                    }
                )));
            }
            if scheme == "https" && !crate::tls::public_roots_available() {
                return Err(Error::Invalid(format!(
                    "camera url refused: {}",
                    crate::tls::NO_PUBLIC_ROOTS
                )));
            }
            Ok(warning.map(|w| format!("camera url: {w}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: urlguard::Policy = urlguard::Policy {
        allow_loopback: false,
    };

    fn printer(model: &str) -> Printer {
        Printer {
            name: "p".into(),
            ip: Some("10.0.0.5".into()),
            access_code: Some("12345678".into()),
            model: Some(model.into()),
            ..Printer::default()
        }
    }

    fn external(kind: CameraType, url: &str) -> Printer {
        Printer {
            name: "cam".into(),
            camera_url: Some(url.into()),
            camera_type: Some(kind),
            camera_enabled: true,
            ..Printer::default()
        }
    }

    /// The warnings about `rtsp_client` when `p` forces each client.
    fn rtsp_warnings(p: &Printer) -> Vec<Vec<String>> {
        RtspClient::ALL
            .into_iter()
            .map(|rtsp_client| {
                let forced = Printer {
                    rtsp_client,
                    ..p.clone()
                };
                validate(&forced, POLICY)
                    .unwrap()
                    .into_iter()
                    .filter(|w| w.starts_with("rtsp_client"))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_forced_rtsp_client_where_none_reads_the_camera_is_kept_with_a_warning() {
        let idle = [
            (printer("P1S"), "the chamber camera of P1 and A1 printers"),
            (
                external(CameraType::Mjpeg, "http://10.0.0.9/stream"),
                "an external mjpeg camera",
            ),
            (
                external(CameraType::Snapshot, "http://10.0.0.9/snap.jpg"),
                "an external snapshot camera",
            ),
        ];
        for (p, camera) in idle {
            let [auto, native, ffmpeg] = <[Vec<String>; 3]>::try_from(rtsp_warnings(&p)).unwrap();
            assert!(auto.is_empty(), "{auto:?}");
            for (warnings, client) in [(native, "native"), (ffmpeg, "ffmpeg")] {
                assert_eq!(warnings.len(), 1, "{warnings:?}");
                assert!(
                    warnings[0]
                        .starts_with(&format!("rtsp_client {client} has no effect on {camera}:")),
                    "{warnings:?}"
                );
            }
        }
    }

    #[test]
    fn rtsp_cameras_and_ones_not_known_yet_take_any_rtsp_client_quietly() {
        let quiet = [
            printer("X1C"),
            printer("Bambu Lab H2D"),
            external(CameraType::Rtsp, "rtsp://10.0.0.9:8554/stream"),
            external(CameraType::Rtsp, "rtsps://10.0.0.9/stream"),
            // Detected on first use: it may turn out to be RTSPS.
            printer("Mystery"),
            // No camera yet.
            Printer {
                name: "bare".into(),
                ..Printer::default()
            },
        ];
        for p in quiet {
            assert!(
                rtsp_warnings(&p).iter().all(Vec::is_empty),
                "{p:?}: {:?}",
                rtsp_warnings(&p)
            );
        }
    }
}
