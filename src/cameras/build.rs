//! The source that serves a printer's camera, made from its stored
//! settings: the protocol modules (`crate::sources`) get plain values and,
//! for pinning and detection, callbacks into the registry.

use super::{camera_of, Cameras};
use crate::camera::{BuiltIn, Camera, CameraType, PrinterLogin};
use crate::error::{Error, Result};
use crate::gop::Gop;
use crate::registry::Printer;
use crate::source::{Source, CONNECT_TIMEOUT};
use crate::sources::exclusive::Exclusive;
use crate::sources::h264_decode::{Feed, H264Decode};
use crate::sources::{chamber, demo, detect, mjpeg_http, rtsp, rtsp_h264, snapshot_http, tofu};
use std::sync::Arc;

/// The source of printer `p`'s `stream.mp4`: its H.264 passed through
/// from the native RTSP client, with the group of pictures it keeps. For
/// external RTSP(S) cameras and the printers' own RTSPS ones (X1, H2, P2;
/// their certificate checked as for MJPEG), never connected to while the
/// MJPEG stream of the same camera is (see `Exclusive`).
pub fn mp4_for_printer(p: &Printer, cameras: &Arc<Cameras>) -> Result<(Arc<dyn Source>, Arc<Gop>)> {
    let (url, tls) = match camera_of(p) {
        Camera::External {
            kind: CameraType::Rtsp,
            url,
        } => (url, tofu::PrinterTls::Fixed(external_rtsps_tls())),
        Camera::BuiltIn {
            kind: b @ BuiltIn::Rtsps,
            login,
        } => {
            let url = rtsp::bambu_url(&login.host, login.port_for(b), &login.access_code)
                .ok_or_else(|| {
                    Error::Invalid(format!("printer {}: its address makes no camera URL", p.id))
                })?;
            (url, tofu::PrinterTls::Tofu(printer_tofu(p, cameras)?))
        }
        camera => {
            return Err(Error::Invalid(format!(
                "stream.mp4 serves rtsp:// and rtsps:// cameras (external ones, and the \
                 RTSPS camera of X1, H2 and P2 printers) only for now; printer {} has a {} \
                 camera: use camera/stream",
                p.id,
                camera.kind().as_str()
            )))
        }
    };
    let gop = Gop::new();
    let native =
        rtsp_h264::RtspH264::new(url, cameras.settings().url_policy(), Some(tls), gop.clone())
            .with_rotation(p.camera_rotation.into())
            .with_refusal(cameras.refusal(p.id));
    let source = Exclusive::new(Arc::new(native), cameras.lease(p.id), "MP4 stream");
    Ok((Arc::new(source), gop))
}

/// An rtsps camera's certificate is accepted as presented, as a printer's
/// is: such cameras rarely chain to a public CA.
fn external_rtsps_tls() -> Arc<rustls::ClientConfig> {
    crate::tls::client_config(None).0
}

/// The source that serves printer `p`'s camera.
pub fn for_printer(p: &Printer, cameras: &Arc<Cameras>) -> Result<Arc<dyn Source>> {
    let settings = cameras.settings();
    Ok(match camera_of(p) {
        Camera::BuiltIn { kind, login } => built_in(kind, &login, p, cameras)?,
        Camera::Undetected { login } => Arc::new(detecting(&login, p, cameras)?),
        Camera::External { kind, url } => match kind {
            CameraType::Rtsp => {
                let ffmpeg = rtsp::Rtsp::url(
                    url,
                    settings.ffmpeg.clone(),
                    settings.url_policy(),
                    Some(external_rtsps_tls()),
                );
                decoded(ffmpeg_client(ffmpeg, p, cameras), p, cameras)
            }
            CameraType::Usb => Arc::new(rtsp::Rtsp::usb(url, settings.ffmpeg.clone())),
            CameraType::Mjpeg => Arc::new(mjpeg_http::MjpegHttp::new(url, settings.url_policy())),
            CameraType::Snapshot => {
                Arc::new(snapshot_http::SnapshotHttp::new(url, settings.url_policy()))
            }
        },
        Camera::Demo => Arc::new(demo::Demo::new()),
        Camera::Unusable(why) => return Err(Error::Unavailable(why)),
        Camera::None => {
            return Err(Error::Unavailable(
                "this printer has no camera: give it an ip address and access code, or an external camera".into(),
            ))
        }
    })
}

fn built_in(
    b: BuiltIn,
    login: &PrinterLogin,
    p: &Printer,
    cameras: &Arc<Cameras>,
) -> Result<Arc<dyn Source>> {
    Ok(match b {
        BuiltIn::Chamber => Arc::new(chamber_source(login, p, cameras)?),
        BuiltIn::Rtsps => decoded(rtsps_by_ffmpeg(login, p, cameras)?, p, cameras),
    })
}

/// ffmpeg's RTSP client for a printer's RTSPS camera (through the TLS
/// proxy, with the printer's pin).
fn rtsps_by_ffmpeg(
    login: &PrinterLogin,
    p: &Printer,
    cameras: &Arc<Cameras>,
) -> Result<Arc<dyn Source>> {
    let ffmpeg = rtsp::Rtsp::bambu_pinned(
        login.host.clone(),
        login.port_for(BuiltIn::Rtsps),
        login.access_code.clone(),
        printer_tofu(p, cameras)?,
        cameras.settings().ffmpeg.clone(),
        cameras.settings().url_policy(),
    )
    .with_quirks(quirks(p));
    Ok(ffmpeg_client(ffmpeg, p, cameras))
}

/// ffmpeg as the RTSP client: it takes turns with the native session (the
/// camera serves one client).
fn ffmpeg_client(ffmpeg: rtsp::Rtsp, p: &Printer, cameras: &Arc<Cameras>) -> Arc<dyn Source> {
    Arc::new(Exclusive::new(
        Arc::new(ffmpeg),
        cameras.lease(p.id),
        "MJPEG stream",
    ))
}

/// An H.264 camera's MJPEG and snapshots: decoded from the native session
/// that also feeds its `stream.mp4` viewers, or read by `by_ffmpeg` where
/// the printer's `rtsp_client` or the stream asks for it.
fn decoded(by_ffmpeg: Arc<dyn Source>, p: &Printer, cameras: &Arc<Cameras>) -> Arc<dyn Source> {
    let (id, weak) = (p.id, Arc::downgrade(cameras));
    let feed: Feed = Box::new(move || {
        let cameras = weak
            .upgrade()
            .ok_or_else(|| Error::Unavailable("printcam is shutting down".into()))?;
        cameras.mp4_hub(id)
    });
    Arc::new(H264Decode::new(
        feed,
        by_ffmpeg,
        p.rtsp_client,
        cameras.refusal(p.id),
        cameras.settings().ffmpeg.clone(),
    ))
}

/// How ffmpeg must read the printer's stream, by its family in the model
/// table (`camera.rs`).
pub fn quirks(p: &Printer) -> rtsp::Quirks {
    match crate::camera::family(p.model.as_deref()) {
        Some(crate::camera::Family::P2S) => rtsp::Quirks::p2s(),
        _ => rtsp::Quirks::default(),
    }
}

/// A printer of unknown model: both kinds are tried, and the one that
/// answers is stored in the registry.
fn detecting(login: &PrinterLogin, p: &Printer, cameras: &Arc<Cameras>) -> Result<detect::Detect> {
    let at = p.clone();
    let weak = Arc::downgrade(cameras);
    let on_found: detect::OnFound = Box::new(move |kind| {
        if let Some(cameras) = weak.upgrade() {
            cameras.store_detected_camera(&at, kind);
        }
    });
    Ok(detect::Detect::new(
        login.host.clone(),
        detect::Ports {
            rtsps: login.port_for(BuiltIn::Rtsps),
            chamber: login.port_for(BuiltIn::Chamber),
        },
        p.cert_sha256.clone(),
        cameras.settings().url_policy(),
        // ffmpeg's client while detecting: the native session serves
        // printers of a known camera kind.
        [
            rtsps_by_ffmpeg(login, p, cameras)?,
            built_in(BuiltIn::Chamber, login, p, cameras)?,
        ],
        on_found,
    ))
}

/// A P1/A1-style printer's port-6000 camera; the certificate it shows on
/// its first good connection is pinned in the registry.
fn chamber_source(
    login: &PrinterLogin,
    p: &Printer,
    cameras: &Arc<Cameras>,
) -> Result<chamber::Chamber> {
    let chamber = chamber::Chamber::new(
        login.host.clone(),
        login.port_for(BuiltIn::Chamber),
        login.access_code.clone(),
        None,
        None,
        cameras.settings().url_policy(),
    );
    Ok(chamber
        .with_tofu(printer_tofu(p, cameras)?)
        .with_timeouts(CONNECT_TIMEOUT, cameras.settings().camera_quiet_timeout))
}

/// A printer's certificate check: a certificate a Bambu CA issued to its
/// serial (when the serial is known), else its pin, or the first
/// certificate of a connection that delivers a frame. What is accepted is
/// stored in the registry.
/// One per printer (`Cameras::printer_trust`): a source made before
/// another pinned a certificate must not trust a different one.
fn printer_tofu(p: &Printer, cameras: &Arc<Cameras>) -> Result<Arc<tofu::Tofu>> {
    cameras.printer_trust(p, || new_printer_tofu(p, cameras))
}

fn new_printer_tofu(p: &Printer, cameras: &Arc<Cameras>) -> Result<tofu::Tofu> {
    let pin = stored_pin(p);
    let identity = match p.serial.as_deref().map(str::trim) {
        Some(serial) if !serial.is_empty() => Some(crate::tls::Identity {
            serial: serial.to_string(),
            cas: printer_cas(cameras.settings())?,
        }),
        _ => None,
    };
    Ok(tofu::Tofu::with_identity(
        pin,
        identity,
        Some(pin_in_registry(p, cameras)),
    ))
}

/// Bambu's CAs, and those of `--printer-ca`.
fn printer_cas(settings: &crate::config::Settings) -> Result<Arc<crate::bambu_ca::CaSet>> {
    let Some(path) = &settings.printer_ca else {
        return Ok(Arc::new(crate::bambu_ca::CaSet::bambu()));
    };
    let bad = |why: String| Error::Unavailable(format!("--printer-ca {}: {why}", path.display()));
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    crate::bambu_ca::CaSet::bambu_and(&pem)
        .map(Arc::new)
        .map_err(bad)
}

/// The pin the registry holds for `p`.
pub fn stored_pin(p: &Printer) -> Option<tofu::Pin> {
    p.cert_sha256.clone().map(|sha256| tofu::Pin {
        sha256,
        verified: p.cert_verified,
    })
}

fn pin_in_registry(p: &Printer, cameras: &Arc<Cameras>) -> tofu::OnPin {
    // The settings connected with: a pin seen at an old address after a
    // change must not be stored for the new one.
    let at = p.clone();
    // Weak: the registry outlives hubs, and a strong link would be a cycle.
    let weak = Arc::downgrade(cameras);
    Arc::new(move |sha256: &str, verified: bool| {
        if let Some(cameras) = weak.upgrade() {
            cameras.pin_cert(&at, sha256, verified);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_half_configured_printer_is_refused_before_any_connection() {
        let registry = Arc::new(crate::registry::Registry::open_in_memory().unwrap());
        let cameras = Cameras::new(registry, crate::config::Settings::default());
        let no_code = Printer {
            id: 7,
            name: "p1s".into(),
            ip: Some("10.0.0.5".into()),
            model: Some("P1S".into()),
            ..Printer::default()
        };
        let e = for_printer(&no_code, &cameras).err().expect("refused");
        assert!(e.message().contains("printer 7 has no access-code"), "{e}");
        let no_ip = Printer {
            ip: Some(String::new()),
            access_code: Some("12345678".into()),
            ..no_code
        };
        let e = for_printer(&no_ip, &cameras).err().expect("refused");
        assert!(e.message().contains("has no ip"), "{e}");
    }

    #[test]
    fn a_printers_sources_share_one_trust_while_its_pin_and_address_hold() {
        let registry = Arc::new(crate::registry::Registry::open_in_memory().unwrap());
        let cameras = Cameras::new(registry, crate::config::Settings::default());
        let x1c = Printer {
            id: 4,
            ip: Some("10.0.0.5".into()),
            access_code: Some("12345678".into()),
            model: Some("X1C".into()),
            ..Printer::default()
        };
        let a = printer_tofu(&x1c, &cameras).unwrap();
        assert!(Arc::ptr_eq(&a, &printer_tofu(&x1c, &cameras).unwrap()));
        // The registry's pin is not the one this trust holds (forgotten,
        // or written by another process): a new trust.
        let pinned = Printer {
            cert_sha256: Some("ab".repeat(32)),
            ..x1c.clone()
        };
        let b = printer_tofu(&pinned, &cameras).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(b.pin(), stored_pin(&pinned));
        let moved = Printer {
            ip: Some("10.0.0.6".into()),
            ..pinned.clone()
        };
        assert!(!Arc::ptr_eq(&b, &printer_tofu(&moved, &cameras).unwrap()));
    }

    #[test]
    fn p2s_printers_by_name_or_code_get_the_p2s_quirks() {
        let of = |model: &str| {
            quirks(&Printer {
                model: Some(model.into()),
                ..Printer::default()
            })
        };
        for model in ["P2S", "p2s", "Bambu Lab P2S", "3DPrinter-P2S", "N7"] {
            assert_eq!(of(model), rtsp::Quirks::p2s(), "{model}");
        }
        for model in ["X1C", "Bambu Lab H2D", "P1S", "N2S", ""] {
            assert_eq!(of(model), rtsp::Quirks::default(), "{model}");
        }
        assert_eq!(quirks(&Printer::default()), rtsp::Quirks::default());
    }
}
