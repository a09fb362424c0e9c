//! URL and address safety for external cameras. (STUB: being written; API fixed.)

use std::net::{IpAddr, SocketAddr};
use url::Url;

/// What destinations a camera URL may point at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Allow loopback destinations (a camera served by another program on
    /// this box, and tests).
    pub allow_loopback: bool,
}

/// Checks a camera URL's text at save time: scheme (http, https, rtsp, rtsps),
/// a host, and a literal address in any notation (decimal, hex, octal,
/// shortened IPv4, IPv4-mapped IPv6) judged by `forbidden_ip`. Names are not
/// resolved here. The error says why; it never repeats a password.
pub fn check_text(_raw: &str, _policy: Policy) -> Result<Url, String> {
    todo!()
}

/// `check_text`, then resolves the host and refuses the URL if any address it
/// resolves to is forbidden. Called at save time and right before connecting.
/// Returns the addresses that were checked.
pub fn check_resolved(raw: &str, policy: Policy) -> Result<(Url, Vec<SocketAddr>), String> {
    // TEMP until merge: a minimal stand-in so the HTTP sources can be tested.
    use std::net::ToSocketAddrs;
    let url = Url::parse(raw).map_err(|e| format!("bad camera URL: {e}"))?;
    let host = url.host_str().ok_or("camera URL has no host")?.to_string();
    let port = url
        .port_or_known_default()
        .ok_or("camera URL has no port")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    for a in &addrs {
        if a.ip().is_loopback() && !policy.allow_loopback {
            return Err(format!("{host} is a loopback address"));
        }
    }
    Ok((url, addrs))
}

/// Why `ip` is not an acceptable camera destination, or None if it is.
pub fn forbidden_ip(_ip: IpAddr, _policy: Policy) -> Option<&'static str> {
    todo!()
}
