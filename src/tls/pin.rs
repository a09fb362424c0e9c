//! Pinning a printer's certificate on first use: the verifier that accepts
//! the pinned certificate (or one a Bambu CA issued to the printer's
//! serial), remembers what it saw and checks handshake signatures with the
//! certificate's own key, and the printer's dialer built on it.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, OtherError, SignatureScheme};

use super::bambu_ca::CaSet;
use super::der::{public_key, KeyKind};
use super::provider::crypto_provider;

/// Lower-case hex SHA-256 of a DER certificate: the pin stored per printer.
pub fn cert_sha256_hex(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut hex = String::with_capacity(64);
    for b in digest.as_ref() {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// Pins may be pasted with colons or in upper case (as `openssl x509
/// -fingerprint` prints them); compare them in one canonical form.
fn normalize_pin(pin: &str) -> String {
    pin.trim()
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Remembers the fingerprint of the certificate presented on the last
/// handshake, so the caller can store it as the pin once the connection has
/// proved useful, and why the pin refused it if it did (for callers that only
/// see the handshake fail from afar, such as ffmpeg behind the TLS proxy).
#[derive(Debug, Default)]
pub struct PinRecorder {
    seen: Mutex<Option<String>>,
    refusal: Mutex<Option<String>>,
    /// Whether the last certificate presented was verified by a Bambu CA.
    verified: AtomicBool,
}

impl PinRecorder {
    /// The SHA-256 (lower-case hex) of the last certificate presented.
    pub fn seen(&self) -> Option<String> {
        read(&self.seen)
    }

    /// The "certificate changed" message if a handshake was refused because
    /// the certificate did not match the pin.
    pub fn refusal(&self) -> Option<String> {
        read(&self.refusal)
    }

    /// Whether the last certificate presented chained to a Bambu CA and
    /// named the printer's serial.
    pub fn verified(&self) -> bool {
        self.verified.load(Ordering::SeqCst)
    }

    fn record(&self, fingerprint: String, verified: bool) {
        self.verified.store(verified, Ordering::SeqCst);
        write(&self.seen, fingerprint);
    }

    fn refuse(&self, why: String) {
        write(&self.refusal, why);
    }
}

fn read(slot: &Mutex<Option<String>>) -> Option<String> {
    match slot.lock() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

fn write(slot: &Mutex<Option<String>>, value: String) {
    match slot.lock() {
        Ok(mut g) => *g = Some(value),
        Err(p) => *p.into_inner() = Some(value),
    }
}

/// The pinned certificate no longer matches: carried inside the rustls error
/// so `connect` can tell it apart from other handshake failures.
#[derive(Debug)]
pub(super) struct CertChanged {
    expected: String,
    seen: String,
}

impl fmt::Display for CertChanged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the printer's certificate changed (pinned SHA-256 {}…, now {}…): if the printer was \
             replaced or reset, accept the new certificate with \
             `printcam printer forget-cert ID` (ID = the printer's id); otherwise something \
             else is answering at this address",
            short(&self.expected),
            short(&self.seen)
        )
    }
}

impl std::error::Error for CertChanged {}

fn short(fingerprint: &str) -> &str {
    fingerprint.get(..16).unwrap_or(fingerprint)
}

/// Who a printer's certificate must name to be verified, and the CAs that
/// must have issued it.
#[derive(Debug, Clone)]
pub struct Identity {
    pub serial: String,
    pub cas: Arc<CaSet>,
}

/// Accepts a certificate that `identity` verifies (a Bambu CA issued it to
/// the printer's serial), even when it differs from the pin: a printer's
/// certificate is re-issued from time to time. Anything else: any
/// certificate when no pin is set (recording its fingerprint), otherwise
/// exactly the pinned one. Always checks handshake signatures.
#[derive(Debug)]
struct PinnedVerifier {
    expected: Option<String>,
    identity: Option<Identity>,
    recorder: Arc<PinRecorder>,
}

impl PinnedVerifier {
    fn verified_by_ca(&self, end_entity: &[u8], intermediates: &[CertificateDer<'_>]) -> bool {
        let Some(id) = &self.identity else {
            return false;
        };
        let presented: Vec<&[u8]> = intermediates.iter().map(|c| c.as_ref()).collect();
        match id.cas.verify(end_entity, &presented, &id.serial) {
            Ok(()) => true,
            Err(why) => {
                log::debug!("printer {}: not verified by a Bambu CA: {why}", id.serial);
                false
            }
        }
    }
}

impl ServerCertVerifier for PinnedVerifier {
    // Validity dates and host names are deliberately not checked: printers'
    // clocks and certificates cannot be relied on; the pin, or the CA's
    // signature over the serial, is what identifies the printer.
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Refuse now what the signature check could not use later.
        public_key(end_entity).map_err(|_| bad_encoding())?;
        let seen = cert_sha256_hex(end_entity);
        let verified = self.verified_by_ca(end_entity, intermediates);
        self.recorder.record(seen.clone(), verified);
        match &self.expected {
            Some(expected) if !verified && normalize_pin(expected) != seen => {
                let changed = CertChanged {
                    expected: normalize_pin(expected),
                    seen,
                };
                self.recorder.refuse(changed.to_string());
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                    OtherError(Arc::new(changed)),
                )))
            }
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature(cert, dss.scheme, message, dss.signature(), false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature(cert, dss.scheme, message, dss.signature(), true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        SUPPORTED_SCHEMES.to_vec()
    }
}

/// Exactly the schemes `algorithm` maps, most preferred first.
const SUPPORTED_SCHEMES: [SignatureScheme; 9] = [
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::ED25519,
    SignatureScheme::RSA_PSS_SHA512,
    SignatureScheme::RSA_PSS_SHA384,
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PKCS1_SHA512,
    SignatureScheme::RSA_PKCS1_SHA384,
    SignatureScheme::RSA_PKCS1_SHA256,
];

fn bad_encoding() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::BadEncoding)
}

fn bad_signature() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::BadSignature)
}

/// Checks a handshake signature with the public key of `cert`.
pub fn verify_signature(
    cert: &[u8],
    scheme: SignatureScheme,
    message: &[u8],
    sig: &[u8],
    tls13: bool,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let (kind, key) = public_key(cert).map_err(|_| bad_encoding())?;
    let alg = algorithm(scheme, kind, tls13).ok_or(rustls::Error::PeerMisbehaved(
        rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
    ))?;
    UnparsedPublicKey::new(alg, key)
        .verify(message, sig)
        .map(|()| HandshakeSignatureValid::assertion())
        .map_err(|_| bad_signature())
}

/// Which ring algorithm checks `scheme` with a key of `kind`. TLS 1.3 binds an
/// ECDSA scheme to its curve and forbids PKCS#1; TLS 1.2 does neither.
fn algorithm(
    scheme: SignatureScheme,
    kind: KeyKind,
    tls13: bool,
) -> Option<&'static dyn VerificationAlgorithm> {
    use KeyKind::*;
    use SignatureScheme as S;
    let alg: &'static dyn VerificationAlgorithm = match (scheme, kind) {
        (S::RSA_PKCS1_SHA256, Rsa) if !tls13 => &signature::RSA_PKCS1_2048_8192_SHA256,
        (S::RSA_PKCS1_SHA384, Rsa) if !tls13 => &signature::RSA_PKCS1_2048_8192_SHA384,
        (S::RSA_PKCS1_SHA512, Rsa) if !tls13 => &signature::RSA_PKCS1_2048_8192_SHA512,
        (S::RSA_PSS_SHA256, Rsa) => &signature::RSA_PSS_2048_8192_SHA256,
        (S::RSA_PSS_SHA384, Rsa) => &signature::RSA_PSS_2048_8192_SHA384,
        (S::RSA_PSS_SHA512, Rsa) => &signature::RSA_PSS_2048_8192_SHA512,
        (S::ECDSA_NISTP256_SHA256, EcP256) => &signature::ECDSA_P256_SHA256_ASN1,
        (S::ECDSA_NISTP384_SHA384, EcP384) => &signature::ECDSA_P384_SHA384_ASN1,
        (S::ECDSA_NISTP384_SHA384, EcP256) if !tls13 => &signature::ECDSA_P256_SHA384_ASN1,
        (S::ECDSA_NISTP256_SHA256, EcP384) if !tls13 => &signature::ECDSA_P384_SHA256_ASN1,
        (S::ED25519, Ed25519) => &signature::ED25519,
        _ => return None,
    };
    Some(alg)
}

/// A client configuration for printers (ring provider, TLS 1.2 and 1.3) and
/// the recorder of the certificate seen. With `expected_pin` only that
/// certificate is accepted; without, any is, and the caller stores
/// `recorder.seen()` once the connection has proved useful.
pub fn client_config(expected_pin: Option<String>) -> (Arc<ClientConfig>, Arc<PinRecorder>) {
    let (dialer, recorder) = printer_dialer(expected_pin, None, Arc::default());
    (dialer.any, recorder)
}

/// A printer's TLS settings, for every TLS version and for TLS 1.2 only
/// (one verifier, one recorder), and `tls12_only`, the printer's memory of
/// having needed the second.
pub fn printer_dialer(
    expected_pin: Option<String>,
    identity: Option<Identity>,
    tls12_only: Arc<AtomicBool>,
) -> (Dialer, Arc<PinRecorder>) {
    let recorder = Arc::new(PinRecorder::default());
    let verifier = Arc::new(PinnedVerifier {
        expected: expected_pin,
        identity,
        recorder: Arc::clone(&recorder),
    });
    let config = |versions: &[&'static rustls::SupportedProtocolVersion]| {
        let config = ClientConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(versions)
            // Cannot fail: the provider has TLS 1.2 and 1.3 suites and key exchanges.
            .expect("printcam's provider supports TLS 1.2 and 1.3")
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        Arc::new(config)
    };
    let dialer = Dialer {
        any: config(rustls::DEFAULT_VERSIONS),
        tls12: Some(config(&[&rustls::version::TLS12])),
        tls12_only,
    };
    (dialer, recorder)
}

/// How to reach one TLS server whose firmware may never answer a TLS 1.3
/// ClientHello (reported for P2S 01.02.00.00): a handshake that gets no
/// answer or a protocol-version alert is retried at once with TLS 1.2 only,
/// and the printer is remembered as needing that.
#[derive(Clone)]
pub struct Dialer {
    pub any: Arc<ClientConfig>,
    /// None: no fallback (a caller-made configuration).
    pub tls12: Option<Arc<ClientConfig>>,
    pub tls12_only: Arc<AtomicBool>,
}

impl Dialer {
    /// Exactly `config`, never another.
    pub fn fixed(config: Arc<ClientConfig>) -> Dialer {
        Dialer {
            any: config,
            tls12: None,
            tls12_only: Arc::default(),
        }
    }

    /// The configuration for the next attempt.
    pub fn config(&self) -> Arc<ClientConfig> {
        match &self.tls12 {
            Some(tls12) if self.tls12_only.load(Ordering::SeqCst) => Arc::clone(tls12),
            _ => Arc::clone(&self.any),
        }
    }

    /// After a failed handshake with `config()`: whether to retry at once
    /// with TLS 1.2 only (then remembered). `what` names the server in the
    /// debug log.
    pub fn fall_back(&self, failure: &io::Error, what: &str) -> bool {
        let retry = self.tls12.is_some()
            && !self.tls12_only.load(Ordering::SeqCst)
            && tls13_unanswered(failure);
        if retry {
            self.tls12_only.store(true, Ordering::SeqCst);
            log::debug!(
                "{what}: no answer to a TLS 1.3 hello ({failure}); retrying with TLS 1.2 only, \
                 and using TLS 1.2 for it from now on"
            );
        }
        retry
    }
}

/// A handshake failure that TLS 1.2 only may cure: no answer in time, or a
/// protocol-version alert.
fn tls13_unanswered(e: &io::Error) -> bool {
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return matches!(
            tls,
            rustls::Error::AlertReceived(rustls::AlertDescription::ProtocolVersion)
        );
    }
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

pub(super) fn cert_changed(e: &rustls::Error) -> Option<&CertChanged> {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
            inner.downcast_ref::<CertChanged>()
        }
        _ => None,
    }
}

#[cfg(test)]
#[path = "pin_tests.rs"]
mod tests;
