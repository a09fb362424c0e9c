//! printcam's own rustls crypto provider, and whether this build can check
//! https cameras against public CAs.

use std::sync::Arc;

use rustls::crypto::{
    CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::PrivateKeyDer;
use rustls::sign::SigningKey;
use rustls::SignatureScheme;

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
/// https cameras' chain check (src/sources/http_client.rs, with webpki-roots) uses.
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

#[cfg(test)]
#[path = "provider_tests.rs"]
mod tests;
