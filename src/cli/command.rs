//! What a command line comes to (`Command`), the settings flags that
//! override the environment (`Overrides`) and why a command did not
//! succeed (`CliError`).

use super::help::Topic;
use crate::config::Settings;
use crate::error::Error;
use crate::redact;
use crate::registry::{Printer, PrinterPatch};
use std::path::PathBuf;
use std::time::Duration;

/// Exit code of a runtime failure.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code of a usage error.
pub const EXIT_USAGE: i32 = 2;

/// What the user asked for, fully parsed and checked for form (not content:
/// content is checked by `Cameras` when the command runs).
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Print a help text to stdout.
    Help(Topic),
    Version,
    Serve(Overrides),
    PrinterAdd(Overrides, Box<Printer>),
    PrinterList {
        opts: Overrides,
        json: bool,
    },
    PrinterShow(Overrides, i64),
    PrinterSet(Overrides, i64, Box<Change>),
    PrinterRemove(Overrides, i64),
    PrinterForgetCert(Overrides, i64),
    /// `output` None or `-` means stdout.
    Snapshot {
        opts: Overrides,
        id: i64,
        output: Option<PathBuf>,
    },
    Test(Overrides, i64),
    UsbCameras,
}

/// A `PrinterPatch` that can be debug-printed without its access code.
#[derive(Clone, PartialEq, Eq)]
pub struct Change(pub PrinterPatch);

impl std::fmt::Debug for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.0;
        f.debug_struct("PrinterPatch")
            .field("name", &p.name)
            .field("ip", &p.ip)
            .field(
                "access_code",
                &p.access_code.as_ref().map(|c| c.as_ref().map(|_| "****")),
            )
            .field("model", &p.model)
            .field("serial", &p.serial)
            .field("camera_port", &p.camera_port)
            .field(
                "camera_url",
                &p.camera_url
                    .as_ref()
                    .map(|u| u.as_deref().map(redact::url_passwords)),
            )
            .field("camera_type", &p.camera_type)
            .field("camera_enabled", &p.camera_enabled)
            .finish()
    }
}

/// Settings given as flags; they win over the environment. Its `Debug`
/// masks the token.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub db: Option<PathBuf>,
    pub listen: Option<String>,
    pub grace: Option<Duration>,
    pub allow_loopback: bool,
    pub ffmpeg: Option<PathBuf>,
    pub demo: bool,
    pub token: Option<String>,
    pub cors_origin: Option<String>,
    pub max_viewers: Option<usize>,
    pub max_viewers_per_camera: Option<usize>,
    pub write_timeout: Option<Duration>,
    pub max_connections_per_client: Option<usize>,
    pub allowed_hosts: Option<Vec<String>>,
    pub camera_quiet_timeout: Option<Duration>,
    pub printer_ca: Option<PathBuf>,
}

impl std::fmt::Debug for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overrides")
            .field("db", &self.db)
            .field("listen", &self.listen)
            .field("grace", &self.grace)
            .field("allow_loopback", &self.allow_loopback)
            .field("ffmpeg", &self.ffmpeg)
            .field("demo", &self.demo)
            .field("token", &crate::config::mask(&self.token))
            .field("cors_origin", &self.cors_origin)
            .field("max_viewers", &self.max_viewers)
            .field("max_viewers_per_camera", &self.max_viewers_per_camera)
            .field("write_timeout", &self.write_timeout)
            .field(
                "max_connections_per_client",
                &self.max_connections_per_client,
            )
            .field("allowed_hosts", &self.allowed_hosts)
            .field("camera_quiet_timeout", &self.camera_quiet_timeout)
            .field("printer_ca", &self.printer_ca)
            .finish()
    }
}

impl Overrides {
    pub fn apply(&self, s: &mut Settings) {
        if let Some(db) = &self.db {
            s.db = db.clone();
        }
        if let Some(listen) = &self.listen {
            s.listen = listen.clone();
        }
        if let Some(grace) = self.grace {
            s.grace = grace;
        }
        if let Some(ffmpeg) = &self.ffmpeg {
            s.ffmpeg = Some(ffmpeg.clone());
        }
        if let Some(token) = &self.token {
            s.token = Some(token.clone());
        }
        if let Some(origin) = &self.cors_origin {
            s.cors_origin = Some(origin.clone());
        }
        if let Some(n) = self.max_viewers {
            s.max_viewers = n;
        }
        if let Some(n) = self.max_viewers_per_camera {
            s.max_viewers_per_camera = n;
        }
        if let Some(t) = self.write_timeout {
            s.write_timeout = t;
        }
        if let Some(n) = self.max_connections_per_client {
            s.max_connections_per_client = n;
        }
        if let Some(hosts) = &self.allowed_hosts {
            s.allowed_hosts = hosts.clone();
        }
        if let Some(t) = self.camera_quiet_timeout {
            s.camera_quiet_timeout = t;
        }
        if let Some(ca) = &self.printer_ca {
            s.printer_ca = Some(ca.clone());
        }
        s.allow_loopback |= self.allow_loopback;
        s.demo |= self.demo;
    }
}

/// Why a command did not succeed; `run` prints it and picks the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// Malformed command line (exit 2).
    Usage(String),
    /// The command ran and failed (exit 1).
    Failed(String),
    /// Not enough to go on: print this help to stderr (exit 2).
    Help(Topic),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Failed(_) => EXIT_FAILURE,
            CliError::Usage(_) | CliError::Help(_) => EXIT_USAGE,
        }
    }
}

impl From<Error> for CliError {
    /// Input printcam refuses (a missing access code, a bad URL) is a usage
    /// error like a missing flag: exit 2. What failed while running is 1.
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(m) => CliError::Usage(m),
            other => CliError::Failed(other.message().to_string()),
        }
    }
}

// Here, not in help.rs: the help texts need nothing of the errors.
impl Topic {
    pub(super) fn usage(self, msg: impl std::fmt::Display) -> CliError {
        let name = self.name();
        if name.is_empty() {
            CliError::Usage(format!("{msg} (see 'printcam --help')"))
        } else {
            CliError::Usage(format!("{name}: {msg} (see 'printcam {name} --help')"))
        }
    }
}
