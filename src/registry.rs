//! The printer registry: one SQLite file. (STUB: being written; API fixed.)

use crate::camera::CameraType;
use crate::error::Result;
use std::fmt;
use std::path::Path;

/// A registered printer and its camera settings.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Printer {
    pub id: i64,
    pub name: String,
    /// Bambu fields: the built-in camera is used when no external camera is enabled.
    pub ip: Option<String>,
    pub access_code: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    /// Replaces the built-in camera's default port (port forwarding, tests).
    pub camera_port: Option<u16>,
    /// External camera: served instead of the built-in one when enabled.
    pub camera_url: Option<String>,
    pub camera_type: Option<CameraType>,
    pub camera_enabled: bool,
    /// SHA-256 (lower-case hex) of the printer's TLS certificate, pinned on
    /// first successful connection.
    pub cert_sha256: Option<String>,
}

impl fmt::Debug for Printer {
    /// Never prints the access code, and hides URL passwords.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Printer")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("ip", &self.ip)
            .field("access_code", &self.access_code.as_ref().map(|_| "****"))
            .field("model", &self.model)
            .field("serial", &self.serial)
            .field("camera_port", &self.camera_port)
            .field(
                "camera_url",
                &self.camera_url.as_deref().map(crate::redact::url_passwords),
            )
            .field("camera_type", &self.camera_type)
            .field("camera_enabled", &self.camera_enabled)
            .field("cert_sha256", &self.cert_sha256)
            .finish()
    }
}

/// A change to a printer: `None` leaves a field as it is; `Some(None)` clears
/// an optional field.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PrinterPatch {
    pub name: Option<String>,
    pub ip: Option<Option<String>>,
    pub access_code: Option<Option<String>>,
    pub model: Option<Option<String>>,
    pub serial: Option<Option<String>>,
    pub camera_port: Option<Option<u16>>,
    pub camera_url: Option<Option<String>>,
    pub camera_type: Option<Option<CameraType>>,
    pub camera_enabled: Option<bool>,
}

impl PrinterPatch {
    /// The printer with this patch applied (the id is kept).
    pub fn apply(&self, p: &Printer) -> Printer {
        let mut out = p.clone();
        if let Some(v) = &self.name {
            out.name = v.clone();
        }
        if let Some(v) = &self.ip {
            out.ip = v.clone();
        }
        if let Some(v) = &self.access_code {
            out.access_code = v.clone();
        }
        if let Some(v) = &self.model {
            out.model = v.clone();
        }
        if let Some(v) = &self.serial {
            out.serial = v.clone();
        }
        if let Some(v) = self.camera_port {
            out.camera_port = v;
        }
        if let Some(v) = &self.camera_url {
            out.camera_url = v.clone();
        }
        if let Some(v) = self.camera_type {
            out.camera_type = v;
        }
        if let Some(v) = self.camera_enabled {
            out.camera_enabled = v;
        }
        out
    }
}

/// The database. Safe to share between threads.
pub struct Registry {
    _private: (),
}

impl Registry {
    /// Opens (creating with mode 0600 on first run) and migrates the database.
    pub fn open(_path: &Path) -> Result<Registry> {
        todo!()
    }

    /// A private in-memory database, for tests and `--demo` without a file.
    pub fn open_in_memory() -> Result<Registry> {
        todo!()
    }

    pub fn list(&self) -> Result<Vec<Printer>> {
        todo!()
    }

    pub fn get(&self, _id: i64) -> Result<Option<Printer>> {
        todo!()
    }

    /// Stores a new printer (its `id` is ignored) and returns the new id.
    pub fn add(&self, _p: &Printer) -> Result<i64> {
        todo!()
    }

    /// Replaces every field of printer `p.id`. False if there is no such printer.
    pub fn update(&self, _p: &Printer) -> Result<bool> {
        todo!()
    }

    /// False if there was no such printer.
    pub fn remove(&self, _id: i64) -> Result<bool> {
        todo!()
    }

    /// Pins (or with None forgets) printer `id`'s certificate fingerprint.
    pub fn set_cert_pin(&self, _id: i64, _sha256: Option<&str>) -> Result<bool> {
        todo!()
    }
}
