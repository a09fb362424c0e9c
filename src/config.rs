//! Settings with their defaults; the environment fills them, flags override.

use std::path::PathBuf;
use std::time::Duration;

/// Everything a running printcam can be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Address the HTTP server listens on.
    pub listen: String,
    /// The registry file.
    pub db: PathBuf,
    /// How long an upstream stays open after its last consumer leaves.
    pub grace: Duration,
    /// Allow camera URLs that point at this box.
    pub allow_loopback: bool,
    /// ffmpeg to run; None means search PATH and the usual places.
    pub ffmpeg: Option<PathBuf>,
    /// Serve the built-in demo camera (printer id 0).
    pub demo: bool,
    /// How long a cold snapshot or test waits for a first frame.
    pub snapshot_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "0.0.0.0:8080".to_string(),
            db: PathBuf::from("printcam.db"),
            grace: Duration::from_secs(5),
            allow_loopback: false,
            ffmpeg: None,
            demo: false,
            snapshot_timeout: Duration::from_secs(10),
        }
    }
}

impl Settings {
    /// Defaults overridden by `PRINTCAM_*` variables, read through `var` so
    /// tests need not touch the process environment.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let mut s = Settings::default();
        if let Some(v) = var("PRINTCAM_LISTEN").filter(|v| !v.is_empty()) {
            s.listen = v;
        }
        if let Some(v) = var("PRINTCAM_DB").filter(|v| !v.is_empty()) {
            s.db = PathBuf::from(v);
        }
        if let Some(v) = var("PRINTCAM_ALLOW_LOOPBACK") {
            s.allow_loopback = parse_bool("PRINTCAM_ALLOW_LOOPBACK", &v)?;
        }
        if let Some(v) = var("PRINTCAM_FFMPEG").filter(|v| !v.is_empty()) {
            s.ffmpeg = Some(PathBuf::from(v));
        }
        if let Some(v) = var("PRINTCAM_GRACE").filter(|v| !v.is_empty()) {
            s.grace = parse_secs("PRINTCAM_GRACE", &v)?;
        }
        Ok(s)
    }

    pub fn url_policy(&self) -> crate::urlguard::Policy {
        crate::urlguard::Policy {
            allow_loopback: self.allow_loopback,
        }
    }
}

/// `1/true/yes/on` or `0/false/no/off`, any case; `what` names the setting in the error.
pub fn parse_bool(what: &str, v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("{what}: expected 1 or 0, got {v:?}")),
    }
}

/// Seconds as a decimal number (0 to one day); `what` names the setting in the error.
pub fn parse_secs(what: &str, v: &str) -> Result<Duration, String> {
    let secs: f64 = v
        .trim()
        .parse()
        .map_err(|_| format!("{what}: expected a number of seconds, got {v:?}"))?;
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("{what}: {secs} is outside 0 to 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_defaults() {
        let env = |k: &str| match k {
            "PRINTCAM_LISTEN" => Some("127.0.0.1:9000".to_string()),
            "PRINTCAM_ALLOW_LOOPBACK" => Some("1".to_string()),
            "PRINTCAM_GRACE" => Some("0.5".to_string()),
            _ => None,
        };
        let s = Settings::from_env(env).unwrap();
        assert_eq!(s.listen, "127.0.0.1:9000");
        assert!(s.allow_loopback);
        assert_eq!(s.grace, Duration::from_millis(500));
        assert_eq!(s.db, PathBuf::from("printcam.db"));
    }

    #[test]
    fn bad_values_are_refused_with_the_name() {
        let err = Settings::from_env(|k| (k == "PRINTCAM_GRACE").then(|| "soon".to_string()))
            .unwrap_err();
        assert!(err.contains("PRINTCAM_GRACE"), "{err}");
        assert!(parse_bool("X", "maybe").is_err());
        assert!(parse_secs("X", "-1").is_err());
        assert!(parse_secs("X", "NaN").is_err());
    }
}
