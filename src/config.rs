//! Settings with their defaults; the environment fills them, flags override.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything a running printcam can be told. Its `Debug` masks the token.
#[derive(Clone, PartialEq, Eq)]
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
    /// When set, every endpoint but `/healthz` asks for it.
    pub token: Option<String>,
    /// Sent as `Access-Control-Allow-Origin`; None sends no CORS header.
    pub cors_origin: Option<String>,
    /// Which client addresses count as this box, allowed to change things
    /// when there is no token. None: every loopback address; Some: exactly
    /// these (tests use it to play a remote client on loopback).
    pub local_clients: Option<Vec<IpAddr>>,
    /// Streams open at once, over all cameras; more get a 503.
    pub max_viewers: usize,
    /// Streams open at once of one camera; more get a 503.
    pub max_viewers_per_camera: usize,
    /// How long a write to a client may block: a viewer whose socket takes
    /// no data is dropped after this.
    pub write_timeout: Duration,
    /// Connections one client address (an IPv6 /64) may hold at once, so
    /// one client cannot take every place; a reverse proxy in front needs
    /// more.
    pub max_connections_per_client: usize,
    /// Host names, beside IP literals, `localhost` and this machine's own
    /// name, that a change may be addressed to (see `http::access`): what
    /// stops a DNS-rebinding page from changing printers.
    pub allowed_hosts: Vec<String>,
    /// How long a printer's chamber camera may send no frame before it is
    /// reconnected (P1/A1 cameras go quiet for many seconds).
    pub camera_quiet_timeout: Duration,
    /// A PEM file of further CA certificates printers' certificates are
    /// checked against, beside Bambu's own (a device CA Bambu adds later).
    pub printer_ca: Option<PathBuf>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("db", &self.db)
            .field("grace", &self.grace)
            .field("allow_loopback", &self.allow_loopback)
            .field("ffmpeg", &self.ffmpeg)
            .field("demo", &self.demo)
            .field("snapshot_timeout", &self.snapshot_timeout)
            .field("token", &mask(&self.token))
            .field("cors_origin", &self.cors_origin)
            .field("local_clients", &self.local_clients)
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

/// A secret as `Debug` may show it: whether it is set, never its value.
pub fn mask(secret: &Option<String>) -> Option<&'static str> {
    secret.as_ref().map(|_| "****")
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
            token: None,
            cors_origin: None,
            local_clients: None,
            // Measured (README, Configuration): a stream costs one thread
            // and about 30 KB of memory, frames being shared, not copied.
            // 100 streams fit a 64 MB router; 25 of one camera let a class
            // or a workshop watch the same print.
            max_viewers: 100,
            max_viewers_per_camera: 25,
            write_timeout: Duration::from_secs(10),
            // One browser opens at most 6 connections to a host; 32 leaves
            // room for several tabs and scripts behind one address.
            max_connections_per_client: 32,
            allowed_hosts: Vec::new(),
            camera_quiet_timeout: crate::sources::chamber::DEFAULT_QUIET_TIMEOUT,
            printer_ca: None,
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
        if let Some(v) = var("PRINTCAM_TOKEN").filter(|v| !v.is_empty()) {
            s.token = Some(parse_token("PRINTCAM_TOKEN", &v)?);
        }
        if let Some(v) = var("PRINTCAM_CORS_ORIGIN").filter(|v| !v.is_empty()) {
            s.cors_origin = Some(parse_origin("PRINTCAM_CORS_ORIGIN", &v)?);
        }
        if let Some(v) = var("PRINTCAM_MAX_VIEWERS").filter(|v| !v.is_empty()) {
            s.max_viewers = parse_count("PRINTCAM_MAX_VIEWERS", &v)?;
        }
        if let Some(v) = var("PRINTCAM_MAX_VIEWERS_PER_CAMERA").filter(|v| !v.is_empty()) {
            s.max_viewers_per_camera = parse_count("PRINTCAM_MAX_VIEWERS_PER_CAMERA", &v)?;
        }
        if let Some(v) = var("PRINTCAM_WRITE_TIMEOUT").filter(|v| !v.is_empty()) {
            s.write_timeout = parse_timeout("PRINTCAM_WRITE_TIMEOUT", &v)?;
        }
        if let Some(v) = var("PRINTCAM_MAX_CONNECTIONS_PER_CLIENT").filter(|v| !v.is_empty()) {
            s.max_connections_per_client = parse_count("PRINTCAM_MAX_CONNECTIONS_PER_CLIENT", &v)?;
        }
        if let Some(v) = var("PRINTCAM_ALLOW_HOSTS").filter(|v| !v.is_empty()) {
            s.allowed_hosts = parse_hosts("PRINTCAM_ALLOW_HOSTS", &v)?;
        }
        if let Some(v) = var("PRINTCAM_CAMERA_QUIET_TIMEOUT").filter(|v| !v.is_empty()) {
            s.camera_quiet_timeout = parse_timeout("PRINTCAM_CAMERA_QUIET_TIMEOUT", &v)?;
        }
        if let Some(v) = var("PRINTCAM_PRINTER_CA").filter(|v| !v.is_empty()) {
            s.printer_ca = Some(PathBuf::from(v));
        }
        Ok(s)
    }

    /// True when a client at `ip` counts as this box (see `local_clients`).
    pub fn is_local_client(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match &self.local_clients {
            None => ip.is_loopback(),
            Some(list) => list.iter().any(|a| a.to_canonical() == ip),
        }
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

/// An access token: printable ASCII without spaces, so it fits a query
/// string and a header unchanged. The error never quotes it.
pub fn parse_token(what: &str, v: &str) -> Result<String, String> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{what}: a token must be printable ASCII without spaces (the value is not shown)"
        ));
    }
    Ok(v.to_string())
}

/// An origin for `Access-Control-Allow-Origin`, e.g. `https://ha.lan:8123`,
/// in the form a browser sends in `Origin` (scheme and host in lower case,
/// no default port, no path), so the two can be compared as text. A
/// trailing slash is dropped; a path, query or user part is refused: no
/// browser Origin could ever match it.
pub fn parse_origin(what: &str, v: &str) -> Result<String, String> {
    let v = v.trim();
    if v == "*" {
        return Ok(v.to_string());
    }
    let bad = |why: &str| {
        format!("{what}: {why}; expected an origin like https://host:port or *, got {v:?}")
    };
    if !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("not printable ASCII"));
    }
    let parsed = url::Url::parse(v).map_err(|e| bad(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("an origin has no user part"));
    }
    if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("an origin has no path or query"));
    }
    let without_slash = v.strip_suffix('/').unwrap_or(v);
    if without_slash.ends_with('/') {
        return Err(bad("an origin has no path"));
    }
    match parsed.origin() {
        url::Origin::Tuple(..) => Ok(parsed.origin().ascii_serialization()),
        url::Origin::Opaque(_) => Err(bad("it names no host")),
    }
}

/// Host names for `allowed_hosts`: comma-separated, each a DNS name.
pub fn parse_hosts(what: &str, v: &str) -> Result<Vec<String>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| {
            let ok = h.len() <= 253
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if ok {
                Ok(h.trim_end_matches('.').to_ascii_lowercase())
            } else {
                Err(format!("{what}: {h:?} is not a host name"))
            }
        })
        .collect()
}

/// A limit: a whole number from 1 to 10000.
pub fn parse_count(what: &str, v: &str) -> Result<usize, String> {
    v.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| format!("{what}: expected a whole number from 1 to 10000, got {v:?}"))
}

/// A socket timeout: seconds, more than zero (zero would mean none).
pub fn parse_timeout(what: &str, v: &str) -> Result<Duration, String> {
    let d = parse_secs(what, v)?;
    if d < Duration::from_millis(100) {
        return Err(format!("{what}: must be at least 0.1 seconds"));
    }
    Ok(d)
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
        assert!(parse_count("X", "0").is_err());
        assert!(parse_timeout("X", "0").is_err());
        assert!(parse_origin("X", "evil\r\nX-Bad: 1").is_err());
        assert!(parse_origin("X", "ha.lan").is_err());
        assert!(parse_hosts("X", "good.lan, bad host").is_err());
    }

    #[test]
    fn origins_take_the_form_browsers_send() {
        let ok = |v: &str| parse_origin("X", v).unwrap();
        assert_eq!(ok("http://dash.lan/"), "http://dash.lan");
        assert_eq!(ok("HTTPS://HA.lan:8123"), "https://ha.lan:8123");
        assert_eq!(ok("http://dash.lan:80"), "http://dash.lan");
        assert_eq!(ok("http://[fd00::1]:8123/"), "http://[fd00::1]:8123");
        assert_eq!(ok("*"), "*");
        for bad in [
            "http://dash.lan/path",
            "http://dash.lan//",
            "http://dash.lan/?x=1",
            "http://user@dash.lan",
            "file:///etc",
            "ftp://dash.lan",
        ] {
            assert!(parse_origin("X", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn allowed_hosts_are_a_list_of_names() {
        assert_eq!(
            parse_hosts("X", "Printcam.LAN, box.local.").unwrap(),
            vec!["printcam.lan", "box.local"]
        );
    }

    #[test]
    fn security_settings_from_the_environment() {
        let env = |k: &str| match k {
            "PRINTCAM_TOKEN" => Some("s3cret-T".to_string()),
            "PRINTCAM_CORS_ORIGIN" => Some("https://ha.lan:8123".to_string()),
            "PRINTCAM_MAX_VIEWERS" => Some("5".to_string()),
            "PRINTCAM_MAX_VIEWERS_PER_CAMERA" => Some("2".to_string()),
            "PRINTCAM_WRITE_TIMEOUT" => Some("3".to_string()),
            _ => None,
        };
        let s = Settings::from_env(env).unwrap();
        assert_eq!(s.token.as_deref(), Some("s3cret-T"));
        assert_eq!(s.cors_origin.as_deref(), Some("https://ha.lan:8123"));
        assert_eq!((s.max_viewers, s.max_viewers_per_camera), (5, 2));
        assert_eq!(s.write_timeout, Duration::from_secs(3));
        assert!(!format!("{s:?}").contains("s3cret"));
        assert_eq!(Settings::from_env(|_| None).unwrap().token, None);
    }

    #[test]
    fn a_bad_token_is_refused_without_being_quoted() {
        let err = Settings::from_env(|k| (k == "PRINTCAM_TOKEN").then(|| "with space".into()))
            .unwrap_err();
        assert!(
            err.contains("PRINTCAM_TOKEN") && !err.contains("with space"),
            "{err}"
        );
    }

    #[test]
    fn local_clients_are_loopback_unless_listed() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let s = Settings::default();
        assert!(s.is_local_client(ip("127.0.0.1")));
        assert!(s.is_local_client(ip("127.0.0.2")));
        assert!(s.is_local_client(ip("::1")));
        assert!(s.is_local_client(ip("::ffff:127.0.0.1")));
        assert!(!s.is_local_client(ip("192.168.1.5")));
        let listed = Settings {
            local_clients: Some(vec![ip("127.0.0.1")]),
            ..Settings::default()
        };
        assert!(listed.is_local_client(ip("127.0.0.1")));
        assert!(!listed.is_local_client(ip("127.0.0.2")));
    }
}
