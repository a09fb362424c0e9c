//! TLS to printers. Their certificates chain to no public CA and are often
//! X.509 v1, which webpki rejects outright, so the certificate is instead
//! pinned on first use (like ssh's known_hosts). A pin is only worth
//! something if the handshake signature is checked against the pinned
//! certificate's key, so that check is done here with ring, after finding the
//! key in the certificate with a minimal DER walk that also accepts v1.

use std::fmt;
use std::io;
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::SigningKey;
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, OtherError,
    SignatureScheme, StreamOwned,
};

use crate::bambu_ca::CaSet;
use crate::source::secs;
use crate::urlguard::Target;

pub mod bambu_ca;

/// A TLS connection to a printer.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

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
struct CertChanged {
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

/// The kinds of public key a printer certificate may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
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

/// One DER element: its tag, its contents, and what follows it.
pub(crate) struct Tlv<'a> {
    pub(crate) tag: u8,
    pub(crate) value: &'a [u8],
    pub(crate) whole: &'a [u8],
    pub(crate) rest: &'a [u8],
}

/// Reads one DER element. Only what certificates use: single-byte tags and
/// definite lengths of up to four bytes.
pub(crate) fn read_tlv(input: &[u8]) -> Result<Tlv<'_>, &'static str> {
    let (&tag, after_tag) = input.split_first().ok_or("truncated element")?;
    if tag & 0x1f == 0x1f {
        return Err("multi-byte tag");
    }
    let (&first, after_len0) = after_tag.split_first().ok_or("truncated length")?;
    let (len, body) = if first < 0x80 {
        (first as usize, after_len0)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return Err("unsupported length");
        }
        let bytes = after_len0.get(..n).ok_or("truncated length")?;
        let len = bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &after_len0[n..])
    };
    if len > body.len() {
        return Err("element longer than its container");
    }
    let header = input.len() - body.len();
    Ok(Tlv {
        tag,
        value: &body[..len],
        whole: &input[..header + len],
        rest: &body[len..],
    })
}

/// Reads one element that must carry `tag`.
pub(crate) fn expect_tlv(input: &[u8], tag: u8) -> Result<Tlv<'_>, &'static str> {
    let tlv = read_tlv(input)?;
    if tlv.tag != tag {
        return Err("unexpected element");
    }
    Ok(tlv)
}

pub(crate) const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
pub(crate) const BIT_STRING: u8 = 0x03;
pub(crate) const OID: u8 = 0x06;
const VERSION: u8 = 0xa0; // [0] EXPLICIT, absent in v1 certificates

/// The DER SubjectPublicKeyInfo of a certificate, found by walking
/// Certificate → TBSCertificate → (version?) serial, signature, issuer,
/// validity, subject → subjectPublicKeyInfo.
pub fn subject_public_key_info(cert: &[u8]) -> Result<&[u8], &'static str> {
    let certificate = expect_tlv(cert, SEQUENCE)?;
    let tbs = expect_tlv(certificate.value, SEQUENCE)?;
    let mut rest = tbs.value;
    let first = read_tlv(rest)?;
    if first.tag == VERSION {
        rest = first.rest;
    }
    rest = expect_tlv(rest, INTEGER)?.rest; // serial
    for _ in 0..4 {
        // signature algorithm, issuer, validity, subject
        rest = expect_tlv(rest, SEQUENCE)?.rest;
    }
    Ok(expect_tlv(rest, SEQUENCE)?.whole)
}

const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// The key kind and the key bytes ring expects (RSAPublicKey DER, an EC
/// point, or a raw Ed25519 key) from a certificate.
pub fn public_key(cert: &[u8]) -> Result<(KeyKind, &[u8]), &'static str> {
    let spki = expect_tlv(subject_public_key_info(cert)?, SEQUENCE)?;
    let alg = expect_tlv(spki.value, SEQUENCE)?;
    let bits = expect_tlv(alg.rest, BIT_STRING)?;
    let oid = expect_tlv(alg.value, OID)?;
    let kind = match oid.value {
        OID_RSA => KeyKind::Rsa,
        OID_ED25519 => KeyKind::Ed25519,
        OID_EC => match expect_tlv(oid.rest, OID)?.value {
            OID_P256 => KeyKind::EcP256,
            OID_P384 => KeyKind::EcP384,
            _ => return Err("unsupported elliptic curve"),
        },
        _ => return Err("unsupported public key algorithm"),
    };
    match bits.value.split_first() {
        Some((0, key)) => Ok((kind, key)),
        _ => Err("malformed public key"),
    }
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

/// The negotiated version, as the figures show it.
pub fn version_name(conn: &ClientConnection) -> &'static str {
    match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2",
        _ => "unknown",
    }
}

/// Whether this build has the public CA certificates that https cameras are
/// checked against (the `webpki-roots` cargo feature).
pub fn public_roots_available() -> bool {
    cfg!(feature = "webpki-roots")
}

/// Why a build without the `webpki-roots` feature refuses https cameras.
pub const NO_PUBLIC_ROOTS: &str = "https cameras need a printcam built with the \
     `webpki-roots` cargo feature (the public CA certificates that check the camera's \
     certificate), and this build has none: use the camera's http:// URL, or rebuild \
     printcam with `--features webpki-roots`";

/// The rustls crypto provider for every TLS connection printcam makes
/// (printers, rtsps cameras, https cameras): ring's, less what a client that
/// never presents a certificate of its own and talks to AES-capable servers
/// does not use. Built here rather than taken from
/// `rustls::crypto::ring::default_provider()` because naming that function
/// links everything it lists, wanted or not (see docs/sizes.md):
///
/// - AES-GCM suites only: TLS 1.3 requires every server to offer
///   TLS_AES_128_GCM_SHA256; a TLS 1.2 server (the P1/A1 camera speaks
///   TLS 1.2) that offers ChaCha20-Poly1305 but no AES-GCM would now be
///   refused, and none is known. The ChaCha20-Poly1305 suites were ~60 KB
///   of code for x86_64 alone.
/// - No client keys: `key_provider` refuses every key, so ring's RSA and
///   ECDSA signing code stays out (~50 KB).
/// - The same key exchanges (X25519, P-256, P-384) and the same signature
///   checks as ring's default provider.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::{cipher_suite as cs, kx_group};
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ],
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
        signature_verification_algorithms: SIGNATURE_ALGORITHMS,
        secure_random: &SystemRng,
        key_provider: &NoClientKeys,
    })
}

/// ring's signature checks for certificate chains and handshakes, as in
/// rustls's ring provider (which does not export its table). Printers'
/// handshakes are checked by `verify_signature` instead; this is what the
/// https cameras' chain check (ureq, with webpki-roots) uses.
static SIGNATURE_ALGORITHMS: WebPkiSupportedAlgorithms = {
    use webpki::ring as alg;
    use SignatureScheme as S;
    WebPkiSupportedAlgorithms {
        all: &[
            alg::ECDSA_P256_SHA256,
            alg::ECDSA_P256_SHA384,
            alg::ECDSA_P384_SHA256,
            alg::ECDSA_P384_SHA384,
            alg::ED25519,
            alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
            alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
            alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
            alg::RSA_PKCS1_2048_8192_SHA256,
            alg::RSA_PKCS1_2048_8192_SHA384,
            alg::RSA_PKCS1_2048_8192_SHA512,
            alg::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
            alg::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
            alg::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
        ],
        mapping: &[
            // TLS 1.2 does not tie an ECDSA scheme to a curve; TLS 1.3 does,
            // and rustls checks that itself.
            (
                S::ECDSA_NISTP384_SHA384,
                &[alg::ECDSA_P384_SHA384, alg::ECDSA_P256_SHA384],
            ),
            (
                S::ECDSA_NISTP256_SHA256,
                &[alg::ECDSA_P256_SHA256, alg::ECDSA_P384_SHA256],
            ),
            (S::ED25519, &[alg::ED25519]),
            (
                S::RSA_PSS_SHA512,
                &[alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
            ),
            (
                S::RSA_PSS_SHA384,
                &[alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
            ),
            (
                S::RSA_PSS_SHA256,
                &[alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
            ),
            (S::RSA_PKCS1_SHA512, &[alg::RSA_PKCS1_2048_8192_SHA512]),
            (S::RSA_PKCS1_SHA384, &[alg::RSA_PKCS1_2048_8192_SHA384]),
            (S::RSA_PKCS1_SHA256, &[alg::RSA_PKCS1_2048_8192_SHA256]),
        ],
    }
};

/// Randomness for TLS from the operating system, as ring's provider does.
#[derive(Debug)]
struct SystemRng;

impl SecureRandom for SystemRng {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        use ring::rand::SecureRandom as _;
        ring::rand::SystemRandom::new()
            .fill(buf)
            .map_err(|_| GetRandomFailed)
    }
}

/// printcam never authenticates itself with a certificate, so it loads no
/// private keys; refusing here keeps ring's signing code out of the binary.
#[derive(Debug)]
struct NoClientKeys;

impl KeyProvider for NoClientKeys {
    fn load_private_key(
        &self,
        _key_der: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, rustls::Error> {
        Err(rustls::Error::General(
            "printcam has no client certificates".to_string(),
        ))
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

fn cert_changed(e: &rustls::Error) -> Option<&CertChanged> {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
            inner.downcast_ref::<CertChanged>()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, RsaKeyPair};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::PrivateKeyDer;

    fn cert(pem: &[u8]) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem).unwrap().to_vec()
    }

    fn key(pem: &[u8]) -> Vec<u8> {
        PrivateKeyDer::from_pem_slice(pem)
            .unwrap()
            .secret_der()
            .to_vec()
    }

    const V1_RSA: &[u8] = include_bytes!("../../tests/data/printer_a.crt");
    const V1_RSA_KEY: &[u8] = include_bytes!("../../tests/data/printer_a.key");
    const V1_EC: &[u8] = include_bytes!("../../tests/data/printer_ec.crt");
    const V1_EC_KEY: &[u8] = include_bytes!("../../tests/data/printer_ec.key");
    const V3_RSA: &[u8] = include_bytes!("../../tests/data/v3.crt");

    #[test]
    fn der_walk_finds_the_key_in_a_v1_certificate() {
        let der = cert(V1_RSA);
        // A v1 certificate has no [0] version: the TBS starts with the serial.
        let tbs = read_tlv(read_tlv(&der).unwrap().value).unwrap();
        assert_eq!(read_tlv(tbs.value).unwrap().tag, INTEGER);
        assert_eq!(
            subject_public_key_info(&der).unwrap(),
            include_bytes!("../../tests/data/printer_a.spki.der")
        );
        assert_eq!(public_key(&der).unwrap().0, KeyKind::Rsa);
        assert_eq!(public_key(&cert(V1_EC)).unwrap().0, KeyKind::EcP256);
    }

    #[test]
    fn der_walk_finds_the_key_in_a_v3_certificate() {
        let der = cert(V3_RSA);
        let tbs = read_tlv(read_tlv(&der).unwrap().value).unwrap();
        assert_eq!(read_tlv(tbs.value).unwrap().tag, VERSION);
        assert_eq!(
            subject_public_key_info(&der).unwrap(),
            include_bytes!("../../tests/data/v3.spki.der")
        );
    }

    #[test]
    fn der_walk_rejects_garbage_without_panicking() {
        let der = cert(V1_RSA);
        for cut in 0..der.len() {
            let _ = public_key(&der[..cut]);
        }
        for i in 0..der.len() {
            let mut bad = der.clone();
            bad[i] ^= 0xff;
            let _ = public_key(&bad);
        }
        assert!(public_key(&[]).is_err());
        assert!(public_key(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(public_key(&[0x30, 0x80]).is_err());
    }

    mod damaged {
        use super::*;
        use proptest::prelude::*;
        use proptest::sample::Index;

        fn inside(part: &[u8], whole: &[u8]) -> bool {
            let range = whole.as_ptr_range();
            part.is_empty()
                || (range.contains(&part.as_ptr()) && part.as_ptr_range().end <= range.end)
        }

        proptest! {
            #[test]
            fn der_walk_of_a_damaged_certificate_stays_inside_it(
                pem in prop::sample::select(vec![V1_RSA, V1_EC, V3_RSA]),
                flips in prop::collection::vec((any::<Index>(), any::<u8>()), 0..4),
                cut in any::<Index>(),
            ) {
                let mut der = cert(pem);
                for (at, byte) in flips {
                    let i = at.index(der.len());
                    der[i] = byte;
                }
                der.truncate(cut.index(der.len() + 1));
                if let Ok(spki) = subject_public_key_info(&der) {
                    prop_assert!(inside(spki, &der));
                }
                if let Ok((_, key)) = public_key(&der) {
                    prop_assert!(inside(key, &der));
                }
            }
        }
    }

    #[test]
    fn fingerprint_is_lower_case_hex_sha256() {
        assert_eq!(
            cert_sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(normalize_pin(" BA:78:16 "), "ba7816");
    }

    #[test]
    fn rsa_signatures_are_checked_with_the_certificate_key() {
        let der = cert(V1_RSA);
        let pair = RsaKeyPair::from_pkcs8(&key(V1_RSA_KEY)).unwrap();
        let rng = SystemRandom::new();
        let msg = b"handshake transcript";
        let cases: [(SignatureScheme, &'static dyn signature::RsaEncoding); 4] = [
            (
                SignatureScheme::RSA_PKCS1_SHA256,
                &signature::RSA_PKCS1_SHA256,
            ),
            (
                SignatureScheme::RSA_PKCS1_SHA512,
                &signature::RSA_PKCS1_SHA512,
            ),
            (SignatureScheme::RSA_PSS_SHA256, &signature::RSA_PSS_SHA256),
            (SignatureScheme::RSA_PSS_SHA384, &signature::RSA_PSS_SHA384),
        ];
        for (scheme, encoding) in cases {
            let mut sig = vec![0; pair.public().modulus_len()];
            pair.sign(encoding, &rng, msg, &mut sig).unwrap();
            assert!(verify_signature(&der, scheme, msg, &sig, false).is_ok());
            assert!(verify_signature(&der, scheme, b"other", &sig, false).is_err());
            let is_pss = matches!(
                scheme,
                SignatureScheme::RSA_PSS_SHA256 | SignatureScheme::RSA_PSS_SHA384
            );
            // TLS 1.3 allows only PSS for RSA.
            assert_eq!(
                verify_signature(&der, scheme, msg, &sig, true).is_ok(),
                is_pss
            );
        }
        // Another printer's certificate does not vouch for this key.
        let other = cert(include_bytes!("../../tests/data/printer_b.crt"));
        let mut sig = vec![0; pair.public().modulus_len()];
        pair.sign(&signature::RSA_PSS_SHA256, &rng, msg, &mut sig)
            .unwrap();
        assert!(
            verify_signature(&other, SignatureScheme::RSA_PSS_SHA256, msg, &sig, true).is_err()
        );
    }

    #[test]
    fn ecdsa_signatures_are_checked_with_the_certificate_key() {
        let der = cert(V1_EC);
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &key(V1_EC_KEY),
            &rng,
        )
        .unwrap();
        let msg = b"handshake transcript";
        let sig = pair.sign(&rng, msg).unwrap();
        let scheme = SignatureScheme::ECDSA_NISTP256_SHA256;
        assert!(verify_signature(&der, scheme, msg, sig.as_ref(), true).is_ok());
        assert!(verify_signature(&der, scheme, b"other", sig.as_ref(), true).is_err());
        // An RSA scheme with an EC key is refused.
        let rsa = SignatureScheme::RSA_PSS_SHA256;
        assert!(verify_signature(&der, rsa, msg, sig.as_ref(), true).is_err());
        // TLS 1.3 binds the scheme to the curve.
        let p384 = SignatureScheme::ECDSA_NISTP384_SHA384;
        assert!(verify_signature(&der, p384, msg, sig.as_ref(), true).is_err());
    }

    #[test]
    fn every_advertised_scheme_maps_to_an_algorithm() {
        for scheme in SUPPORTED_SCHEMES {
            let some_kind = [
                KeyKind::Rsa,
                KeyKind::EcP256,
                KeyKind::EcP384,
                KeyKind::Ed25519,
            ]
            .iter()
            .any(|k| algorithm(scheme, *k, false).is_some());
            assert!(some_kind, "{scheme:?}");
        }
    }

    #[test]
    fn pin_mismatch_names_the_command_to_accept_the_new_certificate() {
        let recorder = Arc::new(PinRecorder::default());
        let verifier = PinnedVerifier {
            expected: Some("00".repeat(32)),
            identity: None,
            recorder: Arc::clone(&recorder),
        };
        let der = CertificateDer::from(cert(V1_RSA));
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let err = verifier
            .verify_server_cert(&der, &[], &name, &[], UnixTime::now())
            .unwrap_err();
        let changed = cert_changed(&err).unwrap().to_string();
        assert!(changed.contains("certificate changed"), "{changed}");
        assert!(
            changed.contains("printcam printer forget-cert"),
            "{changed}"
        );
        assert_eq!(recorder.seen().unwrap(), cert_sha256_hex(&der));
        assert_eq!(recorder.refusal().unwrap(), changed);

        let ok = PinnedVerifier {
            expected: Some(cert_sha256_hex(&der).to_uppercase()),
            identity: None,
            recorder,
        };
        assert!(ok
            .verify_server_cert(&der, &[], &name, &[], UnixTime::now())
            .is_ok());
    }

    #[test]
    fn the_provider_is_rings_with_aes_gcm_only_and_no_client_keys() {
        use rustls::CipherSuite as C;
        let ours = crypto_provider();
        let ring = rustls::crypto::ring::default_provider();
        let suites: Vec<C> = ours.cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(
            suites,
            [
                C::TLS13_AES_256_GCM_SHA384,
                C::TLS13_AES_128_GCM_SHA256,
                C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            ]
        );
        // Everything else as ring's default provider has it, in its order.
        let theirs: Vec<C> = ring
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .filter(|s| !format!("{s:?}").contains("CHACHA20"))
            .collect();
        assert_eq!(suites, theirs);
        let groups = |p: &CryptoProvider| p.kx_groups.iter().map(|g| g.name()).collect::<Vec<_>>();
        assert_eq!(groups(&ours), groups(&ring));
        let (a, b) = (
            ours.signature_verification_algorithms,
            ring.signature_verification_algorithms,
        );
        assert_eq!(a.all.len(), b.all.len());
        for ((s1, algs1), (s2, algs2)) in a.mapping.iter().zip(b.mapping) {
            assert_eq!((s1, algs1.len()), (s2, algs2.len()));
            for (x, y) in algs1.iter().zip(algs2.iter()) {
                assert_eq!(x.public_key_alg_id(), y.public_key_alg_id());
                assert_eq!(x.signature_alg_id(), y.signature_alg_id());
            }
        }
        assert_eq!(a.mapping.len(), b.mapping.len());
        let key = PrivateKeyDer::from_pem_slice(V1_RSA_KEY).unwrap();
        assert!(ours.key_provider.load_private_key(key).is_err());
        let mut random = [0u8; 32];
        ours.secure_random.fill(&mut random).unwrap();
        assert_ne!(random, [0u8; 32]);
    }
}
