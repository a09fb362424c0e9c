//! TLS to printers. Their certificates chain to no public CA and are often
//! X.509 v1, which webpki rejects outright, so the certificate is instead
//! pinned on first use (like ssh's known_hosts). A pin is only worth
//! something if the handshake signature is checked against the pinned
//! certificate's key, so that check is done here with ring, after finding the
//! key in the certificate with a minimal DER walk that also accepts v1.

use std::fmt;
use std::io;
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{CertificateError, ClientConfig, ClientConnection, StreamOwned};

use crate::source::secs;
use crate::urlguard::Target;

pub mod bambu_ca;
mod der;
mod pin;
mod provider;

pub use der::{public_key, subject_public_key_info, KeyKind};
pub use pin::{
    cert_sha256_hex, client_config, printer_dialer, verify_signature, Dialer, Identity, PinRecorder,
};
pub use provider::{crypto_provider, public_roots_available, NO_PUBLIC_ROOTS};

use pin::cert_changed;

/// A TLS connection to a printer.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// The negotiated version, as the figures show it.
pub fn version_name(conn: &ClientConnection) -> &'static str {
    match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2",
        _ => "unknown",
    }
}

/// Why a TLS connection could not be made, sorted by what the user can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectErrorKind {
    /// Name did not resolve, connection refused or timed out: printer off or
    /// wrong address.
    Unreachable,
    /// The TLS handshake failed (not a TLS server, bad signature, …).
    Handshake,
    /// The pinned certificate does not match: retrying cannot help.
    CertificateChanged,
}

/// A connection failure with a message fit to show a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectError {
    pub kind: ConnectErrorKind,
    pub message: String,
}

impl ConnectError {
    fn new(kind: ConnectErrorKind, message: String) -> Self {
        ConnectError { kind, message }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConnectError {}

impl From<ConnectError> for String {
    fn from(e: ConnectError) -> String {
        e.message
    }
}

/// Opens TCP to one of `target`'s checked addresses (within `timeout`),
/// sets read and write timeouts of `timeout` and completes the TLS
/// handshake. Printers need no SNI: an IP address is sent as none, a host
/// name as the usual one.
pub fn connect(
    target: &Target,
    config: Arc<ClientConfig>,
    timeout: Duration,
) -> Result<TlsStream, ConnectError> {
    connect_once(target, config, timeout).map_err(|(e, _)| e)
}

/// `connect`, falling back to TLS 1.2 only as `dialer` allows.
pub fn connect_with(
    target: &Target,
    dialer: &Dialer,
    timeout: Duration,
) -> Result<TlsStream, ConnectError> {
    match connect_once(target, dialer.config(), timeout) {
        Err((_, Some(io))) if dialer.fall_back(&io, &target.label()) => {
            connect(target, dialer.config(), timeout).map_err(|mut e| {
                if e.kind == ConnectErrorKind::Handshake {
                    e.message.push_str(" (retried with TLS 1.2 only)");
                }
                e
            })
        }
        other => other.map_err(|(e, _)| e),
    }
}

/// The error, and the handshake's own failure when it got that far.
fn connect_once(
    target: &Target,
    config: Arc<ClientConfig>,
    timeout: Duration,
) -> Result<TlsStream, (ConnectError, Option<io::Error>)> {
    // `host:port`, an IPv6 address in brackets.
    let at = target.label();
    let server_name = server_name(target.host()).map_err(|e| (e, None))?;
    let sock = tcp_connect(target, timeout).map_err(|e| (e, None))?;
    let mut conn = ClientConnection::new(config, server_name).map_err(|e| {
        let e = ConnectError::new(
            ConnectErrorKind::Handshake,
            format!("TLS setup for {at} failed: {e}"),
        );
        (e, None)
    })?;
    let mut sock = sock;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut sock) {
            let _ = sock.shutdown(Shutdown::Both);
            return Err((handshake_error(&at, timeout, &e), Some(e)));
        }
    }
    Ok(StreamOwned::new(conn, sock))
}

fn server_name(host: &str) -> Result<ServerName<'static>, ConnectError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(host.to_string()).map_err(|_| {
        ConnectError::new(
            ConnectErrorKind::Unreachable,
            format!("{host:?} is neither an IP address nor a valid host name"),
        )
    })
}

fn tcp_connect(target: &Target, timeout: Duration) -> Result<TcpStream, ConnectError> {
    let unreachable = |m: String| ConnectError::new(ConnectErrorKind::Unreachable, m);
    let sock = target.connect(timeout).map_err(|e| {
        let at = target.label();
        unreachable(match e.kind() {
            io::ErrorKind::ConnectionRefused => format!(
                "connection to {at} refused: the printer is off, still starting, \
                 or the IP address is wrong"
            ),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => format!(
                "connecting to {at} timed out after {}: the printer is off or the \
                 IP address is wrong",
                secs(timeout)
            ),
            _ => format!(
                "cannot connect to {at} ({e}): the printer is off or the IP address \
                 is wrong"
            ),
        })
    })?;
    sock.set_read_timeout(Some(timeout))
        .and_then(|()| sock.set_write_timeout(Some(timeout)))
        .map_err(|e| unreachable(format!("socket setup failed: {e}")))?;
    Ok(sock)
}

fn handshake_error(at: &str, timeout: Duration, e: &io::Error) -> ConnectError {
    let handshake = |m: String| ConnectError::new(ConnectErrorKind::Handshake, m);
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        if let Some(changed) = cert_changed(tls) {
            return ConnectError::new(ConnectErrorKind::CertificateChanged, changed.to_string());
        }
        if let rustls::Error::InvalidCertificate(CertificateError::BadSignature) = tls {
            return handshake(format!(
                "TLS handshake with {at} failed: the handshake signature does not match \
                 the certificate the server presented (something may be impersonating the \
                 printer)"
            ));
        }
        return handshake(format!("TLS handshake with {at} failed: {tls}"));
    }
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => handshake(format!(
            "TLS handshake with {at} failed: no answer within {}: is this a printer's \
             camera port?",
            secs(timeout)
        )),
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted => handshake(format!(
            "TLS handshake with {at} failed: the printer closed the connection"
        )),
        _ => handshake(format!("TLS handshake with {at} failed: {e}")),
    }
}

#[cfg(test)]
mod test_certs;
