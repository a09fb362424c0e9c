//! One module per camera protocol; each implements `crate::source::Source`.

pub mod chamber;
pub mod demo;
pub mod detect;
mod http_client;
pub mod mjpeg_http;
pub mod rtsp;
pub mod rtsp_native;
pub mod snapshot_http;
pub mod tofu;

use crate::camera::{BuiltIn, CameraType};
use crate::cameras::{CameraKind, Cameras};
use crate::error::{Error, Result};
use crate::registry::Printer;
use crate::source::{Source, SourceError};
use crate::urlguard::{self, Policy, Target};
use std::sync::Arc;

/// The source that serves printer `p`'s camera.
pub fn for_printer(p: &Printer, cameras: &Arc<Cameras>) -> Result<Arc<dyn Source>> {
    match CameraKind::of(p) {
        CameraKind::BuiltIn(b) => Ok(built_in(b, p, cameras)),
        CameraKind::Undetected => Ok(Arc::new(detecting(p, cameras))),
        CameraKind::External(CameraType::Rtsp) => {
            // An rtsps camera's certificate is accepted as presented, as a
            // printer's is: such cameras rarely chain to a public CA.
            let (tls, _) = crate::tls::client_config(None);
            Ok(Arc::new(rtsp::Rtsp::url(
                external_url(p),
                cameras.settings().ffmpeg.clone(),
                cameras.settings().url_policy(),
                Some(tls),
            )))
        }
        CameraKind::External(CameraType::Usb) => Ok(Arc::new(rtsp::Rtsp::usb(
            external_url(p),
            cameras.settings().ffmpeg.clone(),
        ))),
        CameraKind::Demo => Ok(Arc::new(demo::Demo::new())),
        CameraKind::External(CameraType::Mjpeg) => Ok(Arc::new(mjpeg_http::MjpegHttp::new(
            external_url(p),
            cameras.settings().url_policy(),
        ))),
        CameraKind::External(CameraType::Snapshot) => Ok(Arc::new(
            snapshot_http::SnapshotHttp::new(external_url(p), cameras.settings().url_policy()),
        )),
        CameraKind::None => Err(Error::Unavailable(
            "this printer has no camera: give it an ip address and access code, or an external camera".into(),
        )),
    }
}

fn built_in(b: BuiltIn, p: &Printer, cameras: &Arc<Cameras>) -> Arc<dyn Source> {
    match b {
        BuiltIn::Chamber => Arc::new(chamber_source(p, cameras)),
        BuiltIn::Rtsps => Arc::new(rtsp::Rtsp::bambu_pinned(
            p.ip.clone().unwrap_or_default(),
            camera_port(b, p),
            p.access_code.clone().unwrap_or_default(),
            printer_tofu(p, cameras),
            cameras.settings().ffmpeg.clone(),
            cameras.settings().url_policy(),
        )),
    }
}

/// The port of a printer's camera of kind `b`: the configured one, else
/// that kind's default.
fn camera_port(b: BuiltIn, p: &Printer) -> u16 {
    p.camera_port.unwrap_or(b.default_port())
}

/// A printer of unknown model: both kinds are tried, and the one that
/// answers is stored in the registry.
fn detecting(p: &Printer, cameras: &Arc<Cameras>) -> detect::Detect {
    let at = p.clone();
    let weak = Arc::downgrade(cameras);
    let on_found: detect::OnFound = Box::new(move |kind| {
        if let Some(cameras) = weak.upgrade() {
            cameras.store_detected_camera(&at, kind);
        }
    });
    detect::Detect::new(
        p.ip.clone().unwrap_or_default(),
        detect::Ports {
            rtsps: camera_port(BuiltIn::Rtsps, p),
            chamber: camera_port(BuiltIn::Chamber, p),
        },
        p.cert_sha256.clone(),
        cameras.settings().url_policy(),
        [
            built_in(BuiltIn::Rtsps, p, cameras),
            built_in(BuiltIn::Chamber, p, cameras),
        ],
        on_found,
    )
}

/// `host:port`, an IPv6 address in brackets; for messages.
pub fn label(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A P1/A1-style printer's port-6000 camera; the certificate it shows on
/// its first good connection is pinned in the registry.
fn chamber_source(p: &Printer, cameras: &Arc<Cameras>) -> chamber::Chamber {
    chamber::Chamber::new(
        p.ip.clone().unwrap_or_default(),
        camera_port(BuiltIn::Chamber, p),
        p.access_code.clone().unwrap_or_default(),
        p.cert_sha256.clone(),
        Some(pin_in_registry(p, cameras)),
        cameras.settings().url_policy(),
    )
}

/// A printer's certificate check: its pin, or the first certificate of a
/// connection that delivers a frame, which is then stored in the registry.
fn printer_tofu(p: &Printer, cameras: &Arc<Cameras>) -> tofu::Tofu {
    tofu::Tofu::new(p.cert_sha256.clone(), Some(pin_in_registry(p, cameras)))
}

fn pin_in_registry(p: &Printer, cameras: &Arc<Cameras>) -> tofu::OnPin {
    // The settings connected with: a pin seen at an old address after a
    // change must not be stored for the new one.
    let at = p.clone();
    // Weak: the registry outlives hubs, and a strong link would be a cycle.
    let weak = Arc::downgrade(cameras);
    Arc::new(move |sha256: &str| {
        if let Some(cameras) = weak.upgrade() {
            cameras.pin_cert(&at, sha256);
        }
    })
}

fn external_url(p: &Printer) -> String {
    p.camera_url.clone().unwrap_or_default()
}

/// A printer's address, checked right before connecting to it: a refused
/// text cannot become acceptable (fatal), a lookup may succeed later.
pub(crate) fn printer_target(
    host: &str,
    port: u16,
    policy: Policy,
) -> std::result::Result<Target, SourceError> {
    let refused = |why: String| format!("printer address refused: {why}");
    urlguard::check_host_text(host, policy).map_err(|why| SourceError::fatal(refused(why)))?;
    urlguard::check_host(host, port, policy).map_err(|why| SourceError::transient(refused(why)))
}
