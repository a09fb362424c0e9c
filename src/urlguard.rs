//! URL and address safety for external cameras.
// TEMP until merge: a minimal implementation so the ffmpeg branch's tests run.

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
pub fn check_text(raw: &str, policy: Policy) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https" | "rtsp" | "rtsps") {
        return Err("only http, https, rtsp and rtsps URLs are allowed".into());
    }
    let ip = match url.host() {
        None => return Err("the URL has no host".into()),
        Some(url::Host::Ipv4(a)) => Some(IpAddr::V4(a)),
        Some(url::Host::Ipv6(a)) => Some(IpAddr::V6(a)),
        Some(url::Host::Domain(_)) => None,
    };
    if let Some(why) = ip.and_then(|ip| forbidden_ip(ip, policy)) {
        return Err(why.to_string());
    }
    Ok(url)
}

/// `check_text`, then resolves the host and refuses the URL if any address it
/// resolves to is forbidden. Called at save time and right before connecting.
/// Returns the addresses that were checked.
pub fn check_resolved(raw: &str, policy: Policy) -> Result<(Url, Vec<SocketAddr>), String> {
    use std::net::ToSocketAddrs;
    let url = check_text(raw, policy)?;
    let port = url.port_or_known_default().unwrap_or(match url.scheme() {
        "rtsps" => 322,
        _ => 554,
    });
    let host = match url.host() {
        Some(url::Host::Ipv6(a)) => a.to_string(),
        Some(h) => h.to_string(),
        None => return Err("the URL has no host".into()),
    };
    let addrs: Vec<SocketAddr> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve the camera's host: {e}"))?
        .collect();
    for a in &addrs {
        if let Some(why) = forbidden_ip(a.ip(), policy) {
            return Err(why.to_string());
        }
    }
    Ok((url, addrs))
}

/// Why `ip` is not an acceptable camera destination, or None if it is.
pub fn forbidden_ip(ip: IpAddr, policy: Policy) -> Option<&'static str> {
    if ip.is_loopback() && !policy.allow_loopback {
        return Some("loopback addresses are not allowed");
    }
    if ip.is_unspecified() {
        return Some("unspecified addresses are not allowed");
    }
    match ip {
        IpAddr::V4(a) if a.is_link_local() => Some("link-local addresses are not allowed"),
        _ => None,
    }
}
