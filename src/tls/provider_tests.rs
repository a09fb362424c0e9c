use super::*;
use crate::tls::test_certs::V1_RSA_KEY;
use rustls::pki_types::pem::PemObject;

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
