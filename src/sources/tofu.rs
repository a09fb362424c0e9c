//! Trust on first use for printers' certificates, shared by the chamber
//! (port 6000) and RTSPS (port 322) cameras: the certificate of the first
//! connection that delivered a frame (so the device also knew the access
//! code) is pinned; later connections must show the same one.

use std::sync::{Arc, Mutex};

use rustls::ClientConfig;

use crate::tls::{self, PinRecorder};

/// Called with the certificate fingerprint to pin after the first useful
/// connection to a printer that had no pin yet.
pub type OnPin = Arc<dyn Fn(&str) + Send + Sync>;

/// One printer's pin, as it stands for this source.
pub struct Tofu {
    /// Set after the first useful connection so a reconnect does not trust
    /// a different certificate even before the registry has it.
    pin: Mutex<Option<String>>,
    on_pin: Option<OnPin>,
}

/// The TLS settings of one connection, and what its handshake saw.
pub struct PinCheck {
    pub config: Arc<ClientConfig>,
    recorder: Arc<PinRecorder>,
    /// False when the connection accepts any certificate (nothing pinned yet).
    enforced: bool,
}

impl PinCheck {
    /// The "certificate changed" message if the handshake was refused because
    /// the certificate no longer matches the pin.
    pub fn refusal(&self) -> Option<String> {
        self.recorder.refusal()
    }
}

impl Tofu {
    pub fn new(pin: Option<String>, on_pin: Option<OnPin>) -> Tofu {
        Tofu {
            pin: Mutex::new(pin),
            on_pin,
        }
    }

    fn pin(&self) -> Option<String> {
        match self.pin.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The client settings for the next connection: the pin if there is one.
    pub fn check(&self) -> PinCheck {
        let pin = self.pin();
        let enforced = pin.is_some();
        let (config, recorder) = tls::client_config(pin);
        PinCheck {
            config,
            recorder,
            enforced,
        }
    }

    /// Called once the connection of `check` has delivered a frame: pins the
    /// certificate it saw unless one was pinned already. `what` names the
    /// camera in the log.
    pub fn confirm(&self, check: &PinCheck, what: &str) {
        if check.enforced {
            return;
        }
        let Some(fingerprint) = check.recorder.seen() else {
            return;
        };
        match self.pin.lock() {
            Ok(mut g) => *g = Some(fingerprint.clone()),
            Err(p) => *p.into_inner() = Some(fingerprint.clone()),
        }
        log::info!("{what}: pinned the printer's certificate (SHA-256 {fingerprint})");
        if let Some(cb) = &self.on_pin {
            cb(&fingerprint);
        }
    }
}
