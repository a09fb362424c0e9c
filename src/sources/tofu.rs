//! Trust for printers' certificates, shared by the chamber (port 6000) and
//! RTSPS (port 322) cameras. A certificate that a Bambu CA issued to the
//! printer's serial is trusted and pinned, also when it replaces an earlier
//! one; any other is trusted on first use: the certificate of the first
//! connection that delivered a frame (so the device also knew the access
//! code) is pinned, and later connections must show the same one.
//!
//! The printer's TLS version is remembered here too: firmware that never
//! answers a TLS 1.3 hello gets TLS 1.2 only from then on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rustls::ClientConfig;

use crate::tls::{self, Dialer, Identity, PinRecorder};

/// How a camera's certificate is checked, for the sources that take
/// either (ffmpeg's TLS proxy, the native RTSP client).
pub enum PrinterTls {
    /// As the given client configuration says.
    Fixed(Arc<ClientConfig>),
    /// Trust on first use, as for the chamber camera; one printer's sources
    /// share it, so what one pins the others hold to at once.
    Tofu(Arc<Tofu>),
}

impl PrinterTls {
    /// The settings of the next connection, and its pin check when the
    /// certificate is pinned on first use.
    pub fn check(&self) -> (Dialer, Option<PinCheck>) {
        match self {
            PrinterTls::Fixed(config) => (Dialer::fixed(Arc::clone(config)), None),
            PrinterTls::Tofu(tofu) => {
                let check = tofu.check();
                (check.dialer.clone(), Some(check))
            }
        }
    }

    /// Called once the connection of `check` has delivered a frame (see
    /// `Tofu::confirm`).
    pub fn confirm(&self, check: &PinCheck, what: &str) {
        if let PrinterTls::Tofu(tofu) = self {
            tofu.confirm(check, what);
        }
    }
}

/// Called with the certificate fingerprint to pin, and whether a Bambu CA
/// verified it, after a useful connection showed a certificate (or a trust)
/// other than the one pinned.
pub type OnPin = Arc<dyn Fn(&str, bool) + Send + Sync>;

/// A pinned certificate and how it came to be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub sha256: String,
    /// True: a Bambu CA issued it to the printer's serial.
    pub verified: bool,
}

/// One printer's pin, as it stands for this source.
pub struct Tofu {
    /// Updated after each useful connection so a reconnect does not trust
    /// a different certificate even before the registry has it.
    pin: Mutex<Option<Pin>>,
    identity: Option<Identity>,
    on_pin: Option<OnPin>,
    tls12_only: Arc<AtomicBool>,
}

/// The TLS settings of one connection, and what its handshake saw.
pub struct PinCheck {
    pub dialer: Dialer,
    recorder: Arc<PinRecorder>,
    /// The pin the connection was checked against, if any.
    pinned: Option<Pin>,
}

impl PinCheck {
    /// The "certificate changed" message if the handshake was refused because
    /// the certificate no longer matches the pin.
    pub fn refusal(&self) -> Option<String> {
        self.recorder.refusal()
    }
}

impl Tofu {
    /// Trust on first use only.
    pub fn new(pin: Option<String>, on_pin: Option<OnPin>) -> Tofu {
        let pin = pin.map(|sha256| Pin {
            sha256,
            verified: false,
        });
        Tofu::with_identity(pin, None, on_pin)
    }

    /// With `identity`, a certificate a Bambu CA issued to the serial is
    /// trusted as well.
    pub fn with_identity(
        pin: Option<Pin>,
        identity: Option<Identity>,
        on_pin: Option<OnPin>,
    ) -> Tofu {
        Tofu {
            pin: Mutex::new(pin),
            identity,
            on_pin,
            tls12_only: Arc::default(),
        }
    }

    /// The pin as it stands: the one given, or the one last confirmed.
    pub fn pin(&self) -> Option<Pin> {
        match self.pin.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// True once the printer has needed TLS 1.2 only.
    pub fn tls12_only(&self) -> bool {
        self.tls12_only.load(Ordering::SeqCst)
    }

    /// The client settings for the next connection: the pin if there is one.
    pub fn check(&self) -> PinCheck {
        let pinned = self.pin();
        let (dialer, recorder) = tls::printer_dialer(
            pinned.as_ref().map(|p| p.sha256.clone()),
            self.identity.clone(),
            Arc::clone(&self.tls12_only),
        );
        PinCheck {
            dialer,
            recorder,
            pinned,
        }
    }

    /// Called once the connection of `check` has delivered a frame: pins the
    /// certificate it saw, with its trust, unless exactly that is pinned
    /// already (the verifier let nothing else through). `what` names the
    /// camera in the log.
    pub fn confirm(&self, check: &PinCheck, what: &str) {
        let Some(sha256) = check.recorder.seen() else {
            return;
        };
        let seen = Pin {
            sha256,
            verified: check.recorder.verified(),
        };
        if check.pinned.as_ref() == Some(&seen) {
            return;
        }
        match self.pin.lock() {
            Ok(mut g) => *g = Some(seen.clone()),
            Err(p) => *p.into_inner() = Some(seen.clone()),
        }
        let how = if seen.verified {
            "verified by Bambu CA"
        } else {
            "pinned on first use"
        };
        log::info!(
            "{what}: pinned the printer's certificate (SHA-256 {}, {how})",
            seen.sha256
        );
        if let Some(cb) = &self.on_pin {
            cb(&seen.sha256, seen.verified);
        }
    }
}
