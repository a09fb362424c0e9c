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
pub fn check_resolved(_raw: &str, _policy: Policy) -> Result<(Url, Vec<SocketAddr>), String> {
    todo!()
}

/// Why `ip` is not an acceptable camera destination, or None if it is.
pub fn forbidden_ip(_ip: IpAddr, _policy: Policy) -> Option<&'static str> {
    todo!()
}
